"""Messages: canonical sign bytes and a wire codec that parses or raises MalformedMessage."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import MalformedMessage
from consensus.messages import (
    PRECOMMIT,
    PREVOTE,
    MessageType,
    Proposal,
    Vote,
    decode_message,
    encode_message,
    sign_bytes,
)
from consensus.signing import Signer, verify_message
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys

KEY = signing_keys(1)[0]
SIGNER = Signer(KEY, CHAIN_ID)
BLOCK = block_id("b")


def samples() -> list[Proposal | Vote]:
    s = Signer(KEY, CHAIN_ID)
    return [
        s.sign_proposal(5, 2, BLOCK, 1),
        s.sign_vote(PREVOTE, 5, 2, BLOCK),
        s.sign_vote(PRECOMMIT, 5, 2, None),
    ]


@pytest.mark.parametrize("message", samples())
def test_round_trip_and_signature(message: Proposal | Vote) -> None:
    data = encode_message(message)
    assert decode_message(data) == message
    assert verify_message(CHAIN_ID, message)
    assert not verify_message("other-chain", message)


@pytest.mark.parametrize("message", samples())
def test_trailing_garbage_and_truncation_are_malformed(message: Proposal | Vote) -> None:
    data = encode_message(message)
    with pytest.raises(MalformedMessage):
        decode_message(data + b"\x00")
    for cut in range(len(data)):
        with pytest.raises(MalformedMessage):
            decode_message(data[:cut])


def test_sign_bytes_bind_every_field() -> None:
    base = ("c", MessageType.PREVOTE, 1, 0, BLOCK, -1)
    variants = [
        ("d", MessageType.PREVOTE, 1, 0, BLOCK, -1),
        ("c", MessageType.PRECOMMIT, 1, 0, BLOCK, -1),
        ("c", MessageType.PREVOTE, 2, 0, BLOCK, -1),
        ("c", MessageType.PREVOTE, 1, 1, BLOCK, -1),
        ("c", MessageType.PREVOTE, 1, 0, None, -1),
        ("c", MessageType.PREVOTE, 1, 0, BLOCK, 0),
    ]
    all_bytes = {sign_bytes(*base)} | {sign_bytes(*v) for v in variants}
    assert len(all_bytes) == 1 + len(variants)
    assert sign_bytes(*base).startswith(b"secledger/consensus/v1\x00")


def test_non_canonical_encodings_are_malformed() -> None:
    vote = SIGNER.sign_vote(PREVOTE, 1, 0, BLOCK)
    fields = [1, vote.height, vote.round, vote.block_id, vote.validator, vote.signature]
    canonical = msgpack.packb(fields, use_bin_type=True)
    assert decode_message(canonical) == vote
    # The height as a uint64 instead of a positive fixint: same value, other bytes.
    wide = canonical.replace(b"\x96\x01\x01", b"\x96\x01\xcf" + (1).to_bytes(8, "big"), 1)
    assert wide != canonical
    with pytest.raises(MalformedMessage):
        decode_message(wide)


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [99, 1, 0, BLOCK, bytes(32), bytes(64)],
        [1, 0, 0, BLOCK, bytes(32), bytes(64)],  # height 0
        [1, 2**63, 0, BLOCK, bytes(32), bytes(64)],  # height too large
        [1, 1, -1, BLOCK, bytes(32), bytes(64)],  # negative round
        [1, 1, 2**31, BLOCK, bytes(32), bytes(64)],  # round too large
        [1, True, 0, BLOCK, bytes(32), bytes(64)],  # a bool is not an int
        [1, 1, 0, BLOCK[:31], bytes(32), bytes(64)],
        [1, 1, 0, BLOCK, bytes(31), bytes(64)],
        [1, 1, 0, BLOCK, bytes(32), bytes(63)],
        [1, 1, 0, "text", bytes(32), bytes(64)],
        [32, 1, 0, BLOCK, 0, bytes(32), bytes(64)],  # pol_round must be below round
        [32, 1, 3, None, -1, bytes(32), bytes(64)],  # a proposal needs a block
        [1, 1, 0, BLOCK, bytes(32)],
        {"a": 1},
        7,
    ],
)
def test_out_of_bounds_or_ill_typed_fields_are_malformed(fields: object) -> None:
    with pytest.raises(MalformedMessage):
        decode_message(msgpack.packb(fields, use_bin_type=True))


def test_oversized_input_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        decode_message(b"\x91" + b"\xc4\xff" + bytes(255))
    with pytest.raises(MalformedMessage):
        decode_message("not bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_parse_or_typed_error(data: bytes) -> None:
    try:
        message = decode_message(data)
    except MalformedMessage:
        return
    assert encode_message(message) == data


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([encode_message(m) for m in samples()]), st.integers(0, 200), st.integers(0, 255))
def test_fuzz_mutations_parse_or_typed_error(data: bytes, position: int, value: int) -> None:
    mutated = bytearray(data)
    mutated[position % len(mutated)] = value
    try:
        message = decode_message(bytes(mutated))
    except MalformedMessage:
        return
    assert encode_message(message) == bytes(mutated)
