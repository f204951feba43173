"""Consensus messages (proposals and votes), their canonical sign bytes and their wire encoding.

A message names a 32-byte block id, never block contents: the node ships blocks separately. The
signature covers a domain tag plus canonical msgpack of [chain_id, type, height, round, block_id,
pol_round], so a signature for one chain, height, round, step or block is useless for any other.
``decode_message`` accepts exactly the bytes ``encode_message`` produces (a re-encode must give the
same bytes) and raises ``MalformedMessage`` for anything else; no other exception escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import msgpack

from consensus.errors import MalformedMessage

#: Prefixed to every signed payload so a consensus signature can never pass as anything else.
SIGN_DOMAIN_TAG: bytes = b"secledger/consensus/v1\x00"
BLOCK_ID_BYTES: int = 32
PUBLIC_KEY_BYTES: int = 32
SIGNATURE_BYTES: int = 64
#: Heights start at 1 and fit a signed 64-bit integer, as in CometBFT.
HEIGHT_MAX: int = 2**63 - 1
#: Rounds fit a signed 32-bit integer, as in CometBFT.
ROUND_MAX: int = 2**31 - 1
#: Chain ids are 1..50 printable ASCII characters (CometBFT's MaxChainIDLen is 50).
CHAIN_ID_CHARS_MAX: int = 50
#: No encoded message is longer than this; the largest real one is about 150 bytes.
MESSAGE_BYTES_MAX: int = 256


class MessageType(IntEnum):
    """The signed message types; the numbers are CometBFT's SignedMsgType values."""

    PREVOTE = 1
    PRECOMMIT = 2
    PROPOSAL = 32


PREVOTE = MessageType.PREVOTE
PRECOMMIT = MessageType.PRECOMMIT


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise MalformedMessage(f"{name} must be an int in [{low}, {high}]")


def _check_bytes(name: str, value: object, size: int) -> None:
    if type(value) is not bytes or len(value) != size:
        raise MalformedMessage(f"{name} must be {size} bytes")


def check_chain_id(chain_id: object) -> str:
    """Return ``chain_id`` if it is a valid chain id, else raise MalformedMessage."""
    if (
        type(chain_id) is not str
        or not 1 <= len(chain_id) <= CHAIN_ID_CHARS_MAX
        or not all(" " < c <= "~" for c in chain_id)
    ):
        raise MalformedMessage(f"chain id must be 1..{CHAIN_ID_CHARS_MAX} printable ASCII characters")
    return chain_id


def sign_bytes(chain_id: str, type_: MessageType, height: int, round_: int, block_id: bytes | None,
               pol_round: int) -> bytes:
    """The exact bytes a validator signs for one message."""
    return SIGN_DOMAIN_TAG + msgpack.packb(
        [chain_id, int(type_), height, round_, block_id, pol_round], use_bin_type=True
    )


@dataclass(frozen=True, slots=True)
class Proposal:
    """The proposer's signed proposal of ``block_id`` for (height, round).

    ``pol_round`` is the round of the proof of lock (+2/3 prevotes for this block) that justifies
    re-proposing it, or -1 for a fresh block.
    """

    height: int
    round: int
    block_id: bytes
    pol_round: int
    proposer: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_int("height", self.height, 1, HEIGHT_MAX)
        _check_int("round", self.round, 0, ROUND_MAX)
        _check_bytes("block_id", self.block_id, BLOCK_ID_BYTES)
        _check_int("pol_round", self.pol_round, -1, self.round - 1)
        _check_bytes("proposer", self.proposer, PUBLIC_KEY_BYTES)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES)

    @property
    def signer(self) -> bytes:
        return self.proposer

    @property
    def type(self) -> MessageType:
        return MessageType.PROPOSAL

    def sign_bytes(self, chain_id: str) -> bytes:
        return sign_bytes(chain_id, MessageType.PROPOSAL, self.height, self.round, self.block_id,
                          self.pol_round)


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed prevote or precommit for ``block_id`` at (height, round); ``None`` votes nil."""

    kind: MessageType
    height: int
    round: int
    block_id: bytes | None
    validator: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if self.kind not in (MessageType.PREVOTE, MessageType.PRECOMMIT) or type(self.kind) not in (
            MessageType, int
        ):
            raise MalformedMessage("vote kind must be PREVOTE or PRECOMMIT")
        if type(self.kind) is int:
            object.__setattr__(self, "kind", MessageType(self.kind))
        _check_int("height", self.height, 1, HEIGHT_MAX)
        _check_int("round", self.round, 0, ROUND_MAX)
        if self.block_id is not None:
            _check_bytes("block_id", self.block_id, BLOCK_ID_BYTES)
        _check_bytes("validator", self.validator, PUBLIC_KEY_BYTES)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES)

    @property
    def signer(self) -> bytes:
        return self.validator

    @property
    def type(self) -> MessageType:
        return self.kind

    def sign_bytes(self, chain_id: str) -> bytes:
        return sign_bytes(chain_id, self.kind, self.height, self.round, self.block_id, -1)


Message = Proposal | Vote


def encode_message(message: Message) -> bytes:
    """The canonical wire bytes of a proposal or vote."""
    if isinstance(message, Proposal):
        fields = [int(MessageType.PROPOSAL), message.height, message.round, message.block_id,
                  message.pol_round, message.proposer, message.signature]
    elif isinstance(message, Vote):
        fields = [int(message.kind), message.height, message.round, message.block_id,
                  message.validator, message.signature]
    else:
        raise TypeError(f"not a consensus message: {type(message).__name__}")
    return msgpack.packb(fields, use_bin_type=True)


def decode_message(data: bytes) -> Message:
    """Parse wire bytes into a Proposal or Vote, or raise MalformedMessage (and nothing else)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage("message must be bytes")
    data = bytes(data)
    if len(data) > MESSAGE_BYTES_MAX:
        raise MalformedMessage(f"message longer than {MESSAGE_BYTES_MAX} bytes")
    try:
        fields = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, max_str_len=0, max_bin_len=64,
            max_array_len=8, max_map_len=0, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many unrelated types for bad input
        raise MalformedMessage(f"not msgpack: {exc.__class__.__name__}") from None
    if type(fields) is not list or not fields or type(fields[0]) is not int:
        raise MalformedMessage("message must be an array starting with its type")
    type_ = fields[0]
    if type_ == MessageType.PROPOSAL:
        if len(fields) != 7:
            raise MalformedMessage("a proposal has 7 fields")
        message: Message = Proposal(*fields[1:])
    elif type_ in (MessageType.PREVOTE, MessageType.PRECOMMIT):
        if len(fields) != 6:
            raise MalformedMessage("a vote has 6 fields")
        message = Vote(MessageType(type_), *fields[1:])
    else:
        raise MalformedMessage(f"unknown message type {type_}")
    if encode_message(message) != data:
        raise MalformedMessage("non-canonical encoding")
    return message
