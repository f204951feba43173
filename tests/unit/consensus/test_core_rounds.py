"""The upon-rules of Algorithm 1, rule by rule, at their edges: when a timeout is scheduled (and
only once per round), when a round is skipped, what a lock allows, what a proof of lock must
contain, and that a decision ends the height at once. Driven by hand, one core at a time.

Heights start at 1; with 4 equal validators the proposers of height 1 are, by round: 1, 2, 3, 0, 1...
"""

import pytest

from consensus.actions import Broadcast, Decide, ScheduleTimeout
from consensus.core import FUTURE_HEIGHTS_MAX, ROUNDS_AHEAD_MAX, TendermintCore
from consensus.errors import UsageError
from consensus.messages import HEIGHT_MAX, PRECOMMIT, PREVOTE, Proposal, Vote
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set
from consensus.timeouts import Step, TimeoutConfig

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
PUBS = [bytes(k.verify_key) for k in KEYS]
A, B, C = block_id("a"), block_id("b"), block_id("c")
#: One validator (index 0 of ONE): it proposes every round and alone is a quorum.
ONE = signing_keys(1, seed=5)
ONE_SET = validator_set(ONE)


def raw(index: int, keys=KEYS) -> Signer:
    return Signer(keys[index], CHAIN_ID)


def proposer_index(height: int, round_: int) -> int:
    return PUBS.index(VALIDATORS.proposer(height, round_))


def observer(height: int = 1, validators=VALIDATORS) -> TendermintCore:
    core = TendermintCore(CHAIN_ID, validators, None, height)
    core.start()
    return core


def validator(index: int) -> TendermintCore:
    core = TendermintCore(CHAIN_ID, VALIDATORS, raw(index), 1)
    core.start()
    return core


def vote(index: int, kind, round_: int, block: bytes | None, height: int = 1) -> Vote:
    return raw(index).sign_vote(kind, height, round_, block)


def propose(round_: int, block: bytes, pol_round: int = -1) -> Proposal:
    return raw(proposer_index(1, round_)).sign_proposal(1, round_, block, pol_round)


def sent(actions: list) -> list:
    return [a.message for a in actions if isinstance(a, Broadcast)]


def timeouts(actions: list, step: Step) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout) and a.step == step]


def nil_round(core: TendermintCore) -> None:
    """Let the core's current round pass on timeouts alone (nil prevote, nil precommit)."""
    r = core.round
    core.on_timeout(1, r, Step.PROPOSE)
    core.on_timeout(1, r, Step.PREVOTE)
    core.on_timeout(1, r, Step.PRECOMMIT)
    assert core.round == r + 1


def lock_on(core: TendermintCore, me: int, round_: int, block: bytes) -> None:
    """Have ``core`` (validator ``me``) prevote ``block`` in ``round_`` and lock it with two more."""
    core.receive(propose(round_, block))
    core.block_validity(1, block, True)
    others = [i for i in range(4) if i != me][:2]
    for i in others:
        core.receive(vote(i, PREVOTE, round_, block))
    assert (core.locked_value, core.locked_round) == (block, round_)


# --- timeouts --------------------------------------------------------------------------------------


def test_the_configured_durations_are_the_ones_scheduled() -> None:
    config = TimeoutConfig(propose_ms=1234, propose_delta_ms=10)
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, 1, config)
    assert core.start() == [ScheduleTimeout(1, 0, Step.PROPOSE, 1234)]


def test_prevote_timeout_needs_two_thirds_of_prevotes_while_prevoting_and_fires_once_a_round() -> None:
    core = observer()
    actions = []
    for i, block in ((0, A), (1, B), (2, None)):
        actions += core.receive(vote(i, PREVOTE, 0, block))
    assert timeouts(actions, Step.PREVOTE) == []  # still proposing: line 34 is not yet enabled
    assert timeouts(core.on_timeout(1, 0, Step.PROPOSE), Step.PREVOTE) == [ScheduleTimeout(1, 0, Step.PREVOTE, 1000)]
    assert timeouts(core.receive(vote(3, PREVOTE, 0, C)), Step.PREVOTE) == []  # once per round
    core.on_timeout(1, 0, Step.PREVOTE)
    core.on_timeout(1, 0, Step.PRECOMMIT)
    core.on_timeout(1, 1, Step.PROPOSE)
    assert core.step == Step.PREVOTE
    assert timeouts(core.receive(vote(0, PREVOTE, 1, A)), Step.PREVOTE) == []
    assert timeouts(core.receive(vote(1, PREVOTE, 1, B)), Step.PREVOTE) == []
    assert timeouts(core.receive(vote(2, PREVOTE, 1, None)), Step.PREVOTE) == [
        ScheduleTimeout(1, 1, Step.PREVOTE, 1500)]


def test_precommit_timeout_needs_two_thirds_of_precommits_and_fires_once_a_round() -> None:
    core = observer()
    assert timeouts(core.receive(vote(0, PRECOMMIT, 0, A)), Step.PRECOMMIT) == []
    assert timeouts(core.receive(vote(1, PRECOMMIT, 0, B)), Step.PRECOMMIT) == []
    assert timeouts(core.receive(vote(2, PRECOMMIT, 0, None)), Step.PRECOMMIT) == [
        ScheduleTimeout(1, 0, Step.PRECOMMIT, 1000)]
    assert timeouts(core.receive(vote(3, PRECOMMIT, 0, C)), Step.PRECOMMIT) == []
    core.on_timeout(1, 0, Step.PRECOMMIT)
    assert core.round == 1
    for i, block in ((0, A), (1, B)):
        core.receive(vote(i, PRECOMMIT, 1, block))
    assert timeouts(core.receive(vote(2, PRECOMMIT, 1, None)), Step.PRECOMMIT) == [
        ScheduleTimeout(1, 1, Step.PRECOMMIT, 1500)]


# --- rounds ----------------------------------------------------------------------------------------


def test_a_signer_counts_once_toward_skipping_to_a_higher_round_and_a_proposer_counts_too() -> None:
    core = observer()
    voter = 1
    assert proposer_index(1, 5) != voter
    core.receive(vote(voter, PREVOTE, 5, A))
    core.receive(vote(voter, PRECOMMIT, 5, A))
    assert core.round == 0  # one validator of four is not more than a third
    core.receive(propose(5, A))
    assert core.round == 5


def test_messages_up_to_the_round_bound_count() -> None:
    core = observer()
    for i in (0, 1):
        core.receive(vote(i, PREVOTE, ROUNDS_AHEAD_MAX, None))
    assert core.round == ROUNDS_AHEAD_MAX
    assert core.drops.too_far_ahead == 0


def test_messages_up_to_the_height_bound_wait_for_their_height() -> None:
    assert FUTURE_HEIGHTS_MAX == 2
    core = observer(height=1)
    for i in (0, 1, 2):
        assert core.receive(vote(i, PRECOMMIT, 0, A, height=3)) == []
    assert core.drops.too_far_ahead == 0
    assert not any(isinstance(a, Decide) for a in core.start_height(2, VALIDATORS))
    decided = [a for a in core.start_height(3, VALIDATORS) if isinstance(a, Decide)]
    assert [(d.height, d.block_id) for d in decided] == [(3, A)]


def test_height_max_is_a_height() -> None:
    TendermintCore(CHAIN_ID, VALIDATORS, None, HEIGHT_MAX).start()
    with pytest.raises(UsageError):
        TendermintCore(CHAIN_ID, VALIDATORS, None, HEIGHT_MAX + 1)


# --- locks and proofs of lock ------------------------------------------------------------------------


def test_a_locked_validator_prevotes_its_locked_block_when_it_is_proposed_again_without_proof() -> None:
    me = 0
    core = validator(me)
    lock_on(core, me, 0, A)
    for i in (1, 2, 3):
        core.receive(vote(i, PRECOMMIT, 0, None))
    core.on_timeout(1, 0, Step.PRECOMMIT)
    actions = core.receive(propose(1, A))  # a fresh proposal (pol_round -1) of our locked block
    prevotes = [m for m in sent(actions) if m.kind == PREVOTE]
    assert [(m.round, m.block_id) for m in prevotes] == [(1, A)]


def test_a_lock_from_a_later_round_than_the_proof_keeps_the_validator_off_another_block() -> None:
    me = 0
    assert me not in (proposer_index(1, 1), proposer_index(1, 2))
    core = validator(me)
    nil_round(core)  # round 0 passes; the others' prevotes for B in it reach us only later
    lock_on(core, me, 1, A)
    for i in (1, 2, 3):
        core.receive(vote(i, PRECOMMIT, 1, None))
    core.on_timeout(1, 1, Step.PRECOMMIT)
    for i in (1, 2, 3):
        core.receive(vote(i, PREVOTE, 0, B))
    core.receive(propose(2, B, pol_round=0))  # a proof of lock from round 0, older than our lock
    actions = core.block_validity(1, B, True)
    assert [(m.round, m.block_id) for m in sent(actions) if m.kind == PREVOTE] == [(2, None)]


def test_a_proof_of_lock_from_round_zero_is_waited_for_too() -> None:
    me = 0
    core = validator(me)
    nil_round(core)
    core.receive(propose(1, B, pol_round=0))
    assert core.block_validity(1, B, True) == []  # round 0 holds no +2/3 prevotes for B yet
    assert core.step == Step.PROPOSE
    core.receive(vote(1, PREVOTE, 0, B))
    core.receive(vote(2, PREVOTE, 0, B))
    actions = core.receive(vote(3, PREVOTE, 0, B))
    assert [(m.round, m.block_id) for m in sent(actions) if m.kind == PREVOTE] == [(1, B)]


def test_relocking_in_a_later_round_moves_the_lock_and_precommits_again() -> None:
    me = 0
    core = validator(me)
    lock_on(core, me, 0, A)
    for i in (1, 2, 3):
        core.receive(vote(i, PRECOMMIT, 0, None))
    core.on_timeout(1, 0, Step.PRECOMMIT)
    core.receive(propose(1, A, pol_round=0))
    actions = []
    for i in (1, 2):
        actions += core.receive(vote(i, PREVOTE, 1, A))
    assert (core.locked_value, core.locked_round, core.valid_round) == (A, 1, 1)
    assert [(m.round, m.block_id) for m in sent(actions) if m.kind == PRECOMMIT] == [(1, A)]


def test_a_late_prevote_completing_the_quorum_locks_even_after_the_prevote_timeout_was_set() -> None:
    me = 0
    core = validator(me)
    core.receive(propose(0, A))
    core.block_validity(1, A, True)  # our prevote for A
    core.receive(vote(3, PREVOTE, 0, None))
    assert timeouts(core.receive(vote(1, PREVOTE, 0, A)), Step.PREVOTE)  # +2/3 of anything
    actions = core.receive(vote(2, PREVOTE, 0, A))  # +2/3 for A
    assert [(m.round, m.block_id) for m in sent(actions) if m.kind == PRECOMMIT] == [(0, A)]
    assert core.locked_value == A


# --- one validator that is a quorum alone: prevotes for one thing never count for another -------------


def test_prevotes_for_a_block_are_no_nil_quorum() -> None:
    core = observer(validators=ONE_SET)
    core.on_timeout(1, 0, Step.PROPOSE)
    core.receive(raw(0, ONE).sign_vote(PREVOTE, 1, 0, A))  # we never saw A's proposal
    assert core.step == Step.PREVOTE


def test_nil_prevotes_lock_nothing() -> None:
    core = observer(validators=ONE_SET)
    core.receive(raw(0, ONE).sign_proposal(1, 0, A, -1))
    core.block_validity(1, A, True)
    core.receive(raw(0, ONE).sign_vote(PREVOTE, 1, 0, None))
    assert (core.locked_value, core.valid_value, core.step) == (None, None, Step.PRECOMMIT)


def test_a_proof_of_lock_for_another_block_is_no_proof() -> None:
    core = observer(validators=ONE_SET)
    signer = raw(0, ONE)
    core.on_timeout(1, 0, Step.PROPOSE)
    core.receive(signer.sign_vote(PREVOTE, 1, 0, None))
    core.receive(signer.sign_vote(PRECOMMIT, 1, 0, None))
    core.on_timeout(1, 0, Step.PRECOMMIT)
    core.receive(signer.sign_proposal(1, 1, B, 0))
    core.block_validity(1, B, True)
    assert (core.round, core.step) == (1, Step.PROPOSE)  # still waiting for +2/3 prevotes for B


# --- deciding ---------------------------------------------------------------------------------------


def test_a_decision_is_the_last_thing_the_core_does_at_its_height() -> None:
    core = observer()
    actions = []
    for i in (0, 1, 2):
        actions += core.receive(vote(i, PRECOMMIT, 0, A))
    assert isinstance(actions[-1], Decide)
    assert timeouts(actions, Step.PRECOMMIT) == []


def test_our_own_precommit_that_completes_the_quorum_decides_at_once() -> None:
    me = 0
    core = validator(me)
    for i, block in ((1, A), (2, A), (3, None)):  # +2/3 precommits, but only 2 of 4 for A
        core.receive(vote(i, PRECOMMIT, 0, block))
    core.receive(propose(0, A))
    core.block_validity(1, A, True)
    core.receive(vote(1, PREVOTE, 0, A))
    actions = core.receive(vote(2, PREVOTE, 0, A))
    decided = [a for a in actions if isinstance(a, Decide)]
    assert [(d.round, d.block_id) for d in decided] == [(0, A)]
    decided[0].certificate.verify(CHAIN_ID, VALIDATORS, height=1, block_id=A)


# --- answers from the node --------------------------------------------------------------------------


def test_a_block_the_node_judged_invalid_stays_invalid_when_the_node_proposes_it() -> None:
    me = proposer_index(1, 1)
    core = validator(me)
    core.receive(propose(0, C))
    core.block_validity(1, C, False)
    core.on_timeout(1, 0, Step.PREVOTE)
    core.on_timeout(1, 0, Step.PRECOMMIT)
    actions = core.propose(1, 1, C)
    assert [(m.round, m.block_id) for m in sent(actions) if isinstance(m, Vote)] == [(1, None)]


def test_an_answer_for_another_height_or_an_unrequested_round_is_late() -> None:
    p = proposer_index(1, 0)
    core = validator(p)
    assert core.propose(2, 0, A) == [] and core.drops.late_answer == 1
    assert any(isinstance(m, Proposal) for m in sent(core.propose(1, 0, A)))

    me = 0
    assert me not in (proposer_index(1, 0), proposer_index(1, 1))
    core = validator(me)
    nil_round(core)
    assert core.propose(1, 1, A) == [] and core.drops.late_answer == 1  # never asked for round 1


def test_timeouts_must_name_an_int_height_an_int_round_and_a_step() -> None:
    core = observer()
    for args in (("1", 0, Step.PROPOSE), (1, "0", Step.PROPOSE), (1, 0, "propose"), (1.0, 0.0, Step.PROPOSE)):
        with pytest.raises(UsageError):
            core.on_timeout(*args)

