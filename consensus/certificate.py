"""Commit certificates: the +2/3 precommits that prove a block was decided at a height.

Anyone holding the validator set of that height can check a certificate alone, trusting nobody who
relayed it. Precommits are listed in validator-key order, one per validator, so a certificate has
exactly one encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from consensus.errors import InvalidCertificate, MalformedMessage
from consensus.messages import (
    BLOCK_ID_BYTES,
    HEIGHT_MAX,
    PUBLIC_KEY_BYTES,
    ROUND_MAX,
    SIGNATURE_BYTES,
    MessageType,
    Vote,
    sign_bytes,
)
from consensus.signing import verify_signature
from consensus.validators import VALIDATORS_MAX, ValidatorSet

CERTIFICATE_BYTES_MAX: int = 64 + VALIDATORS_MAX * (PUBLIC_KEY_BYTES + SIGNATURE_BYTES + 8)


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Precommit signatures of ``block_id`` at (height, round) as (validator_key, signature)."""

    height: int
    round: int
    block_id: bytes
    precommits: tuple[tuple[bytes, bytes], ...]

    def __post_init__(self) -> None:
        if type(self.height) is not int or not 1 <= self.height <= HEIGHT_MAX:
            raise MalformedMessage("certificate height out of bounds")
        if type(self.round) is not int or not 0 <= self.round <= ROUND_MAX:
            raise MalformedMessage("certificate round out of bounds")
        if type(self.block_id) is not bytes or len(self.block_id) != BLOCK_ID_BYTES:
            raise MalformedMessage("certificate block id must be 32 bytes")
        precommits = tuple(tuple(p) for p in self.precommits)
        if not 1 <= len(precommits) <= VALIDATORS_MAX:
            raise MalformedMessage("certificate needs 1..VALIDATORS_MAX precommits")
        for entry in precommits:
            if (len(entry) != 2 or type(entry[0]) is not bytes or len(entry[0]) != PUBLIC_KEY_BYTES
                    or type(entry[1]) is not bytes or len(entry[1]) != SIGNATURE_BYTES):
                raise MalformedMessage("certificate entries are (32-byte key, 64-byte signature)")
        object.__setattr__(self, "precommits", precommits)

    @classmethod
    def from_votes(cls, height: int, round_: int, block_id: bytes, votes: list[Vote]) -> CommitCertificate:
        """Build a certificate from precommit votes for ``block_id`` (sorted here by key)."""
        entries = sorted((v.validator, v.signature) for v in votes
                         if v.kind == MessageType.PRECOMMIT and v.block_id == block_id
                         and v.height == height and v.round == round_)
        return cls(height, round_, block_id, tuple(entries))

    def votes(self) -> list[Vote]:
        """The certificate as precommit votes, e.g. to feed a lagging core."""
        return [Vote(MessageType.PRECOMMIT, self.height, self.round, self.block_id, k, s)
                for k, s in self.precommits]

    def verify(self, chain_id: str, validator_set: ValidatorSet, *, height: int | None = None,
               block_id: bytes | None = None) -> None:
        """Raise InvalidCertificate unless this proves +2/3 of ``validator_set`` precommitted
        ``self.block_id`` (and, when given, that it is for ``height`` and ``block_id``)."""
        if height is not None and height != self.height:
            raise InvalidCertificate(f"certificate is for height {self.height}, not {height}")
        if block_id is not None and block_id != self.block_id:
            raise InvalidCertificate("certificate is for a different block")
        data = sign_bytes(chain_id, MessageType.PRECOMMIT, self.height, self.round, self.block_id, -1)
        seen: set[bytes] = set()
        power = 0
        for key, signature in self.precommits:
            if key in seen:
                raise InvalidCertificate("duplicate signer")
            seen.add(key)
            if key not in validator_set:
                raise InvalidCertificate("unknown signer")
            if not verify_signature(key, data, signature):
                raise InvalidCertificate("bad signature")
            power += validator_set.power_of(key)
        if not validator_set.has_quorum(power):
            raise InvalidCertificate(
                f"precommit power {power} is not more than 2/3 of {validator_set.total_power}"
            )

    def encode(self) -> bytes:
        return msgpack.packb(
            [self.height, self.round, self.block_id, [list(p) for p in self.precommits]],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        """Parse ``encode``'s bytes; raise MalformedMessage for anything else."""
        if not isinstance(data, bytes) or len(data) > CERTIFICATE_BYTES_MAX:
            raise MalformedMessage("certificate must be bytes of bounded length")
        try:
            fields = msgpack.unpackb(data, raw=False, use_list=True, max_str_len=0, max_map_len=0,
                                     max_ext_len=0, max_array_len=VALIDATORS_MAX, max_bin_len=64)
        except Exception as exc:  # msgpack raises many unrelated types for bad input
            raise MalformedMessage(f"certificate is not msgpack: {exc.__class__.__name__}") from None
        if type(fields) is not list or len(fields) != 4 or type(fields[3]) is not list:
            raise MalformedMessage("certificate must be [height, round, block_id, precommits]")
        if any(type(p) is not list for p in fields[3]):
            raise MalformedMessage("certificate precommits must be pairs")
        cert = cls(fields[0], fields[1], fields[2], tuple(tuple(p) for p in fields[3]))
        if list(cert.precommits) != sorted(cert.precommits):
            raise MalformedMessage("certificate precommits must be in key order")
        if cert.encode() != data:
            raise MalformedMessage("non-canonical certificate")
        return cert
