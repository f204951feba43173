"""The core, driven by hand and on a perfect in-memory network."""

import pytest

from consensus.actions import (
    Broadcast,
    Decide,
    PersistSignState,
    RequestProposal,
    ScheduleTimeout,
    ValidateBlock,
)
from consensus.core import FUTURE_MESSAGES_PER_VALIDATOR, ROUNDS_AHEAD_MAX, TendermintCore
from consensus.errors import UsageError
from consensus.messages import PRECOMMIT, PREVOTE, Proposal, Vote, encode_message
from consensus.signing import Signer, SignState
from consensus.testing.fixtures import CHAIN_ID, LocalNet, block_id, signing_keys, validator_set
from consensus.timeouts import Step, TimeoutConfig

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
PUBS = [bytes(k.verify_key) for k in KEYS]
A, B = block_id("a"), block_id("b")


def raw(index: int) -> Signer:
    return Signer(KEYS[index], CHAIN_ID)


def proposer_index(height: int, round_: int) -> int:
    return PUBS.index(VALIDATORS.proposer(height, round_))


def observer(height: int = 1) -> TendermintCore:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, height)
    core.start()
    return core


def validator(index: int, height: int = 1, state: SignState | None = None) -> tuple[TendermintCore, list]:
    core = TendermintCore(CHAIN_ID, VALIDATORS, Signer(KEYS[index], CHAIN_ID, state), height)
    return core, core.start()


def votes(kind, height: int, round_: int, block: bytes | None, who: range | list[int]) -> list[Vote]:
    return [raw(i).sign_vote(kind, height, round_, block) for i in who]


# --- a whole network -------------------------------------------------------------------------------


def test_four_validators_and_an_observer_decide_the_same_block_each_height() -> None:
    net = LocalNet(4, observers=1)
    net.start()
    for height in (1, 2, 3):
        decided = {d[-1].block_id for d in net.decisions}
        assert len(decided) == 1 and all(d[-1].height == height for d in net.decisions)
        for d in net.decisions:
            d[-1].certificate.verify(CHAIN_ID, net.validators, height=height, block_id=d[-1].block_id)
        if height < 3:
            net.next_height()


def test_persist_always_precedes_the_broadcast_of_what_it_signed() -> None:
    net = LocalNet(4)
    net.start()
    net.next_height()
    for index, actions in enumerate(net.actions):
        persisted = None
        for action in actions:
            if isinstance(action, PersistSignState):
                persisted = action.state
            elif isinstance(action, Broadcast) and action.message.signer == net.signers[index].public_key:
                assert persisted is not None
                assert persisted.signature == action.message.signature


def test_invalid_block_is_prevoted_nil_then_next_round_decides() -> None:
    net = LocalNet(4, invalid=frozenset({block_id("block-1")}))
    net.start()
    assert all(not d for d in net.decisions)
    for i in range(4):  # everyone prevoted and precommitted nil; the precommit timeout moves on
        net.fire_timeouts(i)
    assert all(d and d[-1].round == 1 for d in net.decisions)


def test_silent_proposer_times_out_to_the_next_round() -> None:
    net = LocalNet(4)
    silent = proposer_index(1, 0)
    net.deliver_to = set(range(4)) - {silent}
    net.cores[silent] = TendermintCore(CHAIN_ID, net.validators, None, 1)  # says nothing
    net.start()
    for _ in range(3):
        for i in range(4):
            net.fire_timeouts(i)
    assert all(net.decisions[i] for i in range(4) if i != silent)


# --- single core, by hand ----------------------------------------------------------------------------


def test_start_schedules_the_propose_timeout_and_the_proposer_asks_for_a_block() -> None:
    p = proposer_index(1, 0)
    core, actions = validator(p)
    assert RequestProposal(1, 0) in actions
    assert ScheduleTimeout(1, 0, Step.PROPOSE, 3000) in actions
    other, actions = validator((p + 1) % 4)
    assert not any(isinstance(a, RequestProposal) for a in actions)


def test_proposal_is_pending_until_the_node_judges_the_block() -> None:
    me = (proposer_index(1, 0) + 1) % 4
    core, _ = validator(me)
    proposal = raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1)
    actions = core.receive(proposal)
    assert actions == [ValidateBlock(1, 0, A)]
    assert core.step == Step.PROPOSE
    actions = core.block_validity(1, A, True)
    assert [type(a) for a in actions] == [PersistSignState, Broadcast]
    assert actions[1].message.kind == PREVOTE and actions[1].message.block_id == A
    # An answer for a block nobody asked about is a late answer, not an error.
    assert core.block_validity(1, B, True) == []
    assert core.drops.late_answer == 1


def test_lock_makes_a_validator_prevote_nil_for_another_fresh_block() -> None:
    me = 0
    core, _ = validator(me)
    p0 = raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1)
    core.receive(p0)
    core.block_validity(1, A, True)
    for v in votes(PREVOTE, 1, 0, A, [1, 2, 3]):
        core.receive(v)
    assert (core.locked_round, core.locked_value, core.step) == (0, A, Step.PRECOMMIT)
    for v in votes(PRECOMMIT, 1, 0, None, [1, 2, 3]):
        core.receive(v)
    core.on_timeout(1, 0, Step.PRECOMMIT)
    assert core.round == 1
    p1 = raw(proposer_index(1, 1)).sign_proposal(1, 1, B, -1)
    core.receive(p1)
    actions = core.block_validity(1, B, True)
    prevote = [a.message for a in actions if isinstance(a, Broadcast)][0]
    assert prevote.kind == PREVOTE and prevote.block_id is None


def test_proof_of_lock_unlocks_and_is_waited_for() -> None:
    core, _ = validator(0)
    # Locked on A in round 0.
    core.receive(raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1))
    core.block_validity(1, A, True)
    for v in votes(PREVOTE, 1, 0, A, [1, 2]):
        core.receive(v)
    assert core.locked_value == A
    for v in votes(PRECOMMIT, 1, 0, None, [1, 2, 3]):
        core.receive(v)
    core.on_timeout(1, 0, Step.PRECOMMIT)
    # Round 2 re-proposes B with a proof of lock from round 1, which we have not seen yet.
    for v in votes(PREVOTE, 1, 2, None, [1, 2]):
        core.receive(v)  # f+1 of round 2: skip there
    assert core.round == 2
    core.receive(raw(proposer_index(1, 2)).sign_proposal(1, 2, B, 1))
    core.block_validity(1, B, True)
    assert core.step == Step.PROPOSE  # waiting for the +2/3 prevotes of round 1
    core.receive(votes(PREVOTE, 1, 1, B, [1])[0])
    core.receive(votes(PREVOTE, 1, 1, B, [2])[0])
    actions = core.receive(votes(PREVOTE, 1, 1, B, [3])[0])
    prevote = [a.message for a in actions if isinstance(a, Broadcast)][0]
    assert prevote.block_id == B  # lockedRound 0 <= pol_round 1


def test_f_plus_one_of_a_higher_round_skips_there() -> None:
    core = observer()
    core.receive(votes(PREVOTE, 1, 5, None, [0])[0])
    assert core.round == 0
    actions = core.receive(votes(PRECOMMIT, 1, 5, None, [1])[0])
    assert core.round == 5
    assert ScheduleTimeout(1, 5, Step.PROPOSE, 3000 + 5 * 500) in actions


def test_timeouts_move_through_the_steps_with_nil_votes() -> None:
    core, _ = validator(0 if proposer_index(1, 0) != 0 else 1)
    actions = core.on_timeout(1, 0, Step.PROPOSE)
    assert [a.message.block_id for a in actions if isinstance(a, Broadcast)] == [None]
    assert core.step == Step.PREVOTE
    assert core.on_timeout(1, 0, Step.PROPOSE) == []  # outdated: ignored
    core.on_timeout(1, 0, Step.PREVOTE)
    assert core.step == Step.PRECOMMIT
    core.on_timeout(1, 0, Step.PRECOMMIT)
    assert (core.round, core.step) == (1, Step.PROPOSE)
    assert core.on_timeout(1, 7, Step.PRECOMMIT) == [] and core.round == 1


def test_precommit_quorum_decides_even_without_the_proposal() -> None:
    core = observer()
    actions = []
    for v in votes(PRECOMMIT, 1, 3, A, [0, 1, 2]):
        actions += core.receive(v)
    decisions = [a for a in actions if isinstance(a, Decide)]
    assert len(decisions) == 1 and decisions[0].block_id == A and decisions[0].round == 3
    decisions[0].certificate.verify(CHAIN_ID, VALIDATORS, height=1, block_id=A)
    assert core.step == Step.COMMIT
    assert core.receive(votes(PRECOMMIT, 1, 3, A, [3])[0]) == []


def test_bad_inputs_are_counted_and_dropped() -> None:
    core = observer(height=5)
    good = raw(1).sign_vote(PREVOTE, 5, 0, A)
    forged = Vote(good.kind, good.height, good.round, good.block_id, good.validator, bytes(64))
    assert core.receive(forged) == [] and core.drops.bad_signature == 1
    stranger = Signer(signing_keys(1, seed=7)[0], CHAIN_ID).sign_vote(PREVOTE, 5, 0, A)
    assert core.receive(stranger) == [] and core.drops.unknown_signer == 1
    assert core.receive_bytes(b"\x01garbage") == [] and core.drops.malformed == 1
    assert core.receive(raw(1).sign_vote(PREVOTE, 4, 0, A)) == [] and core.drops.stale == 1
    wrong = raw((proposer_index(5, 0) + 1) % 4).sign_proposal(5, 0, A, -1)
    assert core.receive(wrong) == [] and core.drops.wrong_proposer == 1
    core.receive_bytes(encode_message(good))
    core.receive(good)
    assert core.drops.duplicate == 1
    far = raw(1).sign_vote(PREVOTE, 5, ROUNDS_AHEAD_MAX + 1, A)
    assert core.receive(far) == [] and core.drops.too_far_ahead == 1
    other_chain = Signer(KEYS[2], "other-chain").sign_vote(PREVOTE, 5, 0, A)
    assert core.receive(other_chain) == [] and core.drops.bad_signature == 2


def test_future_heights_are_buffered_within_bounds_and_replayed() -> None:
    core = observer(height=1)
    for v in votes(PRECOMMIT, 2, 0, A, [0, 1, 2]):
        assert core.receive(v) == []
    assert core.receive(raw(0).sign_vote(PREVOTE, 9, 0, A)) == []
    assert core.drops.too_far_ahead == 1
    for r in range(FUTURE_MESSAGES_PER_VALIDATOR + 5):
        core.receive(raw(3).sign_vote(PREVOTE, 2, r, A))
    assert core.drops.buffer_full == 5
    actions = core.start_height(2, VALIDATORS)
    assert any(isinstance(a, Decide) and a.height == 2 and a.block_id == A for a in actions)


def test_observer_never_signs() -> None:
    core = observer()
    actions = core.on_timeout(1, 0, Step.PROPOSE)
    actions += core.on_timeout(1, 0, Step.PREVOTE)
    assert not any(isinstance(a, Broadcast | PersistSignState) for a in actions)


def test_restart_resends_the_saved_vote_and_refuses_to_contradict_it() -> None:
    me = 0 if proposer_index(1, 0) != 0 else 1
    core, _ = validator(me)
    core.receive(raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1))
    actions = core.block_validity(1, A, True)
    saved = [a.state for a in actions if isinstance(a, PersistSignState)][-1]
    sent = [a.message for a in actions if isinstance(a, Broadcast)][-1]
    # Crash; restart from the persisted record with nothing else.
    restarted, actions = validator(me, state=SignState.decode(saved.encode()))
    assert Broadcast(sent) in actions
    assert restarted.step == Step.PREVOTE
    # Its propose timeout is now outdated; the prevote timeout would precommit nil, which is fine.
    assert restarted.on_timeout(1, 0, Step.PROPOSE) == []
    assert restarted.drops.refused_sign == 0


def test_restart_restores_the_lock() -> None:
    core, _ = validator(0)
    core.receive(raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1))
    core.block_validity(1, A, True)
    for v in votes(PREVOTE, 1, 0, A, [1, 2]):
        core.receive(v)
    assert core.locked_value == A
    restarted, actions = validator(0, state=core._signer.state)
    assert (restarted.locked_round, restarted.locked_value, restarted.step) == (0, A, Step.PRECOMMIT)


def test_proposal_with_pol_round_from_the_future_is_malformed() -> None:
    with pytest.raises(ValueError):
        Proposal(1, 0, A, 0, PUBS[0], bytes(64))


def test_usage_errors() -> None:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, 1)
    with pytest.raises(UsageError):
        core.receive(raw(0).sign_vote(PREVOTE, 1, 0, A))  # before start
    core.start()
    with pytest.raises(UsageError):
        core.start()
    with pytest.raises(UsageError):
        core.receive("vote")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        core.start_height(1, VALIDATORS)
    with pytest.raises(UsageError):
        core.propose(1, 0, b"short")
    with pytest.raises(UsageError):
        core.block_validity(1, A, 1)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        TendermintCore(CHAIN_ID, VALIDATORS, Signer(KEYS[0], "other"), 1)
    with pytest.raises(UsageError):
        TendermintCore(CHAIN_ID, VALIDATORS, None, 0)
    with pytest.raises(UsageError):
        TendermintCore("", VALIDATORS, None, 1)


def test_late_proposal_answer_is_ignored() -> None:
    p = proposer_index(1, 0)
    core, _ = validator(p, state=None)
    core.on_timeout(1, 0, Step.PROPOSE)
    assert core.propose(1, 0, A) == []
    assert core.drops.late_answer == 1


def test_proposer_reproposes_its_valid_value_with_the_proof_of_lock() -> None:
    timeouts = TimeoutConfig()
    p1 = proposer_index(1, 1)
    core = TendermintCore(CHAIN_ID, VALIDATORS, Signer(KEYS[p1], CHAIN_ID), 1, timeouts)
    core.start()
    core.receive(raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1))
    core.block_validity(1, A, True)
    for v in votes(PREVOTE, 1, 0, A, [i for i in range(4) if i != p1][:2]):
        core.receive(v)
    assert core.valid_value == A
    for v in votes(PRECOMMIT, 1, 0, None, [i for i in range(4) if i != p1]):
        core.receive(v)
    actions = core.on_timeout(1, 0, Step.PRECOMMIT)
    sent = [a.message for a in actions if isinstance(a, Broadcast)]
    assert isinstance(sent[0], Proposal) and (sent[0].block_id, sent[0].pol_round) == (A, 0)
    # ...followed by the prevotes that prove the lock, then its own prevote of round 1.
    pol = sent[1:4]
    assert all(isinstance(v, Vote) and (v.kind, v.round, v.block_id) == (PREVOTE, 0, A) for v in pol)
    assert len({v.validator for v in pol}) == 3
    assert (sent[4].kind, sent[4].round, sent[4].block_id) == (PREVOTE, 1, A)
