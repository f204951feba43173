"""The typed fast path of `decode_transaction` (msgspec, `kinds.TYPED_KINDS`) against the general
path (`codec.decode` and `check_body`): for any bytes, the same transaction or the same error,
named the same and with the same message. The fast path only ever accepts; every refusal is the
general path's, so a divergence here means the fast path took something the general path refuses
or gave it other fields.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any
from unittest import mock

import msgpack
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import codec, tx
from ledger.errors import InvalidTransaction
from ledger.kinds import AMOUNT_MAX, HEIGHT_MAX, KINDS, TYPED_KINDS, check_body
from ledger.testing import CHAIN_ID, address_of, key_for
from ledger.tx import NONCE_MAX, TX_BYTES_MAX, decode_transaction, sign_transaction

EXAMPLES = int(os.environ.get("SECLEDGER_FUZZ_EXAMPLES") or 300)


def outcome(raw: Any, *, general: bool = False, verify_signature: bool = False) -> tuple[str, Any]:
    """What decoding `raw` gives, in a comparable form: the transaction's fields (with the exact
    types of its body's values), or the error's class name and message."""
    patch = mock.patch.object(tx, "_decode_typed", lambda raw: None) if general else mock.MagicMock()
    with patch:
        try:
            t = decode_transaction(raw, chain_id=CHAIN_ID, verify_signature=verify_signature)
        except InvalidTransaction as error:
            return type(error).__name__, str(error)
    body = [(k, type(v).__name__, v) for k, v in t.body.items()]
    return "ok", (t.chain_id, t.signer, t.nonce, t.kind, body, t.signature, t.raw, t.hash,
                  type(t.signer), type(t.signature), type(t.nonce))


def same(raw: Any, *, verify_signature: bool = False) -> tuple[str, Any]:
    fast = outcome(raw, verify_signature=verify_signature)
    assert fast == outcome(raw, general=True, verify_signature=verify_signature), raw
    return fast


# --- what the fast path relies on ------------------------------------------------------------------


BOUNDARY_INTS = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
BOUNDARY_LENGTHS = [0, 1, 31, 32, 255, 256, 65_535, 65_536]


@pytest.mark.parametrize("value", [
    *BOUNDARY_INTS,
    *("x" * n for n in BOUNDARY_LENGTHS),
    *(b"x" * n for n in BOUNDARY_LENGTHS),
    "é" * 200, True, False, None,
    list(range(15)), list(range(16)), list(range(70_000)),
    dict(sorted((str(i), i) for i in range(15))), dict(sorted((str(i), i) for i in range(16))),
])
def test_msgspec_writes_every_value_as_the_canonical_codec_does(value: Any) -> None:
    """The fast path accepts bytes when msgspec's encoding of what it read gives them back: that
    is the canonical check only if msgspec spells every value as `codec.encode` does."""
    assert msgspec.msgpack.encode(value) == codec.encode(value)


def test_typed_kinds_are_kinds() -> None:
    assert set(TYPED_KINDS) <= set(KINDS)


VALID_FIELDS: dict[str, Any] = {
    "symbol": "ACME", "address": address_of("bob"), "amount": 10**18, "action_id": "div-2027:1",
    "instruction_id": 7, "option": 3,
}


def _valid_body(kind: str) -> dict[str, Any]:
    return {name: VALID_FIELDS[checker] for name, checker in TYPED_KINDS[kind].items()}


@pytest.mark.parametrize("kind", sorted(TYPED_KINDS))
def test_each_typed_kind_takes_the_fast_path_and_gives_what_the_general_path_gives(kind: str) -> None:
    body = _valid_body(kind)
    assert check_body(kind, body) == body  # the mirror's fields are the kind's
    raw = sign_transaction(key_for("alice"), chain_id=CHAIN_ID, nonce=5, kind=kind, body=body)
    assert tx._decode_typed(raw) is not None, "the fast path must be taken, or these tests test nothing"
    assert same(raw, verify_signature=True)[0] == "ok"


def test_other_kinds_go_the_general_way() -> None:
    raw = sign_transaction(key_for("alice"), chain_id=CHAIN_ID, nonce=0, kind="token.pause", body={"token": "ACME"})
    assert tx._decode_typed(raw) is None
    assert same(raw, verify_signature=True)[0] == "ok"


# --- generated bodies and envelopes -------------------------------------------------------------------


def _near(values: list[int]) -> st.SearchStrategy[int]:
    return st.sampled_from([v + d for v in values for d in (-1, 0, 1)])


_ANY = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=4),
                 st.binary(max_size=33), st.lists(st.integers(0, 3), max_size=2))
_TEXT_EDGES = ["", "\n", "ACME\n", "\nACME", "A" * 16, "A" * 17, "a", "A b", "x" * 64, "x" * 65, "é", "A\x00"]

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "symbol": st.one_of(st.from_regex(r"[A-Z0-9][A-Z0-9.\-]{0,15}", fullmatch=True), st.text(max_size=18),
                        st.sampled_from(_TEXT_EDGES)),
    "address": st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
    "amount": st.one_of(st.integers(1, AMOUNT_MAX), _near([0, AMOUNT_MAX]).filter(lambda v: v <= AMOUNT_MAX),
                        st.integers(-(2**63), 2**64 - 1)),
    "action_id": st.one_of(st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True), st.text(max_size=66),
                           st.sampled_from(_TEXT_EDGES)),
    "instruction_id": st.one_of(st.integers(1, HEIGHT_MAX), _near([0, 1, HEIGHT_MAX])),
    "option": st.one_of(st.integers(0, 15), _near([0, 15])),
}


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> Any:
    fields = TYPED_KINDS[kind]
    body: dict[Any, Any] = {}
    for name, checker in fields.items():
        if draw(st.integers(0, 19)) == 0:
            continue  # a missing field
        body[name] = draw(st.one_of(FIELD_VALUES[checker], _ANY) if draw(st.booleans()) else FIELD_VALUES[checker])
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["extra", "Token", "amount ", "to", "token"]))] = draw(_ANY)
    if draw(st.integers(0, 29)) == 0:
        return draw(_ANY)  # not a map at all
    return body


@st.composite
def transactions(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(TYPED_KINDS)))
    body = draw(bodies(kind))
    chain = draw(st.sampled_from([CHAIN_ID, CHAIN_ID, CHAIN_ID, "other-chain", "", "c" * 64, "c" * 65]))
    signer = draw(st.sampled_from([address_of("alice"), address_of("alice"), b"\x01" * 31, "alice"]))
    nonce = draw(st.one_of(st.integers(0, 1000), _near([0, NONCE_MAX]), st.sampled_from([True, 2**64 - 1])))
    signature = draw(st.sampled_from([b"\x07" * 64, b"\x07" * 64, b"\x07" * 63, b"\x07" * 65]))
    kind_on_wire = draw(st.sampled_from([kind, kind, kind, "token.mint", 5]))
    envelope = [chain, signer, nonce, kind_on_wire, body, signature]
    if draw(st.integers(0, 19)) == 0:
        envelope = envelope[:draw(st.integers(0, 5))] + ([draw(_ANY)] if draw(st.booleans()) else [])
    if draw(st.booleans()) and isinstance(body, dict) and all(isinstance(k, str) for k in body):
        envelope[4:5] = [dict(sorted(body.items()))] if len(envelope) > 4 else []  # canonical order
    return msgpack.packb(envelope, use_bin_type=True)


BOUNDARIES: dict[str, list[Any]] = {
    "symbol": ["A", "A" * 16, "A" * 17, "", "a", "ACME\n", "\nACME", "AC ME", ".A", "A.-9", "Ä", 5, b"ACME", None],
    "address": [b"\x01" * 31, b"\x01" * 32, b"\x01" * 33, "\x01" * 32, bytearray(32), None, 0],
    "amount": [0, 1, 2, AMOUNT_MAX - 1, AMOUNT_MAX, -1, -(2**63), True, False, None, "1", b"\x01"],
    "action_id": ["a", "x" * 64, "x" * 65, "", "a\n", "a b", "a/b", "é", "A.b_c:d-e", 5, None, b"a"],
    "instruction_id": [0, 1, HEIGHT_MAX - 1, HEIGHT_MAX, HEIGHT_MAX + 1, 2**64 - 1, -1, True, None, "1"],
    "option": [-1, 0, 1, 15, 16, 2**63, True, False, None, "0"],
}


def _envelope(kind: str, body: Any) -> bytes:
    """A canonically ordered envelope around `body` (written as msgpack writes it, keys sorted)."""
    if isinstance(body, dict):
        body = dict(sorted(body.items()))
    return _pack([CHAIN_ID, address_of("alice"), 9, kind, body, b"\x07" * 64])


@pytest.mark.parametrize("kind", sorted(TYPED_KINDS))
def test_every_field_at_and_beyond_its_bounds_decodes_the_same_both_ways(kind: str) -> None:
    for name, checker in TYPED_KINDS[kind].items():
        for value in BOUNDARIES[checker]:
            same(_envelope(kind, {**_valid_body(kind), name: value}))
        body = _valid_body(kind)
        del body[name]
        assert same(_envelope(kind, body))[0] == "InvalidBody"
    assert same(_envelope(kind, {**_valid_body(kind), "zz": 1}))[0] == "InvalidBody"
    assert same(_envelope(kind, _valid_body(kind)))[0] == "ok"


@st.composite
def valid_envelopes(draw: st.DrawFn) -> bytes:
    """Envelopes right in every way but the body, whose fields are mostly near their bounds."""
    kind = draw(st.sampled_from(sorted(TYPED_KINDS)))
    body = {name: draw(st.one_of(FIELD_VALUES[checker], st.sampled_from(BOUNDARIES[checker])))
            for name, checker in TYPED_KINDS[kind].items()}
    return _envelope(kind, body)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(transactions())
def test_generated_transactions_decode_the_same_both_ways(raw: bytes) -> None:
    same(raw)


@FUZZ
@given(valid_envelopes())
def test_generated_bodies_in_valid_envelopes_decode_the_same_both_ways(raw: bytes) -> None:
    same(raw)


@FUZZ
@given(st.sampled_from(sorted(TYPED_KINDS)), st.data())
def test_generated_valid_transactions_are_accepted_the_same_both_ways(kind: str, data: st.DataObject) -> None:
    body = {name: data.draw(FIELD_VALUES[checker]) for name, checker in TYPED_KINDS[kind].items()}
    try:
        check_body(kind, body)
    except InvalidTransaction:
        return
    raw = sign_transaction(key_for("alice"), chain_id=CHAIN_ID, nonce=data.draw(st.integers(0, NONCE_MAX)),
                           kind=kind, body=body)
    assert tx._decode_typed(raw) is not None
    assert same(raw, verify_signature=True)[0] == "ok"


# --- hostile spellings of valid transactions ---------------------------------------------------------


def _valid(kind: str) -> bytes:
    return sign_transaction(key_for("alice"), chain_id=CHAIN_ID, nonce=300, kind=kind, body=_valid_body(kind))


def _respelled(raw: bytes, change: Callable[[list[Any]], list[bytes]]) -> bytes:
    """The envelope written item by item by `change`, from its items."""
    return b"\x96" + b"".join(change(msgpack.unpackb(raw, raw=False)))


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "trailing byte": lambda raw: raw + b"\x00",
    "array header 16": lambda raw: b"\xdc\x00\x06" + raw[1:],
    "seven items": lambda raw: b"\x97" + raw[1:] + b"\xc0",
    "nonce as uint32": lambda raw: _respelled(raw, lambda v: [_pack(v[0]), _pack(v[1]), b"\xce" + v[2].to_bytes(4, "big"),
                                                               _pack(v[3]), _pack(v[4]), _pack(v[5])]),
    "kind as str8": lambda raw: _respelled(raw, lambda v: [_pack(v[0]), _pack(v[1]), _pack(v[2]),
                                                            b"\xd9" + bytes([len(v[3])]) + v[3].encode(), _pack(v[4]),
                                                            _pack(v[5])]),
    "body keys reversed": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:4]),
                                                                  _pack(dict(reversed(v[4].items()))), _pack(v[5])]),
    "body key repeated": lambda raw: _respelled(raw, lambda v: [
        *map(_pack, v[:4]),
        bytes([0x80 | (len(v[4]) + 1)]) + b"".join(_pack(k) + _pack(x) for k, x in v[4].items())
        + _pack(next(iter(v[4]))) + _pack(next(iter(v[4].values()))),
        _pack(v[5])]),
    "body map16": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:4]),
                                                          b"\xde\x00" + bytes([len(v[4])]) + _pack(v[4])[1:], _pack(v[5])]),
    "signature as str": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:5]), msgpack.packb(v[5].decode("latin-1"))]),
    "signer as bin16": lambda raw: _respelled(raw, lambda v: [_pack(v[0]), b"\xc5\x00\x20" + v[1], *map(_pack, v[2:])]),
    "ext in body": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:4]), _pack({**v[4], "x": msgpack.ExtType(1, b"a")}),
                                                           _pack(v[5])]),
    "float amount": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:4]),
                                                            _pack({k: (float(x) if isinstance(x, int) else x)
                                                                   for k, x in v[4].items()}), _pack(v[5])]),
    "body as list": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:4]), _pack(list(v[4].values())), _pack(v[5])]),
    "bytes key": lambda raw: _respelled(raw, lambda v: [*map(_pack, v[:4]),
                                                         _pack({k.encode(): x for k, x in v[4].items()}), _pack(v[5])]),
    "oversized": lambda raw: raw + b"\x00" * TX_BYTES_MAX,
}


@pytest.mark.parametrize("kind", sorted(TYPED_KINDS))
@pytest.mark.parametrize("how", sorted(HOSTILE))
def test_hostile_spellings_of_a_valid_transaction_are_refused_the_same_both_ways(kind: str, how: str) -> None:
    good = _valid(kind)
    raw = HOSTILE[how](good)
    result = same(raw)
    assert (result[0] == "ok") == (raw == good), (how, result)  # unchanged: a one-field body reversed


@FUZZ
@given(st.sampled_from(sorted(TYPED_KINDS)), st.data())
def test_mutated_transactions_decode_the_same_both_ways(kind: str, data: st.DataObject) -> None:
    good = _valid(kind)
    raw = data.draw(st.one_of(
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),
        st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
            lambda p: good[:p[0]] + bytes([good[p[0]] ^ p[1]]) + good[p[0] + 1:]),
        st.tuples(st.integers(0, len(good)), st.binary(min_size=1, max_size=8)).map(
            lambda p: good[:p[0]] + p[1] + good[p[0]:]),
        st.tuples(st.integers(0, len(good) - 1), st.integers(1, 8)).map(lambda p: good[:p[0]] + good[p[0] + p[1]:]),
    ))
    same(raw)
    same(bytearray(raw))


def test_the_hash_is_of_the_bytes_received() -> None:
    raw = _valid("token.transfer")
    assert decode_transaction(memoryview(raw), chain_id=CHAIN_ID).hash == hashlib.sha256(raw).digest()
