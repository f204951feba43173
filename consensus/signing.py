"""Signing with a double-sign guard (CometBFT's privval rules), and signature verification.

``SignState`` is the record that must be on disk before anything it signed leaves the node: the
last (height, round, step) signed, the exact sign bytes and signature, and the lock this validator
holds at that height (its last non-nil precommit). ``Signer`` signs only at a higher height, a
higher round, or a later step than that record; asked for the very same bytes again it returns the
saved signature; anything else is ``DoubleSignRefused``.

The lock is kept here because the paper's lockedValue/lockedRound is safety state: a validator that
forgot its lock after a crash could prevote against it and help a conflicting block to a quorum.
A lock is set exactly when a validator precommits a block, so the record of its last non-nil
precommit at the height is its lock; CometBFT rebuilds it from the WAL, we keep it in this record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from functools import lru_cache

import msgpack
import nacl.exceptions
import nacl.signing

from consensus.errors import DoubleSignRefused, MalformedMessage, UsageError
from consensus.messages import (
    BLOCK_ID_BYTES,
    HEIGHT_MAX,
    ROUND_MAX,
    SIGN_DOMAIN_TAG,
    SIGNATURE_BYTES,
    MessageType,
    Proposal,
    Vote,
    check_chain_id,
    sign_bytes,
)

#: Verified (key, bytes, signature) triples remembered; one process can hold many nodes (tests).
VERIFY_CACHE_MAX: int = 16384
SIGN_STATE_BYTES_MAX: int = 512


class SignStep(IntEnum):
    """The order of signing steps within one round (CometBFT's stepPropose/Prevote/Precommit)."""

    NONE = 0
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


_STEP_OF_TYPE = {
    MessageType.PROPOSAL: SignStep.PROPOSE,
    MessageType.PREVOTE: SignStep.PREVOTE,
    MessageType.PRECOMMIT: SignStep.PRECOMMIT,
}


@lru_cache(maxsize=VERIFY_CACHE_MAX)
def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def verify_message(chain_id: str, message: Proposal | Vote) -> bool:
    """True if the message's signature is its signer's over its canonical sign bytes."""
    return verify_signature(message.signer, message.sign_bytes(chain_id), message.signature)


@dataclass(frozen=True, slots=True)
class SignState:
    """What this validator last signed, and its lock at that height; persist before sending."""

    height: int = 0
    round: int = 0
    step: SignStep = SignStep.NONE
    sign_bytes: bytes = b""
    signature: bytes = b""
    #: Round and block of this validator's last non-nil precommit at ``height`` (-1/None: none).
    lock_round: int = -1
    lock_block_id: bytes | None = None

    def __post_init__(self) -> None:
        for name, value, high in (("height", self.height, HEIGHT_MAX), ("round", self.round, ROUND_MAX)):
            if type(value) is not int or not 0 <= value <= high:
                raise MalformedMessage(f"SignState.{name} out of bounds")
        if type(self.lock_round) is not int or not -1 <= self.lock_round <= self.round:
            raise MalformedMessage("SignState.lock_round out of bounds")
        if (self.lock_round == -1) != (self.lock_block_id is None):
            raise MalformedMessage("SignState lock round and block go together")
        if self.lock_block_id is not None and (
            type(self.lock_block_id) is not bytes or len(self.lock_block_id) != BLOCK_ID_BYTES
        ):
            raise MalformedMessage("SignState.lock_block_id must be 32 bytes")
        if type(self.sign_bytes) is not bytes or len(self.sign_bytes) > 256:
            raise MalformedMessage("SignState.sign_bytes out of bounds")
        if type(self.signature) is not bytes or len(self.signature) not in (0, SIGNATURE_BYTES):
            raise MalformedMessage("SignState.signature must be empty or 64 bytes")
        object.__setattr__(self, "step", SignStep(self.step))

    def message(self, chain_id: str, public_key: bytes) -> Proposal | Vote | None:
        """Rebuild the signed message this record holds, or None if it holds none."""
        if self.step == SignStep.NONE or not self.sign_bytes.startswith(SIGN_DOMAIN_TAG):
            return None
        try:
            chain, type_, height, round_, block_id, pol_round = msgpack.unpackb(
                self.sign_bytes[len(SIGN_DOMAIN_TAG):], raw=False)
            if chain != chain_id or (height, round_) != (self.height, self.round):
                return None
            if type_ == MessageType.PROPOSAL:
                return Proposal(height, round_, block_id, pol_round, public_key, self.signature)
            return Vote(MessageType(type_), height, round_, block_id, public_key, self.signature)
        except (ValueError, TypeError, MalformedMessage, msgpack.UnpackException):
            return None

    def encode(self) -> bytes:
        return msgpack.packb(
            [1, self.height, self.round, int(self.step), self.sign_bytes, self.signature,
             self.lock_round, self.lock_block_id],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, data: bytes) -> SignState:
        """Parse ``encode``'s bytes; raise MalformedMessage for anything else (e.g. a torn write)."""
        if not isinstance(data, bytes) or len(data) > SIGN_STATE_BYTES_MAX:
            raise MalformedMessage("sign state must be bytes of bounded length")
        try:
            fields = msgpack.unpackb(data, raw=False, use_list=True, max_str_len=0, max_map_len=0,
                                     max_ext_len=0, max_array_len=8, max_bin_len=256)
        except Exception as exc:  # msgpack raises many unrelated types for bad input
            raise MalformedMessage(f"sign state is not msgpack: {exc.__class__.__name__}") from None
        if type(fields) is not list or len(fields) != 8 or fields[0] != 1:
            raise MalformedMessage("sign state must be version 1 with 8 fields")
        if type(fields[3]) is not int or fields[3] not in iter(SignStep):
            raise MalformedMessage("sign state step out of bounds")
        state = cls(*fields[1:])
        if state.encode() != data:
            raise MalformedMessage("non-canonical sign state")
        return state


class Signer:
    """A validator's Ed25519 key behind CometBFT's double-sign rules."""

    __slots__ = ("_key", "chain_id", "public_key", "state")

    def __init__(self, signing_key: nacl.signing.SigningKey, chain_id: str,
                 state: SignState | None = None) -> None:
        if not isinstance(signing_key, nacl.signing.SigningKey):
            raise UsageError("Signer needs a nacl.signing.SigningKey")
        self._key = signing_key
        self.chain_id = check_chain_id(chain_id)
        self.public_key: bytes = bytes(signing_key.verify_key)
        #: The current record; the core emits it for persistence after every signature.
        self.state: SignState = state if state is not None else SignState()

    def last_message(self) -> Proposal | Vote | None:
        """The message of the saved record (None if nothing was signed). After a restart the core
        re-sends it: it may never have left, or been lost on the way."""
        return self.state.message(self.chain_id, self.public_key)

    def sign_proposal(self, height: int, round_: int, block_id: bytes, pol_round: int) -> Proposal:
        data = sign_bytes(self.chain_id, MessageType.PROPOSAL, height, round_, block_id, pol_round)
        signature = self._sign(height, round_, SignStep.PROPOSE, data, None)
        return Proposal(height, round_, block_id, pol_round, self.public_key, signature)

    def sign_vote(self, kind: MessageType, height: int, round_: int, block_id: bytes | None) -> Vote:
        data = sign_bytes(self.chain_id, kind, height, round_, block_id, -1)
        lock = block_id if kind == MessageType.PRECOMMIT else None
        signature = self._sign(height, round_, _STEP_OF_TYPE[kind], data, lock)
        return Vote(kind, height, round_, block_id, self.public_key, signature)

    def check(self, height: int, round_: int, step: SignStep, data: bytes) -> bytes | None:
        """Apply the double-sign rules: None if a fresh signature is allowed, the saved signature
        if these are the very bytes last signed, else raise DoubleSignRefused."""
        last = self.state
        if height < last.height:
            raise DoubleSignRefused(f"height regression: {height} < {last.height}")
        if height == last.height:
            if round_ < last.round:
                raise DoubleSignRefused(f"round regression at height {height}: {round_} < {last.round}")
            if round_ == last.round:
                if step < last.step:
                    raise DoubleSignRefused(f"step regression at {height}/{round_}")
                if step == last.step:
                    if data == last.sign_bytes:
                        return last.signature
                    raise DoubleSignRefused(f"conflicting data at {height}/{round_}/{step.name}")
        return None

    def _sign(self, height: int, round_: int, step: SignStep, data: bytes, lock: bytes | None) -> bytes:
        saved = self.check(height, round_, step, data)
        if saved is not None:
            return saved
        signature = self._key.sign(data).signature
        last = self.state
        if height == last.height:
            lock_round, lock_block_id = last.lock_round, last.lock_block_id
        else:
            lock_round, lock_block_id = -1, None
        if lock is not None:
            lock_round, lock_block_id = round_, lock
        self.state = replace(last, height=height, round=round_, step=step, sign_bytes=data,
                             signature=signature, lock_round=lock_round, lock_block_id=lock_block_id)
        return signature
