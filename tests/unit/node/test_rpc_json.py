"""The JSON-RPC layer's fast JSON (msgspec parses, orjson writes) against the standard library's
`json`, which it falls back to and which stays the reference: for any body, the same document
(same values, same types, same key order) or the same parse error with the same message; for any
document, the same JSON or the same exception. A divergence here changes an answer of the RPC.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.rpc import protocol
from node.rpc.protocol import JSON_FAST_BRACKETS_MAX, ParseError, decode_json, encode

#: The standard library alone. A partial, not a lambda: json's depth limit counts the Python frames
#: above it, and the comparison is only fair from the same depth.
REFERENCE_PARSE = functools.partial(decode_json, fast=False)
REFERENCE_WRITE = functools.partial(encode, fast=False)
EXAMPLES = int(os.environ.get("SECLEDGER_FUZZ_EXAMPLES") or 400)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def typed(value: Any) -> Any:
    """`value` with every scalar's exact type beside it and every map's keys in order, so that
    1 and 1.0, or {"a", "b"} in two orders, compare unequal."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def parsed(body: bytes | str, parse: Any) -> tuple[str, Any]:
    try:
        return "ok", typed(parse(body))
    except ParseError as error:
        return "error", error.message


def same_parse(body: bytes | str) -> tuple[str, Any]:
    fast = parsed(body, decode_json)
    assert fast == parsed(body, REFERENCE_PARSE), body[:200]
    if isinstance(body, bytes):
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return fast
        assert parsed(text, decode_json) == parsed(text, REFERENCE_PARSE)
    return fast


# --- parsing ------------------------------------------------------------------------------------------

EDGE_BODIES = [
    b"", b" ", b"\n", b"null", b"true", b"0", b"-0", b"-0.0", b"01", b"1.", b".5", b"1e", b"+1", b"0x10",
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b'{"a": NaN}', b"[Infinity]", b"1e400", b"-1e400", b"[1e308, 1e309]",
    b"5e-324", b"2.4e-324", b"1.7976931348623157e308", b"1.7976931348623159e308", b"0.1", b"1E2", b"1e-7",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808", b"-9223372036854775809",
    b"18446744073709551615", b"18446744073709551616", b"-18446744073709551616", b"123456789012345678901234567890",
    b"1" * 4300, b"1" * 4301, b"-" + b"1" * 4300, b"1" * 4300 + b".5",
    b'"\\udc00"', b'"\\ud800"', b'"\\ud800\\udc00"', b'"\\udbff\\udfff"', b'"\\ud800x"', b'"\\u0000"', b'"\\uD83D\\uDE00"',
    b'"\xed\xa0\x80"', b'"\xff"', b'"\xc0\xaf"', b'"\xf4\x90\x80\x80"', b"\xef\xbb\xbf{}", b'"\x7f"', b'"\x1f"', b'"\t"',
    b'"\\/"', b'"\\x"', b'"\\u12"', b'"\\U0041"',
    b'{"a":1,"a":2}', b'{"a":1,"b":2,"a":3}', b'{"b":1,"a":2}', b'{"a":1,}', b"[1,]", b"[,1]", b'{"a"}', b"{1:2}",
    b'{"a":1} ', b'{"a":1}\n\r\t ', b'{"a":1} x', b'{"a":1}{"a":1}', b"\x0c[1]", b"[1]\x0c", b"[1]\x00", b"\x00",
    b"\xc2\xa0[1]", b"[\xc2\xa01]", b"[1,\n2]", b"  [  1 , 2 ]  ",
    b'{"jsonrpc":"2.0","method":"m","id":1e400}', b'{"jsonrpc":"2.0","method":"m","id":"\\udc00"}',
    b'{"jsonrpc":"2.0","method":"m","params":[123456789012345678901234567890],"id":1}',
    b'{"jsonrpc":"2.0","method":"tx_submit","params":{"tx":"00ff"},"id":7}',
]


@pytest.mark.parametrize("body", EDGE_BODIES)
def test_edge_bodies_parse_the_same_as_the_standard_library(body: bytes) -> None:
    same_parse(body)


def test_integers_of_any_size_stay_exact_integers() -> None:
    assert decode_json(b"[18446744073709551616, -9223372036854775809, 1.0]") == [2**64, -(2**63) - 1, 1.0]
    assert type(decode_json(b"[1.0]")[0]) is float


def decode_json_before(body: bytes | str) -> Any:
    """`protocol.decode_json` before the fast path, verbatim, called from the same depth as it is."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        return json.loads(text, parse_constant=protocol._refuse_constant)
    except (ValueError, RecursionError) as error:
        raise ParseError(f"Parse error: {protocol._first_line(error)}") from None


def _shape(value: Any) -> tuple[int, Any]:
    """Depth and innermost value of a one-path nesting, without recursion (the documents here
    are nested deeper than comparing them recursively allows)."""
    depth = 0
    while isinstance(value, (list, dict)):
        value = value[0] if isinstance(value, list) else value["a"]
        depth += 1
    return depth, value


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
def test_nesting_around_the_recursion_limit_parses_as_the_standard_library_does(opener: bytes, closer: bytes) -> None:
    def nested(depth: int) -> bytes:
        return opener * depth + b"1" + closer * depth

    def refused(depth: int) -> bool:
        try:
            decode_json_before(nested(depth))
        except ParseError:
            return True
        return False

    low, high = 1, 5000  # json's deepest document from this stack: msgspec's is a few levels deeper
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (low, middle - 1) if refused(middle) else (middle, high)
    edges = [*range(JSON_FAST_BRACKETS_MAX - 3, JSON_FAST_BRACKETS_MAX + 3), *range(low - 8, low + 9), 1024, 1025]
    assert low > JSON_FAST_BRACKETS_MAX + 100, "json's limit must lie well beyond the fast path's"
    for depth in edges:
        for body in (opener * depth + b"1" + closer * depth, b" " * 600 + opener * depth + b"1" + closer * depth):
            outcomes = []
            for parse in (decode_json, decode_json_before):
                try:
                    outcomes.append(("ok", _shape(parse(body))))
                except ParseError as error:
                    outcomes.append(("error", error.message))
            assert outcomes[0] == outcomes[1], depth


def test_a_batch_with_many_brackets_is_parsed_by_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = b'{"jsonrpc":"2.0","method":"tx_submit","params":{"tx":"00ff"},"id":1}'
    small = b"[" + b",".join([entry] * 100) + b"]"
    large = b"[" + b",".join([entry] * 300) + b"]"
    calls: list[int] = []
    monkeypatch.setattr(protocol, "_JSON_DECODER", type("Spy", (), {"decode": lambda self, body: calls.append(len(body))
                                                                    or json.loads(body)})())
    assert decode_json(small) == json.loads(small) and calls == [len(small)]
    assert decode_json(large) == json.loads(large) and calls == [len(small)]


json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text())
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=20)


@FUZZ
@given(json_values, st.sampled_from([None, 0, 2]), st.booleans())
def test_generated_documents_parse_the_same(value: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate: only as a str, or escaped
        body = json.dumps(value, indent=indent).encode()
    assert same_parse(body)[0] == "ok"
    same_parse(text)


NUMBER_TEXT = st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)


@FUZZ
@given(NUMBER_TEXT)
def test_generated_numbers_parse_to_the_same_value(number: str) -> None:
    same_parse(number.encode())
    same_parse(f'{{"jsonrpc":"2.0","method":"m","params":[{number}],"id":{number}}}'.encode())


@FUZZ
@given(st.binary(max_size=300) | st.builds(lambda d, junk, at: d[:at] + junk + d[at:],
                                             st.sampled_from(EDGE_BODIES[-4:]), st.binary(min_size=1, max_size=6),
                                             st.integers(0, 80)))
def test_hostile_bytes_parse_the_same(body: bytes) -> None:
    same_parse(body)


@FUZZ
@given(st.text(max_size=60))
def test_generated_strings_parse_the_same(text: str) -> None:
    same_parse(json.dumps(text, ensure_ascii=True).encode())
    same_parse('"' + text + '"')


# --- writing ------------------------------------------------------------------------------------------


def written(document: Any, write: Any) -> tuple[str, Any]:
    try:
        return "ok", write(document)
    except (TypeError, ValueError) as error:
        return type(error).__name__, str(error)


def _has_float(document: Any) -> bool:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, float):
            return True
    return False


def same_write(document: Any) -> tuple[str, Any]:
    """The same bytes; where floats are, the same values (orjson writes 1e-7 where json writes
    1e-07: the same number)."""
    fast = written(document, encode)
    reference = written(document, REFERENCE_WRITE)
    if fast[0] == reference[0] == "ok" and _has_float(document):
        assert typed(json.loads(fast[1])) == typed(json.loads(reference[1])), document
        assert fast[1].decode("utf-8")  # still UTF-8
    else:
        assert fast == reference, document
    return fast


class Color(enum.IntEnum):
    RED = 1


class Name(enum.StrEnum):
    ALICE = "alice"


EDGE_DOCUMENTS: list[Any] = [
    None, True, 0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, 1.5, -0.0, 1e30, 1e-7, 5e-324,
    1.7976931348623157e308, 0.1, 1e16, 123456789.0, float("nan"), float("inf"), -float("inf"), [1, float("nan")],
    {"a": [None, {"b": float("inf")}]}, {"a": None}, [None, 1.5], "", "é", "\x00\x1f\x7f\u2028\u2029", '"\\/',
    "\udc00", {"id": "\udc00"}, {"\udc00": 1}, "\U0001f600", {1: 2}, {True: 1}, {None: 1}, {1.5: 1}, (1, (2, 3)),
    Color.RED, {"c": Color.RED}, Name.ALICE, {Name.ALICE: 1}, b"x", {"x": b"x"}, {1, 2}, object(),
    {"jsonrpc": "2.0", "result": {"hash": "ab" * 32, "status": "pending"}, "id": 7},
    {"jsonrpc": "2.0", "error": {"code": -32602, "message": "tx: must match", "data": {"param": "tx"}}, "id": None},
]


@pytest.mark.parametrize("document", EDGE_DOCUMENTS, ids=lambda d: repr(d)[:40])
def test_edge_documents_are_written_as_the_standard_library_writes_them(document: Any) -> None:
    same_write(document)


def test_deep_documents_are_written_as_the_standard_library_writes_them() -> None:
    for depth in (200, 254, 255, 256, 600):
        value: Any = 1
        for _ in range(depth):
            value = [value]
        same_write(value)


def test_nan_is_refused_even_beside_a_null() -> None:
    with pytest.raises(ValueError):
        encode({"a": None, "b": [1, {"c": float("nan")}]})
    assert encode({"a": None, "b": [1.5]}) == b'{"a":null,"b":[1.5]}'


write_values = st.recursive(
    json_scalars | st.floats() | st.integers(-(2**80), 2**80) | st.sampled_from([Color.RED, Name.ALICE, "\udc00"]),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), inner, max_size=4),
    max_leaves=20)


@FUZZ
@given(write_values)
def test_generated_documents_are_written_the_same(document: Any) -> None:
    same_write(document)
