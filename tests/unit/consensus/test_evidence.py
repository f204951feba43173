"""Equivocation evidence: verified alone, canonical, and reported by the core."""

import pytest

from consensus.actions import ReportEvidence
from consensus.core import TendermintCore
from consensus.errors import InvalidEvidence, MalformedMessage
from consensus.evidence import ConflictingProposalEvidence, DuplicateVoteEvidence, decode_evidence
from consensus.messages import PRECOMMIT, PREVOTE
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
A, B = block_id("a"), block_id("b")


def raw(index: int) -> Signer:
    return Signer(KEYS[index], CHAIN_ID)  # a fresh guard each time: lets a test equivocate


def test_duplicate_vote_evidence_verifies_and_is_canonical() -> None:
    a = raw(0).sign_vote(PREVOTE, 3, 1, A)
    b = raw(0).sign_vote(PREVOTE, 3, 1, B)
    one, other = DuplicateVoteEvidence(a, b), DuplicateVoteEvidence(b, a)
    assert one == other and one.encode() == other.encode()
    one.verify(CHAIN_ID, VALIDATORS)
    assert decode_evidence(one.encode()) == one
    assert one.validator == KEYS[0].verify_key.encode()


def test_proposal_equivocation_evidence() -> None:
    a = raw(1).sign_proposal(3, 1, A, -1)
    b = raw(1).sign_proposal(3, 1, B, -1)
    ev = ConflictingProposalEvidence(a, b)
    ev.verify(CHAIN_ID, VALIDATORS)
    assert decode_evidence(ev.encode()) == ev


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (raw(0).sign_vote(PREVOTE, 3, 1, A), raw(0).sign_vote(PREVOTE, 3, 1, A)),  # no conflict
        (raw(0).sign_vote(PREVOTE, 3, 1, A), raw(1).sign_vote(PREVOTE, 3, 1, B)),  # two signers
        (raw(0).sign_vote(PREVOTE, 3, 1, A), raw(0).sign_vote(PRECOMMIT, 3, 1, B)),  # two kinds
        (raw(0).sign_vote(PREVOTE, 3, 1, A), raw(0).sign_vote(PREVOTE, 3, 2, B)),  # two rounds
    ],
)
def test_non_conflicting_pairs_are_not_evidence(a, b) -> None:
    with pytest.raises(InvalidEvidence):
        DuplicateVoteEvidence(a, b).verify(CHAIN_ID, VALIDATORS)


def test_bad_signature_or_outsider_is_not_evidence() -> None:
    a = raw(0).sign_vote(PREVOTE, 3, 1, A)
    b = raw(0).sign_vote(PREVOTE, 3, 1, B)
    with pytest.raises(InvalidEvidence):
        DuplicateVoteEvidence(a, b).verify("other-chain", VALIDATORS)
    with pytest.raises(InvalidEvidence):
        DuplicateVoteEvidence(a, b).verify(CHAIN_ID, validator_set(KEYS[1:]))


def test_decode_rejects_garbage() -> None:
    ev = DuplicateVoteEvidence(raw(0).sign_vote(PREVOTE, 3, 1, A), raw(0).sign_vote(PREVOTE, 3, 1, B))
    data = ev.encode()
    for bad in (data[:-1], data + b"\x00", b"", b"\x93\x05\xc4\x00\xc4\x00"):
        with pytest.raises(MalformedMessage):
            decode_evidence(bad)


def test_core_reports_a_double_vote_once_and_does_not_count_it_twice() -> None:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, 3)
    core.start()
    first = raw(2).sign_vote(PREVOTE, 3, 0, A)
    second = raw(2).sign_vote(PREVOTE, 3, 0, B)
    assert core.receive(first) == []
    actions = core.receive(second)
    assert actions == [ReportEvidence(DuplicateVoteEvidence(first, second))]
    assert core.receive(second) == []  # already held: a duplicate, not new evidence
    assert core.drops.conflicting == 1 and core.evidence_reported == 1
    # One validator's power counts once toward "+2/3 of any vote", whatever it signed.
    assert core._prevotes[0].total == 1


def test_core_reports_proposal_equivocation() -> None:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, 3)
    core.start()
    proposer = VALIDATORS.proposer(3, 0)
    index = [bytes(k.verify_key) for k in KEYS].index(proposer)
    a = raw(index).sign_proposal(3, 0, A, -1)
    b = raw(index).sign_proposal(3, 0, B, -1)
    core.receive(a)
    actions = core.receive(b)
    assert [type(x) for x in actions] == [ReportEvidence]
    actions[0].evidence.verify(CHAIN_ID, VALIDATORS)
