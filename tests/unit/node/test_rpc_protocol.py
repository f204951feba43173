"""JSON-RPC 2.0 wire format: parsing, error objects, the error table, and a fuzz of the whole
parse-and-dispatch path whose invariant is "only well-formed JSON-RPC responses come out"."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.rpc.dispatch import Dispatcher
from node.rpc.methods import MethodRegistry, Param, RpcMethod
from node.rpc.protocol import (
    ERROR_TABLE,
    RESERVED_ERROR_CODE_MIN,
    SERVER_ERROR_CODE_MAX,
    SERVER_ERROR_CODE_MIN,
    ErrorCode,
    ErrorReply,
    LimitExceeded,
    MempoolRefused,
    NotFound,
    ReadOnly,
    Request,
    RpcDomainError,
    Timeout,
    TxRejected,
    encode,
    parse_message,
)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "RPC.md"


def only(body: bytes | str, batch_length_max: int | None = None) -> Request | ErrorReply:
    message = parse_message(body, batch_length_max)
    assert not message.is_batch and len(message.items) == 1
    return message.items[0]


def error_code(item: Request | ErrorReply) -> int:
    assert isinstance(item, ErrorReply), item
    return item.error.code


# --- single requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["abc", 7, 0, -3, 1.5, None, "", 10**30])
def test_request_ids_of_every_json_kind_are_kept(request_id: Any) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "m", "params": [1], "id": request_id})
    assert only(body) == Request("m", [1], request_id, is_notification=False)


def test_a_request_without_id_is_a_notification() -> None:
    assert only('{"jsonrpc":"2.0","method":"m","params":{"a":1}}') == Request("m", {"a": 1}, None, True)


def test_params_may_be_omitted() -> None:
    assert only('{"jsonrpc":"2.0","method":"m","id":1}') == Request("m", None, 1, False)


@pytest.mark.parametrize(
    "body",
    [b"{", b"", b"nul", b'{"jsonrpc":"2.0",}', b"\xff\xfe", b"[1,2", b"NaN", b'{"a": Infinity}', b"\x00"],
)
def test_bad_json_is_a_parse_error_with_null_id(body: bytes) -> None:
    item = only(body)
    assert error_code(item) == ErrorCode.PARSE_ERROR
    assert isinstance(item, ErrorReply) and item.id is None


def test_deep_nesting_and_huge_numbers_are_parse_errors_not_crashes() -> None:
    assert error_code(only(b"[" * 100_000 + b"]" * 100_000)) == ErrorCode.PARSE_ERROR
    assert error_code(only(b"1" * 10_000)) == ErrorCode.PARSE_ERROR


@pytest.mark.parametrize(
    ("body", "echoed_id"),
    [
        ('{"method":"m","id":1}', 1),  # no "jsonrpc"
        ('{"jsonrpc":"1.0","method":"m","id":"x"}', "x"),
        ('{"jsonrpc":2.0,"method":"m","id":2}', 2),
        ('{"jsonrpc":"2.0","method":1,"id":3}', 3),
        ('{"jsonrpc":"2.0","id":4}', 4),
        ('{"jsonrpc":"2.0","method":"m","params":"bar","id":5}', 5),
        ('{"jsonrpc":"2.0","method":"m","params":null,"id":6}', 6),
        ('{"jsonrpc":"2.0","method":"m","id":7,"extra":1}', 7),
        ('{"jsonrpc":"2.0","method":"m","id":true}', None),  # a boolean is not an id
        ('{"jsonrpc":"2.0","method":"m","id":[1]}', None),
        ('{"jsonrpc":"2.0","method":"m","id":{}}', None),
        ("1", None),
        ('"m"', None),
        ("null", None),
    ],
)
def test_invalid_requests_echo_the_id_when_it_is_readable(body: str, echoed_id: Any) -> None:
    item = only(body)
    assert error_code(item) == ErrorCode.INVALID_REQUEST
    assert isinstance(item, ErrorReply) and item.id == echoed_id


def test_input_whole_and_with_trailing_garbage() -> None:
    good = b'{"jsonrpc":"2.0","method":"m","id":1}'
    assert isinstance(only(good), Request)
    assert isinstance(only(good + b"  \n"), Request)
    assert error_code(only(good + b"x")) == ErrorCode.PARSE_ERROR
    assert error_code(only(good + good)) == ErrorCode.PARSE_ERROR
    for cut in range(len(good)):
        assert error_code(only(good[:cut])) == ErrorCode.PARSE_ERROR


# --- batches --------------------------------------------------------------------------------------


def test_empty_batch_is_one_invalid_request() -> None:
    assert error_code(only("[]")) == ErrorCode.INVALID_REQUEST


def test_batch_of_non_objects_answers_each() -> None:
    message = parse_message("[1,2,3]")
    assert message.is_batch
    assert [error_code(item) for item in message.items] == [ErrorCode.INVALID_REQUEST] * 3


def test_mixed_batch_keeps_order() -> None:
    message = parse_message(
        '[{"jsonrpc":"2.0","method":"a","id":1},{"foo":"boo"},{"jsonrpc":"2.0","method":"n"},'
        '{"jsonrpc":"2.0","method":"b","params":[2],"id":"9"}]'
    )
    kinds = [type(item).__name__ for item in message.items]
    assert kinds == ["Request", "ErrorReply", "Request", "Request"]
    assert message.items[2] == Request("n", None, None, True)


def test_batch_over_the_limit_is_refused_whole() -> None:
    body = json.dumps([{"jsonrpc": "2.0", "method": "m", "id": n} for n in range(4)])
    assert len(parse_message(body, batch_length_max=4).items) == 4
    item = only(body, batch_length_max=3)
    assert error_code(item) == ErrorCode.LIMIT_EXCEEDED
    assert isinstance(item, ErrorReply) and item.error.data == {
        "limit": "batch_length_max",
        "max": 3,
        "got": 4,
    }


# --- errors ---------------------------------------------------------------------------------------


def test_error_table_covers_every_code_and_server_codes_stay_in_the_server_range() -> None:
    assert set(ERROR_TABLE) == set(ErrorCode)
    for code, spec in ERROR_TABLE.items():
        assert spec.code is code and spec.message
        if code > -32100:
            assert SERVER_ERROR_CODE_MIN <= code <= SERVER_ERROR_CODE_MAX


def test_docs_list_every_error_code() -> None:
    text = DOCS.read_text()
    documented = {int(code) for code in re.findall(r"^\|\s*(-32\d{3})\s*\|", text, re.MULTILINE)}
    assert documented == {int(code) for code in ErrorCode}


@pytest.mark.parametrize("code", [-32700, -32600, -32603, -32100, RESERVED_ERROR_CODE_MIN])
def test_domain_errors_cannot_take_protocol_codes(code: int) -> None:
    with pytest.raises(ValueError, match="reserved"):
        RpcDomainError(code, "no")


@pytest.mark.parametrize("code", [-32000, -32099, -32050, 1, 4_000, -40_000])
def test_domain_errors_may_use_server_and_application_codes(code: int) -> None:
    assert RpcDomainError(code, "yes", {"k": 1}).to_object() == {
        "code": code,
        "message": "yes",
        "data": {"k": 1},
    }


def test_domain_error_code_must_be_an_int() -> None:
    with pytest.raises(TypeError):
        RpcDomainError(True, "no")  # type: ignore[arg-type]


def test_typed_domain_errors_carry_their_table_codes() -> None:
    rejected = TxRejected("0x57", "holding_period")
    assert rejected.code == ErrorCode.TX_REJECTED
    assert rejected.data == {"reason_code": "0x57", "reason": "holding_period"}
    assert NotFound("block 9").code == ErrorCode.NOT_FOUND
    assert ReadOnly("tx_submit").data == {"method": "tx_submit"}
    assert Timeout(5).code == ErrorCode.TIMEOUT
    assert LimitExceeded("x", 1, 2).code == ErrorCode.LIMIT_EXCEEDED
    assert MempoolRefused("full").code == ErrorCode.MEMPOOL_REFUSED
    assert NotFound("x").to_object() == {"code": -32001, "message": "not found: x", "data": {"what": "x"}}


def test_encode_is_compact_and_refuses_nan() -> None:
    assert encode({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    with pytest.raises(ValueError):
        encode(float("nan"))


# --- fuzz: parse and dispatch never answer anything but JSON-RPC ----------------------------------


async def echo(value: Any = None) -> Any:
    return value


async def add(a: int, b: int = 0) -> int:
    return a + b


def fuzz_registry() -> MethodRegistry:
    registry = MethodRegistry()
    registry.add(RpcMethod("echo", "", (Param("value", {}, required=False),), {}, echo))
    registry.add(
        RpcMethod(
            "add",
            "",
            (Param("a", {"type": "integer", "minimum": -(10**6)}), Param("b", {"type": "integer"}, False)),
            {"type": "integer"},
            add,
        )
    )
    return registry


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = (
    st.none()
    | st.integers()
    | st.text(max_size=8)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.lists(st.integers())
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": st.sampled_from(["echo", "add", "rpc.discover", "subscribe", "nope"]) | st.text(max_size=6),
        "params": json_values,
        "id": ids,
    },
)
documents = request_like | st.lists(request_like | json_values, max_size=5) | json_values


def check_response(document: Any, allow_success: bool = True) -> None:
    assert isinstance(document, dict), document
    assert document.get("jsonrpc") == "2.0"
    request_id = document["id"]
    assert request_id is None or (
        isinstance(request_id, str | int | float) and not isinstance(request_id, bool)
    )
    assert ("result" in document) != ("error" in document)
    assert set(document) <= {"jsonrpc", "id", "result", "error"}
    if "error" in document:
        error = document["error"]
        assert set(error) <= {"code", "message", "data"}
        assert isinstance(error["message"], str)
        # -32603 would mean a handler or the server crashed on client input.
        assert error["code"] in set(ErrorCode) - {ErrorCode.INTERNAL_ERROR}, error
        assert "Traceback" not in error["message"]
    else:
        assert allow_success


def check_output(output: bytes | None) -> None:
    if output is None:
        return
    document = json.loads(output)
    if isinstance(document, list):
        assert document, "a batch answer is never empty"
        for entry in document:
            check_response(entry)
    else:
        check_response(document)


@pytest.fixture(scope="module")
def runner() -> Any:
    with asyncio.Runner() as runner:
        yield runner


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(documents)
def test_fuzz_json_documents(runner: asyncio.Runner, document: Any) -> None:
    dispatcher = Dispatcher(fuzz_registry(), batch_length_max=4)
    check_output(runner.run(dispatcher.handle(json.dumps(document).encode())))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(runner: asyncio.Runner, body: bytes) -> None:
    dispatcher = Dispatcher(fuzz_registry())
    output = runner.run(dispatcher.handle(body))
    check_output(output)


@FUZZ
@given(documents, st.binary(max_size=6), st.integers(min_value=0, max_value=40))
def test_fuzz_corrupted_documents(runner: asyncio.Runner, document: Any, junk: bytes, at: int) -> None:
    body = json.dumps(document).encode()
    body = body[:at] + junk + body[at:]
    check_output(runner.run(Dispatcher(fuzz_registry()).handle(body)))


@FUZZ
@given(documents)
def test_fuzz_parse_message_returns_only_requests_or_error_replies(document: Any) -> None:
    message = parse_message(json.dumps(document), batch_length_max=3)
    assert message.items
    for item in message.items:
        assert isinstance(item, Request | ErrorReply)


def test_an_id_with_a_lone_surrogate_is_echoed_back_escaped(runner: Any) -> None:
    # Found by the fuzzer: JSON may escape a lone surrogate, which UTF-8 cannot encode.
    body = b'{"jsonrpc":"1.0","method":"x","id":"\\udc00"}'
    output = runner.run(Dispatcher(fuzz_registry()).handle(body))
    assert output is not None
    answer = json.loads(output)
    assert answer["id"] == "\udc00" and answer["error"]["code"] == -32600
    assert b"\\udc00" in output  # escaped, so the answer is valid UTF-8
