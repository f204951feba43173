"""Hostile bytes at the three decoders a stranger can reach: the transaction decoder (through the
mempool and through a proposed block), the peer frame decoder, and the JSON-RPC parser.

The invariant, each time: our typed error and nothing else, no hang, and no state change: the
store's file is byte-identical afterwards and the mempool holds what it held. The unit tests in
tests/unit (codec, wire, rpc protocol) cover each decoder's own cases; this file feeds all of them
the same hostile corpus (deep nesting, truncation, oversize, mutation, random), end to end.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Block, errors
from ledger.testing import LedgerHarness
from ledger.tx import TX_BYTES_MAX, decode_transaction
from node.mempool.pool import REFUSAL_REASONS, Mempool, MempoolRefusal
from node.p2p import wire
from node.rpc.protocol import ErrorCode, ErrorReply, Request, parse_message

#: Examples per fuzz test; `SECLEDGER_FUZZ_EXAMPLES=20000` for a long run.
EXAMPLES = int(os.environ.get("SECLEDGER_FUZZ_EXAMPLES") or 150)
#: Deep enough to overflow a naive recursive decoder many times over.
DEPTH_MAX = 200_000


def _deep(kind: str, depth: int) -> bytes:
    if kind == "array":
        return b"\x91" * depth + b"\xc0"
    if kind == "map":
        return b"\x81\xa1k" * depth + b"\xc0"  # {"k": {"k": ... nil}}
    return b"\xdd\x00\x00\x00\x01" * depth + b"\xc0"  # array32 headers: same depth, longer spelling


def _envelope_with(body: bytes) -> bytes:
    """A transaction envelope whose body is `body` (raw msgpack), signature slot filled."""
    head = b"\x96" + msgpack.packb("secledger-test") + msgpack.packb(b"\x01" * 32, use_bin_type=True)
    return head + msgpack.packb(0) + msgpack.packb("token.transfer") + body + msgpack.packb(b"\x00" * 64,
                                                                                         use_bin_type=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A ledger with investors and a token, a mempool over it, and one valid transfer to mutate."""
    harness = LedgerHarness(str(tmp_path_factory.mktemp("store") / "store"))
    harness.standard_setup()
    harness.investor("alice")
    harness.investor("bob")
    issuer = harness.signer("issuer")
    harness.commit(issuer.create_token("ACME", "Acme", agents={harness.address("issuer"): ["supply"]}))
    harness.commit(issuer.issue("ACME", harness.address("alice"), 1_000))
    good = harness.signer("alice").transfer("ACME", harness.address("bob"), 1)
    mempool = Mempool(harness.ledger)
    yield harness, mempool, good
    mempool.close()
    harness.close()


def _store_digest(harness: LedgerHarness) -> str:
    """The LMDB data file, byte for byte (reads never write it)."""
    return hashlib.sha256((Path(harness.ledger.store.env.path()) / "data.mdb").read_bytes()).hexdigest()


def hostile(good: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(_deep, st.sampled_from(["array", "map", "array32"]), st.integers(1, DEPTH_MAX)),
        st.builds(lambda kind, depth: _envelope_with(_deep(kind, depth)),
                  st.sampled_from(["array", "map"]), st.integers(1, DEPTH_MAX)),
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),  # truncated
        st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
            lambda p: good[:p[0]] + bytes([good[p[0]] ^ p[1]]) + good[p[0] + 1:]),  # one byte flipped
        st.tuples(st.integers(0, len(good)), st.binary(min_size=1, max_size=16)).map(
            lambda p: good[:p[0]] + p[1] + good[p[0]:]),  # bytes inserted
        st.integers(TX_BYTES_MAX + 1, 4 * TX_BYTES_MAX).map(lambda n: good + b"\x00" * (n - len(good))),
        st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=4),
                     max_leaves=30).map(lambda v: msgpack.packb(v, use_bin_type=True)),
    )


def test_the_valid_transaction_is_admitted_so_the_fuzz_means_something(world):
    harness, _, good = world
    assert decode_transaction(good, chain_id=harness.ledger.chain_id).hash == hashlib.sha256(good).digest()
    other = Mempool(harness.ledger)  # not the fuzz's mempool: that one must stay empty
    try:
        assert other.add(good).hash == hashlib.sha256(good).digest()
    finally:
        other.close()


@settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_transactions_raise_typed_errors_and_change_nothing(world, data):
    harness, mempool, good = world
    raw = data.draw(hostile(good))
    ledger = harness.ledger
    before = (_store_digest(harness), ledger.tip, len(mempool), mempool.size_bytes)
    with pytest.raises(errors.InvalidTransaction):
        decode_transaction(raw, chain_id=ledger.chain_id)
    with pytest.raises(MempoolRefusal) as refusal:
        mempool.add(raw)
    assert refusal.value.reason in REFUSAL_REASONS
    block = ledger.build_block((raw,), time_ms=ledger.tip.time_ms + 1000, proposer=harness.address("admin"))
    with pytest.raises(errors.InvalidBlock):
        ledger.validate_block(block)
    with pytest.raises(errors.LedgerError):  # a certified block with it does not apply either
        ledger.apply_block(Block.decode(block.encode()), b"")
    assert (_store_digest(harness), ledger.tip, len(mempool), mempool.size_bytes) == before


@settings(max_examples=EXAMPLES, deadline=2000)
@given(data=st.data())
def test_hostile_peer_frames_raise_wire_error_only(data):
    valid = [wire.encode(m) for m in (wire.Status(7, b"\x01" * 32, b"\x02" * 32), wire.Txs((b"a", b"b")),
                                      wire.GetBlocks(1, 32), wire.Blocks(((b"b", b"c"),)))]
    good = data.draw(st.sampled_from(valid))
    nested = st.builds(lambda d: b"\x92\xa6blocks" + _deep("array", d), st.integers(1, DEPTH_MAX))
    raw = data.draw(st.one_of(hostile(good), nested))
    try:
        message = wire.decode(raw, bytes_max=1 << 20)
    except wire.WireError:
        return
    assert wire.decode(wire.encode(message), bytes_max=1 << 20) == message  # what parses is well formed


def test_oversized_peer_message_is_refused_before_decoding():
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(wire.Txs((b"x" * 2048,))), bytes_max=1024)


@pytest.mark.parametrize("body", [
    b"[" * DEPTH_MAX + b"]" * DEPTH_MAX,
    b'{"a":' * DEPTH_MAX + b"1" + b"}" * DEPTH_MAX,
    b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status", "params": ' + b"[" * DEPTH_MAX + b"]" * DEPTH_MAX + b"}",
    b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status", "params": {"x": 1' + b"0" * 100_000 + b"}}",
    b'{"jsonrpc": "2.0", "id": ' + b"9" * 100_000 + b', "method": "chain_status"}',
    b"\xff\xfe" + "{}".encode("utf-16-le"),
    b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status"' + b" " * 500_000,
])
def test_json_rpc_parser_answers_hostile_documents_with_an_error(body):
    """The parser alone; the HTTP server's limits are tested against a running node (test_rpc_flood)."""
    started = time.monotonic()
    message = parse_message(body, batch_length_max=100)
    assert time.monotonic() - started < 5
    assert message.items and all(isinstance(item, ErrorReply) for item in message.items)
    assert {item.error.code for item in message.items} <= {ErrorCode.PARSE_ERROR, ErrorCode.INVALID_REQUEST}


VALID_REQUESTS = [
    b'{"jsonrpc": "2.0", "id": 1, "method": "tx_submit", "params": {"tx": "00ff"}}',
    b'[{"jsonrpc": "2.0", "id": 1, "method": "chain_status"}, {"jsonrpc": "2.0", "method": "x", "params": [1]}]',
]


def _json_nest(depth: int, opener: bytes, closer: bytes, inner: bytes = b"1") -> bytes:
    return opener * depth + inner + closer * depth


@settings(max_examples=EXAMPLES, deadline=2000)
@given(body=st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda v, n: v[:n], st.sampled_from(VALID_REQUESTS), st.integers(0, 120)),  # truncated
    st.builds(_json_nest, st.integers(1, DEPTH_MAX), st.sampled_from([b"[", b'{"a":']),
              st.sampled_from([b"]", b"}"])),
    st.builds(lambda d: b'{"jsonrpc": "2.0", "id": 1, "method": "m", "params": ' + _json_nest(d, b"[", b"]") + b"}",
              st.integers(1, 5000)),
    st.builds(lambda n: b"[" + b",".join([b'{"jsonrpc": "2.0", "id": 1, "method": "m"}'] * n) + b"]",
              st.integers(90, 2000)),  # batches around and over the limit
    st.builds(lambda v, junk, at: v[:at] + junk + v[at:], st.sampled_from(VALID_REQUESTS),
              st.binary(min_size=1, max_size=8), st.integers(0, 120)),
))
def test_json_rpc_parser_never_raises_and_bounds_batches(body):
    message = parse_message(body, batch_length_max=100)
    assert message.items
    assert len(message.items) <= 100
    for item in message.items:
        assert isinstance(item, (ErrorReply, Request))
        if isinstance(item, ErrorReply):
            assert isinstance(item.error.code, int) and item.error.message
