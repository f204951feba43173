"""The method registry: param validation, registration checks, the OpenRPC document derived from
the same declarations, and the dispatcher that calls handlers (no network here)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from node.rpc.dispatch import Dispatcher
from node.rpc.methods import (
    DISCOVER_METHOD,
    OPENRPC_VERSION,
    SUBSCRIBE_METHOD,
    UNSUBSCRIBE_METHOD,
    MethodRegistry,
    Param,
    RpcMethod,
    Topic,
    bind_params,
    method_error_codes,
    openrpc_document,
    validate,
)
from node.rpc.protocol import ErrorCode, InvalidParams, TxRejected

ADDRESS_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{40}$"}


async def transfer(token: str, to: str, amount: int, memo: str | None = None) -> dict[str, Any]:
    return {"token": token, "to": to, "amount": amount, "memo": memo}


TRANSFER = RpcMethod(
    name="token_transfer",
    summary="Move tokens.",
    params=(
        Param("token", {"type": "string", "minLength": 1, "maxLength": 12}, True, "symbol"),
        Param("to", ADDRESS_SCHEMA, True, "receiver"),
        Param("amount", {"type": "integer", "minimum": 1, "maximum": 10**18}, True, "base units"),
        Param("memo", {"type": ["string", "null"], "maxLength": 8}, False, "note"),
    ),
    result={"type": "object"},
    handler=transfer,
    write=True,
    errors=(ErrorCode.TX_REJECTED,),
)
RECEIVER = "ab" * 20


def registry_with_methods() -> MethodRegistry:
    registry = MethodRegistry("test", "9.9.9")
    registry.add(TRANSFER)
    registry.add_topic(
        Topic(
            "events",
            "Ledger events.",
            {"type": "object", "properties": {"token": {"type": "string"}}, "additionalProperties": False},
            {"type": "object"},
        )
    )
    return registry


def invalid(method: RpcMethod, params: Any) -> InvalidParams:
    with pytest.raises(InvalidParams) as caught:
        bind_params(method, params)
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    return caught.value


# --- params ---------------------------------------------------------------------------------------


def test_params_by_name_and_by_position_bind_the_same() -> None:
    by_name = bind_params(TRANSFER, {"token": "ACME", "to": RECEIVER, "amount": 5})
    by_position = bind_params(TRANSFER, ["ACME", RECEIVER, 5])
    assert by_name == by_position == {"token": "ACME", "to": RECEIVER, "amount": 5}


def test_optional_params_left_out_are_not_passed_and_null_is_checked() -> None:
    assert "memo" not in bind_params(TRANSFER, ["ACME", RECEIVER, 5])
    assert bind_params(TRANSFER, ["ACME", RECEIVER, 5, None])["memo"] is None


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (True, "expected integer, got boolean"),
        (1.0, "expected integer, got number"),
        ("5", "expected integer, got string"),
        (None, "expected integer, got null"),
        (0, "must be >= 1, got 0"),
        (10**18 + 1, "must be <= 1000000000000000000"),
    ],
)
def test_integer_param_mismatches_name_the_param(amount: Any, problem: str) -> None:
    error = invalid(TRANSFER, {"token": "ACME", "to": RECEIVER, "amount": amount})
    assert error.param == "amount"
    assert error.message.startswith(f"amount: {problem}")
    assert error.data == {"param": "amount", "problem": error.problem}


def test_missing_required_param() -> None:
    error = invalid(TRANSFER, {"token": "ACME", "amount": 1})
    assert error.message == "to: missing required param"


def test_unknown_param_name() -> None:
    error = invalid(TRANSFER, {"token": "ACME", "to": RECEIVER, "amount": 1, "amout": 2})
    assert error.param == "amout"
    assert "unknown param" in error.message and "amount" in error.message


def test_too_many_positional_params() -> None:
    error = invalid(TRANSFER, ["ACME", RECEIVER, 1, None, "extra"])
    assert "too many positional params" in error.message


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"token": "", "to": RECEIVER, "amount": 1}, "token: must be at least 1 characters"),
        ({"token": "X" * 13, "to": RECEIVER, "amount": 1}, "token: must be at most 12 characters"),
        ({"token": "A", "to": "zz", "amount": 1}, "to: must match ^[0-9a-f]{40}$"),
        (
            {"token": "A", "to": RECEIVER, "amount": 1, "memo": 3},
            "memo: expected string or null, got integer",
        ),
    ],
)
def test_string_constraints(params: dict[str, Any], expected: str) -> None:
    assert invalid(TRANSFER, params).message.startswith(expected)


def test_nested_schemas_report_the_path() -> None:
    schema = {
        "type": "object",
        "required": ["legs"],
        "additionalProperties": False,
        "properties": {
            "legs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["amount"],
                    "properties": {"amount": {"type": "integer"}, "side": {"enum": ["buy", "sell"]}},
                },
            },
        },
    }
    validate({"legs": [{"amount": 1, "side": "buy"}]}, schema, "order")
    cases = [
        ({"legs": [{"amount": 1}, {"amount": False}]}, "order.legs[1].amount: expected integer, got boolean"),
        ({"legs": [{}]}, "order.legs[0].amount: missing required property"),
        (
            {"legs": [{"amount": 1, "side": "hold"}]},
            'order.legs[0].side: expected one of "buy", "sell", got "hold"',
        ),
        ({}, "order.legs: missing required property"),
        ({"legs": [], "fee": 1}, "order.fee: unknown property"),
        ({"legs": "x"}, "order.legs: expected array, got string"),
    ]
    for value, message in cases:
        with pytest.raises(InvalidParams) as caught:
            validate(value, schema, "order")
        assert caught.value.message.startswith(message), caught.value.message


def test_enum_does_not_confuse_true_with_one() -> None:
    with pytest.raises(InvalidParams):
        validate(True, {"enum": [1]}, "x")
    validate(1, {"enum": [1]}, "x")


# --- registration ---------------------------------------------------------------------------------


async def nothing() -> None:
    return None


def test_unsupported_schema_keywords_are_refused_at_registration() -> None:
    with pytest.raises(ValueError, match="unsupported schema keywords"):
        Param("x", {"type": "string", "oneOf": []})
    with pytest.raises(ValueError, match="type must be"):
        Param("x", {"type": "number"})
    with pytest.raises(ValueError, match="unsupported"):
        RpcMethod("m", "", (), {"anyOf": []}, nothing)


def test_handler_and_declaration_must_agree() -> None:
    def not_async() -> None:
        return None

    async def takes_a(a: int) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        RpcMethod("m", "", (), {}, not_async)
    with pytest.raises(TypeError, match="does not accept declared param 'b'"):
        RpcMethod("m", "", (Param("b", {}),), {}, takes_a)
    with pytest.raises(TypeError, match="'a' has no default"):
        RpcMethod("m", "", (), {}, takes_a)
    with pytest.raises(TypeError, match="'a' has no default"):
        RpcMethod("m", "", (Param("a", {}, required=False),), {}, takes_a)


def test_names_are_unique_and_rpc_prefix_is_reserved() -> None:
    registry = registry_with_methods()
    with pytest.raises(ValueError, match="already registered"):
        registry.add(TRANSFER)
    for name in ("rpc.mine", SUBSCRIBE_METHOD, UNSUBSCRIBE_METHOD):
        with pytest.raises(ValueError, match="reserved"):
            registry.add(RpcMethod(name, "", (), {}, nothing))
    with pytest.raises(ValueError, match="must match"):
        RpcMethod("Bad Name", "", (), {}, nothing)


def test_builtins_are_registered_automatically() -> None:
    assert [method.name for method in MethodRegistry()] == [DISCOVER_METHOD]
    registry = registry_with_methods()
    assert {DISCOVER_METHOD, TRANSFER.name, SUBSCRIBE_METHOD, UNSUBSCRIBE_METHOD} == {
        m.name for m in registry
    }


# --- OpenRPC --------------------------------------------------------------------------------------


def test_openrpc_document_is_derived_from_the_registry() -> None:
    registry = registry_with_methods()
    document = openrpc_document(registry, "secledger", "1.2.3")
    assert document["openrpc"] == OPENRPC_VERSION
    assert document["info"] == {"title": "secledger", "version": "1.2.3"}
    by_name = {entry["name"]: entry for entry in document["methods"]}
    assert set(by_name) == {method.name for method in registry}
    for method in registry:
        entry = by_name[method.name]
        assert entry["summary"] == method.summary
        assert entry["result"]["schema"] == method.result
        assert [(p["name"], p["schema"], p["required"], p["description"]) for p in entry["params"]] == [
            (p.name, p.schema, p.required, p.description) for p in method.params
        ]
        assert [error["code"] for error in entry["errors"]] == [
            int(code) for code in method_error_codes(method)
        ]
    assert by_name[TRANSFER.name]["x-write"] is True
    assert ErrorCode.READ_ONLY in [e["code"] for e in by_name[TRANSFER.name]["errors"]]
    assert ErrorCode.TX_REJECTED in [e["code"] for e in by_name[TRANSFER.name]["errors"]]
    assert by_name[SUBSCRIBE_METHOD]["params"][0]["schema"]["enum"] == ["events"]
    assert [topic["name"] for topic in document["x-subscription-topics"]] == ["events"]
    assert set(document["components"]["errors"]) == {code.name for code in ErrorCode}
    json.dumps(document)  # it must be JSON as it is


def test_subscribe_lists_topics_added_later() -> None:
    registry = registry_with_methods()
    registry.add_topic(Topic("blocks", "Blocks.", {"type": "object"}, {"type": "object"}))
    subscribe = registry.get(SUBSCRIBE_METHOD)
    assert subscribe is not None and subscribe.params[0].schema["enum"] == ["events", "blocks"]
    with pytest.raises(ValueError, match="already registered"):
        registry.add_topic(Topic("blocks", "", {"type": "object"}, {}))


# --- dispatch -------------------------------------------------------------------------------------


def call(method: str, params: Any = None, request_id: Any = 1) -> bytes:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        request["params"] = params
    if request_id is not ...:
        request["id"] = request_id
    return json.dumps(request).encode()


async def answer(dispatcher: Dispatcher, body: bytes, session: Any = None) -> Any:
    output = await dispatcher.handle(body, session)
    return None if output is None else json.loads(output)


async def test_dispatch_calls_the_handler_with_validated_params() -> None:
    dispatcher = Dispatcher(registry_with_methods())
    reply = await answer(dispatcher, call(TRANSFER.name, ["ACME", RECEIVER, 7], "q"))
    assert reply == {
        "jsonrpc": "2.0",
        "result": {"token": "ACME", "to": RECEIVER, "amount": 7, "memo": None},
        "id": "q",
    }


async def test_dispatch_errors() -> None:
    dispatcher = Dispatcher(registry_with_methods())
    assert (await answer(dispatcher, call("nope")))["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
    bad = await answer(dispatcher, call(TRANSFER.name, {"token": "A", "to": RECEIVER, "amount": True}))
    assert bad["error"] == {
        "code": ErrorCode.INVALID_PARAMS,
        "message": "amount: expected integer, got boolean",
        "data": {"param": "amount", "problem": "expected integer, got boolean"},
    }
    # Over HTTP (no session) the WebSocket-only methods do not exist.
    no_socket = await answer(dispatcher, call(SUBSCRIBE_METHOD, {"topic": "events"}))
    assert no_socket["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
    assert "WebSocket" in no_socket["error"]["message"]


async def test_read_only_refuses_write_methods_only() -> None:
    dispatcher = Dispatcher(registry_with_methods(), read_only=True)
    refused = await answer(dispatcher, call(TRANSFER.name, ["ACME", RECEIVER, 7]))
    assert refused["error"]["code"] == ErrorCode.READ_ONLY
    assert refused["error"]["data"] == {"method": TRANSFER.name}
    assert "result" in await answer(dispatcher, call(DISCOVER_METHOD))


async def test_domain_errors_reach_the_client_and_crashes_do_not_leak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def reject(kind: str) -> None:
        if kind == "rule":
            raise TxRejected("0x57", "holding_period")
        if kind == "crash":
            raise KeyError("secret internal detail")
        if kind == "timeout":
            raise TimeoutError("handler's own")

    registry = MethodRegistry()
    registry.add(RpcMethod("reject", "", (Param("kind", {"type": "string"}),), {}, reject))
    dispatcher = Dispatcher(registry)
    rule = await answer(dispatcher, call("reject", ["rule"]))
    assert rule["error"] == {
        "code": ErrorCode.TX_REJECTED,
        "message": "transaction rejected: holding_period (0x57)",
        "data": {"reason_code": "0x57", "reason": "holding_period"},
    }
    with caplog.at_level(logging.ERROR, logger="node.rpc.dispatch"):
        crash = await answer(dispatcher, call("reject", ["crash"]))
        own_timeout = await answer(dispatcher, call("reject", ["timeout"]))
    assert crash["error"] == {"code": ErrorCode.INTERNAL_ERROR, "message": "Internal error"}
    assert own_timeout["error"]["code"] == ErrorCode.INTERNAL_ERROR
    assert "secret internal detail" in caplog.text and "Traceback" in caplog.text


async def test_slow_handler_times_out() -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    registry = MethodRegistry()
    registry.add(RpcMethod("slow", "", (), {}, slow))
    reply = await answer(Dispatcher(registry, call_timeout_ms=20), call("slow"))
    assert reply["error"] == {
        "code": ErrorCode.TIMEOUT,
        "message": "call timed out after 20 ms",
        "data": {"timeout_ms": 20},
    }


async def test_result_json_cannot_carry_is_an_internal_error() -> None:
    async def bad() -> object:
        return object()

    registry = MethodRegistry()
    registry.add(RpcMethod("bad", "", (), {}, bad))
    assert (await answer(Dispatcher(registry), call("bad")))["error"]["code"] == ErrorCode.INTERNAL_ERROR


async def test_notifications_run_but_are_never_answered_even_on_error() -> None:
    seen: list[int] = []

    async def note(n: int) -> None:
        seen.append(n)

    registry = MethodRegistry()
    registry.add(RpcMethod("note", "", (Param("n", {"type": "integer"}),), {}, note))
    dispatcher = Dispatcher(registry)
    assert await answer(dispatcher, call("note", [1], ...)) is None
    assert await answer(dispatcher, call("note", ["x"], ...)) is None
    assert await answer(dispatcher, call("missing", None, ...)) is None
    assert seen == [1]


async def test_batch_runs_in_order_and_answers_all_but_notifications() -> None:
    order: list[int] = []

    async def step(n: int) -> int:
        await asyncio.sleep(0.001 * (5 - n))  # later entries finish sooner if run concurrently
        order.append(n)
        return n

    registry = MethodRegistry()
    registry.add(RpcMethod("step", "", (Param("n", {"type": "integer"}),), {}, step))
    dispatcher = Dispatcher(registry)
    body = json.dumps(
        [json.loads(call("step", [n], n if n != 2 else ...)) for n in range(5)] + [1, {"jsonrpc": "2.0"}]
    ).encode()
    replies = await answer(dispatcher, body)
    assert order == [0, 1, 2, 3, 4]
    assert [reply.get("result") for reply in replies[:4]] == [0, 1, 3, 4]
    assert [reply["error"]["code"] for reply in replies[4:]] == [ErrorCode.INVALID_REQUEST] * 2


@pytest.mark.parametrize("tx", ["", "a", "abc", "0G", "AB", "ab cd", "ab\n"])
def test_tx_submit_takes_only_whole_bytes_of_lowercase_hex(tx: str) -> None:
    from node.rpc.api import build_registry

    method = build_registry(object()).get("tx_submit")  # registering never touches the node
    assert method is not None
    bind_params(method, {"tx": "00ff" * 3})
    with pytest.raises(InvalidParams, match="must match"):
        bind_params(method, {"tx": tx})
