"""Evidence of equivocation: two conflicting messages one validator signed for one step.

``DuplicateVoteEvidence`` holds two votes of one kind, height, round and validator for different
blocks; ``ConflictingProposalEvidence`` two proposals of one height and round by the proposer that
differ. Each can be verified alone against the validator set and encodes canonically (the two
messages in byte order), so the same misbehaviour always yields the same evidence bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from consensus.errors import InvalidEvidence, MalformedMessage
from consensus.messages import Proposal, Vote, decode_message, encode_message
from consensus.signing import verify_message
from consensus.validators import ValidatorSet

_TAG_VOTES = 1
_TAG_PROPOSALS = 2


def _ordered(a: Proposal | Vote, b: Proposal | Vote) -> tuple[bytes, bytes]:
    ea, eb = encode_message(a), encode_message(b)
    return (ea, eb) if ea <= eb else (eb, ea)


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """Two votes by one validator, same kind, height and round, different block ids."""

    vote_a: Vote
    vote_b: Vote

    def __post_init__(self) -> None:
        if not (isinstance(self.vote_a, Vote) and isinstance(self.vote_b, Vote)):
            raise MalformedMessage("duplicate-vote evidence holds two votes")
        ea, eb = _ordered(self.vote_a, self.vote_b)
        if encode_message(self.vote_a) != ea:  # canonical order: smaller encoding first
            a, b = self.vote_b, self.vote_a
            object.__setattr__(self, "vote_a", a)
            object.__setattr__(self, "vote_b", b)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    def verify(self, chain_id: str, validator_set: ValidatorSet) -> None:
        a, b = self.vote_a, self.vote_b
        if (a.kind, a.height, a.round, a.validator) != (b.kind, b.height, b.round, b.validator):
            raise InvalidEvidence("votes are not for one validator, kind, height and round")
        if a.block_id == b.block_id:
            raise InvalidEvidence("votes do not conflict")
        if a.validator not in validator_set:
            raise InvalidEvidence("signer is not a validator")
        if not (verify_message(chain_id, a) and verify_message(chain_id, b)):
            raise InvalidEvidence("bad signature")

    def encode(self) -> bytes:
        return msgpack.packb([_TAG_VOTES, encode_message(self.vote_a), encode_message(self.vote_b)],
                             use_bin_type=True)


@dataclass(frozen=True, slots=True)
class ConflictingProposalEvidence:
    """Two different proposals by one proposer for the same height and round."""

    proposal_a: Proposal
    proposal_b: Proposal

    def __post_init__(self) -> None:
        if not (isinstance(self.proposal_a, Proposal) and isinstance(self.proposal_b, Proposal)):
            raise MalformedMessage("conflicting-proposal evidence holds two proposals")
        ea, _ = _ordered(self.proposal_a, self.proposal_b)
        if encode_message(self.proposal_a) != ea:
            a, b = self.proposal_b, self.proposal_a
            object.__setattr__(self, "proposal_a", a)
            object.__setattr__(self, "proposal_b", b)

    @property
    def validator(self) -> bytes:
        return self.proposal_a.proposer

    @property
    def height(self) -> int:
        return self.proposal_a.height

    def verify(self, chain_id: str, validator_set: ValidatorSet) -> None:
        a, b = self.proposal_a, self.proposal_b
        if (a.height, a.round, a.proposer) != (b.height, b.round, b.proposer):
            raise InvalidEvidence("proposals are not for one proposer, height and round")
        if (a.block_id, a.pol_round) == (b.block_id, b.pol_round):
            raise InvalidEvidence("proposals do not conflict")
        if a.proposer not in validator_set:
            raise InvalidEvidence("signer is not a validator")
        if not (verify_message(chain_id, a) and verify_message(chain_id, b)):
            raise InvalidEvidence("bad signature")

    def encode(self) -> bytes:
        return msgpack.packb(
            [_TAG_PROPOSALS, encode_message(self.proposal_a), encode_message(self.proposal_b)],
            use_bin_type=True,
        )


Evidence = DuplicateVoteEvidence | ConflictingProposalEvidence


def decode_evidence(data: bytes) -> Evidence:
    """Parse evidence bytes, or raise MalformedMessage; verify separately with ``.verify``."""
    if not isinstance(data, bytes) or len(data) > 1024:
        raise MalformedMessage("evidence must be bytes of bounded length")
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True, max_str_len=0, max_map_len=0,
                                 max_ext_len=0, max_array_len=3, max_bin_len=256)
    except Exception as exc:  # msgpack raises many unrelated types for bad input
        raise MalformedMessage(f"evidence is not msgpack: {exc.__class__.__name__}") from None
    if (type(fields) is not list or len(fields) != 3 or fields[0] not in (_TAG_VOTES, _TAG_PROPOSALS)
            or type(fields[0]) is not int or type(fields[1]) is not bytes or type(fields[2]) is not bytes):
        raise MalformedMessage("evidence must be [tag, message, message]")
    a, b = decode_message(fields[1]), decode_message(fields[2])
    evidence: Evidence
    if fields[0] == _TAG_VOTES:
        if not (isinstance(a, Vote) and isinstance(b, Vote)):
            raise MalformedMessage("duplicate-vote evidence holds two votes")
        evidence = DuplicateVoteEvidence(a, b)
    else:
        if not (isinstance(a, Proposal) and isinstance(b, Proposal)):
            raise MalformedMessage("conflicting-proposal evidence holds two proposals")
        evidence = ConflictingProposalEvidence(a, b)
    if evidence.encode() != data:
        raise MalformedMessage("non-canonical evidence")
    return evidence
