"""What the core drops, it counts under its reason, once per input; what peers equivocate, it
reports once per (kind, height, round, signer), and keeps an equivocator's extra votes only up to
the bound. The node exports these counters, and evidence becomes slashing: both must be exact.
"""

from consensus.actions import Broadcast, PersistSignState, ReportEvidence
from consensus.core import (
    CONFLICTING_VOTES_PER_VALIDATOR,
    FUTURE_MESSAGES_PER_VALIDATOR,
    ROUNDS_AHEAD_MAX,
    TendermintCore,
)
from consensus.messages import PREVOTE, Proposal, Vote
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set
from consensus.timeouts import Step

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
PUBS = [bytes(k.verify_key) for k in KEYS]
A, B, C, D = (block_id(x) for x in "abcd")


def raw(index: int) -> Signer:
    return Signer(KEYS[index], CHAIN_ID)


def stranger(seed: int) -> Signer:
    return Signer(signing_keys(1, seed=seed)[0], CHAIN_ID)


def proposer_index(height: int, round_: int) -> int:
    return PUBS.index(VALIDATORS.proposer(height, round_))


def observer(height: int = 1) -> TendermintCore:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, height)
    core.start()
    return core


def forged(message: Vote | Proposal) -> Vote | Proposal:
    if isinstance(message, Vote):
        return Vote(message.kind, message.height, message.round, message.block_id, message.validator, bytes(64))
    return Proposal(message.height, message.round, message.block_id, message.pol_round, message.proposer,
                    bytes(64))


def test_every_dropped_input_is_counted_under_its_reason() -> None:
    core = observer(height=5)
    drops = core.drops

    for data in (b"\x01garbage", b"\xc1"):
        assert core.receive_bytes(data) == []
    assert drops.malformed == 2

    for height in (4, 1):
        assert core.receive(raw(1).sign_vote(PREVOTE, height, 0, A)) == []
    assert drops.stale == 2

    for seed in (7, 8):
        assert core.receive(stranger(seed).sign_vote(PREVOTE, 5, 0, A)) == []
    assert drops.unknown_signer == 2

    for round_ in (ROUNDS_AHEAD_MAX + 1, ROUNDS_AHEAD_MAX + 2):
        assert core.receive(raw(1).sign_vote(PREVOTE, 5, round_, A)) == []
    assert drops.too_far_ahead == 2

    for round_ in (0, 1):
        wrong = (proposer_index(5, round_) + 1) % 4
        assert core.receive(raw(wrong).sign_proposal(5, round_, A, -1)) == []
    assert drops.wrong_proposer == 2

    vote = raw(2).sign_vote(PREVOTE, 5, 0, A)
    for _ in range(3):
        core.receive(vote)
    assert drops.duplicate == 2
    proposal = raw(proposer_index(5, 0)).sign_proposal(5, 0, A, -1)
    for _ in range(3):
        core.receive(proposal)
    assert drops.duplicate == 4

    core.receive(forged(raw(3).sign_vote(PREVOTE, 5, 0, B)))
    core.receive(forged(raw(proposer_index(5, 1)).sign_proposal(5, 1, B, -1)))
    core.receive(forged(raw(proposer_index(5, 2)).sign_proposal(5, 2, B, -1)))
    assert drops.bad_signature == 3

    assert drops.total() == 2 + 2 + 2 + 2 + 2 + 4 + 3
    assert drops.total() == sum(getattr(drops, name) for name in drops.__slots__)


def test_future_height_messages_are_filtered_and_counted_before_they_are_buffered() -> None:
    core = observer(height=1)
    for height in (4, 9):  # beyond FUTURE_HEIGHTS_MAX
        core.receive(raw(1).sign_vote(PREVOTE, height, 0, A))
    assert core.drops.too_far_ahead == 2
    for seed in (7, 8):
        core.receive(stranger(seed).sign_vote(PREVOTE, 2, 0, A))
    assert core.drops.unknown_signer == 2

    vote = raw(1).sign_vote(PREVOTE, 2, 0, A)
    for _ in range(3):
        core.receive(vote)
    assert core.drops.duplicate == 2

    for round_ in (1, 2, 3):
        core.receive(forged(raw(2).sign_vote(PREVOTE, 2, round_, A)))
    assert core.drops.bad_signature == 3
    # Forgeries do not use up the signer's quota: all its genuine messages still fit.
    for round_ in range(FUTURE_MESSAGES_PER_VALIDATOR):
        core.receive(raw(2).sign_vote(PREVOTE, 2, round_, A))
    assert core.drops.buffer_full == 0


def test_late_answers_from_the_node_are_each_counted() -> None:
    p = proposer_index(1, 0)
    core = TendermintCore(CHAIN_ID, VALIDATORS, raw(p), 1)
    core.start()
    core.on_timeout(1, 0, Step.PROPOSE)  # the round moved on without the block
    assert core.propose(1, 0, A) == []
    assert core.block_validity(1, A, True) == []
    assert core.propose(1, 0, B) == []
    assert core.block_validity(1, B, True) == []
    assert core.drops.late_answer == 4


def test_signatures_the_double_sign_guard_refuses_are_counted_and_nothing_is_sent() -> None:
    me = proposer_index(1, 1)
    signer = raw(me)
    core = TendermintCore(CHAIN_ID, VALIDATORS, signer, 1)
    core.start()
    # Another process with the same key signed first, each time (what the guard is for).
    signer.sign_vote(PREVOTE, 1, 0, B)
    actions = core.on_timeout(1, 0, Step.PROPOSE)  # would prevote nil: refused
    assert core.drops.refused_sign == 1
    assert not any(isinstance(a, Broadcast | PersistSignState) for a in actions)
    core.on_timeout(1, 0, Step.PREVOTE)
    core.on_timeout(1, 0, Step.PRECOMMIT)
    assert core.round == 1
    signer.sign_vote(PREVOTE, 1, 1, B)
    actions = core.propose(1, 1, A)  # our proposal would go back a step: refused
    assert core.drops.refused_sign == 2
    assert not any(isinstance(a, Broadcast | PersistSignState) for a in actions)
    assert core.propose(1, 1, A) == [] and core.drops.late_answer == 1  # one answer per request
    core.on_timeout(1, 1, Step.PROPOSE)  # prevote nil against the other process's prevote B
    assert core.drops.refused_sign == 3


def evidence_in(actions: list) -> list:
    return [a.evidence for a in actions if isinstance(a, ReportEvidence)]


def test_equivocation_is_reported_once_per_kind_round_and_signer() -> None:
    core = observer()
    reported = []
    p0 = proposer_index(1, 0)
    again = next(r for r in range(1, 8) if proposer_index(1, r) == p0)  # p0 proposes again there
    for round_ in (0, again):
        for block in (A, B, C):
            reported += evidence_in(core.receive(raw(p0).sign_proposal(1, round_, block, -1)))
    assert len(reported) == 2
    assert core.drops.conflicting == 4

    for who, round_ in ((2, 0), (3, 0), (2, 1)):
        for block in (A, B, C):
            reported += evidence_in(core.receive(raw(who).sign_vote(PREVOTE, 1, round_, block)))
    assert len(reported) == 5
    assert core.evidence_reported == 5
    assert core.drops.conflicting == 4 + 6


def test_an_equivocators_further_votes_are_kept_only_up_to_the_bound() -> None:
    assert CONFLICTING_VOTES_PER_VALIDATOR == 2
    core = observer()
    sent = [raw(1).sign_vote(PREVOTE, 1, 0, block) for block in (A, B, C, D)]
    for vote in sent:
        core.receive(vote)
    assert core.round_messages(0) == sent[:3]  # the first vote and two conflicting ones
    assert core.drops.conflicting == 3
