"""Peer messages: each kind round-trips; anything else is a WireError, never another exception."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.p2p import wire

MESSAGES = [
    wire.Status(7, b"\x01" * 32, b"\x02" * 32),
    wire.Txs((b"tx-1", b"tx-2")),
    wire.ConsensusMessage(b"vote"),
    wire.ProposalBlock(b"block"),
    wire.GetBlocks(5, 32),
    wire.Blocks(((b"block", b"cert"),)),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_round_trip(message):
    assert wire.decode(wire.encode(message), bytes_max=1 << 20) == message


def test_requests_are_clamped_and_malformed_refused():
    assert wire.decode(wire.encode(wire.GetBlocks(1, 10_000)), bytes_max=1 << 20).count == wire.SYNC_BATCH_MAX
    for bad in (["status", -1, b"", b""], ["txs", "x"], ["nope"], [], {"a": 1}, ["status", True, b"\0" * 32, b"\0" * 32]):
        with pytest.raises(wire.WireError):
            wire.decode(msgpack.packb(bad), bytes_max=1 << 20)


@given(st.binary(max_size=512))
def test_random_bytes_only_raise_wire_error(data):
    try:
        wire.decode(data, bytes_max=1 << 16)
    except wire.WireError:
        pass


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=5), max_leaves=20))
def test_random_structures_only_raise_wire_error(value):
    try:
        wire.decode(msgpack.packb(["status", value, value, value]), bytes_max=1 << 16)
        wire.decode(msgpack.packb(["blocks", value]), bytes_max=1 << 16)
    except wire.WireError:
        pass
