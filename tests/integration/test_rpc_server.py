"""The JSON-RPC server over real sockets: an aiohttp server on 127.0.0.1, port 0, per test.

Every test stops its server itself (async with) and bounds each wait, so none can hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from node.rpc.client import RpcClient, RpcError
from node.rpc.methods import DISCOVER_METHOD, MethodRegistry, Param, RpcMethod, Topic
from node.rpc.protocol import ErrorCode, TxRejected
from node.rpc.server import SLOW_SUBSCRIBER_REASON, STOP_REASON, RpcServer

WAIT_S = 5.0
"""Bound on any single wait in these tests."""


async def balance(account: str, height: int | None = None) -> int:
    return len(account) * 100 + (height or 0)


async def submit(tx: str) -> dict[str, Any]:
    if tx == "bad":
        raise TxRejected("0x57", "holding_period")
    return {"hash": tx}


async def crash() -> None:
    raise RuntimeError("boom: internal detail")


async def slow() -> None:
    await asyncio.sleep(30)


async def blob(size: int) -> str:
    return "x" * size


def build_registry() -> MethodRegistry:
    registry = MethodRegistry("secledger-test", "0.0.1")
    registry.add(
        RpcMethod(
            "token_balance",
            "Balance of an account.",
            (
                Param("account", {"type": "string", "minLength": 1}, True, "account"),
                Param("height", {"type": "integer", "minimum": 0}, False, "past height"),
            ),
            {"type": "integer"},
            balance,
        )
    )
    registry.add(
        RpcMethod("tx_submit", "Submit a tx.", (Param("tx", {"type": "string"}),), {"type": "object"}, submit, write=True)
    )
    registry.add(RpcMethod("crash", "Always fails.", (), {}, crash))
    registry.add(RpcMethod("slow", "Never finishes in time.", (), {}, slow))
    registry.add(RpcMethod("blob", "A large result.", (Param("size", {"type": "integer"}),), {"type": "string"}, blob))
    registry.add_topic(
        Topic(
            "blocks",
            "New blocks.",
            {"type": "object", "properties": {"height_min": {"type": "integer"}}, "additionalProperties": False},
            {"type": "object"},
        )
    )
    registry.add_topic(
        Topic(
            "events",
            "Ledger events.",
            {"type": "object", "properties": {"token": {"type": "string"}}, "additionalProperties": False},
            {"type": "object"},
        )
    )
    return registry


def height_at_least(filter: dict[str, Any], payload: Any) -> bool:
    return payload["height"] >= filter.get("height_min", 0)


@pytest.fixture
async def server() -> AsyncIterator[RpcServer]:
    async with RpcServer(build_registry(), request_bytes_max=4_096, batch_length_max=5, call_timeout_ms=200) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session:
        yield session


async def post(http: aiohttp.ClientSession, server: RpcServer, body: Any, **headers: str) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(server.url, data=data, headers={"Content-Type": "application/json", **headers}) as reply:
        text = await reply.read()
        return reply.status, (json.loads(text) if text else None)


def request(method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    document: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        document["params"] = params
    if request_id is not ...:
        document["id"] = request_id
    return document


async def ws_call(socket: aiohttp.ClientWebSocketResponse, document: Any) -> Any:
    await socket.send_str(json.dumps(document))
    return await receive_json(socket)


async def receive_json(socket: aiohttp.ClientWebSocketResponse) -> Any:
    message = await socket.receive(timeout=WAIT_S)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


# --- HTTP -----------------------------------------------------------------------------------------


async def test_server_binds_loopback_on_an_ephemeral_port(server: RpcServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/"


async def test_every_standard_error_code_is_reachable(server: RpcServer, http: aiohttp.ClientSession) -> None:
    cases = [
        (b'{"jsonrpc":"2.0","method":', ErrorCode.PARSE_ERROR),
        ({"jsonrpc": "2.0", "method": 5, "id": 1}, ErrorCode.INVALID_REQUEST),
        (request("no_such_method"), ErrorCode.METHOD_NOT_FOUND),
        (request("token_balance", {"account": 5}), ErrorCode.INVALID_PARAMS),
        (request("crash"), ErrorCode.INTERNAL_ERROR),
        (request("slow"), ErrorCode.TIMEOUT),
        (request("tx_submit", ["bad"]), ErrorCode.TX_REJECTED),
    ]
    for body, code in cases:
        status, reply = await post(http, server, body)
        assert status == 200
        assert reply["error"]["code"] == code, (body, reply)
    _, crashed = await post(http, server, request("crash"))
    assert crashed["error"] == {"code": ErrorCode.INTERNAL_ERROR, "message": "Internal error"}


async def test_success_and_wrong_param_types(server: RpcServer, http: aiohttp.ClientSession) -> None:
    assert (await post(http, server, request("token_balance", ["abc", 2], "id-1")))[1] == {
        "jsonrpc": "2.0",
        "result": 302,
        "id": "id-1",
    }
    wrong = [
        ({"account": "a", "height": True}, "height: expected integer, got boolean"),
        ({"account": "a", "height": 1.5}, "height: expected integer, got number"),
        ({"height": 1}, "account: missing required param"),
        ({"account": "a", "hieght": 1}, "hieght: unknown param"),
        (["a", 1, 2], "too many positional params"),
    ]
    for params, message in wrong:
        _, reply = await post(http, server, request("token_balance", params))
        assert reply["error"]["code"] == ErrorCode.INVALID_PARAMS
        assert reply["error"]["message"].startswith(message), reply


async def test_batches(server: RpcServer, http: aiohttp.ClientSession) -> None:
    mixed = [
        request("token_balance", ["ab"], 1),
        {"foo": "boo"},
        request("token_balance", ["abc"], ...),  # notification: no answer
        request("no_such_method", None, "x"),
        request("token_balance", {"account": 1}, 3),
    ]
    status, replies = await post(http, server, mixed)
    assert status == 200
    assert [(reply["id"], reply.get("result"), reply.get("error", {}).get("code")) for reply in replies] == [
        (1, 200, None),
        (None, None, ErrorCode.INVALID_REQUEST),
        ("x", None, ErrorCode.METHOD_NOT_FOUND),
        (3, None, ErrorCode.INVALID_PARAMS),
    ]
    status, empty = await post(http, server, [])
    assert status == 200 and empty["error"]["code"] == ErrorCode.INVALID_REQUEST and empty["id"] is None
    status, nothing = await post(http, server, [request("token_balance", ["a"], ...)] * 3)
    assert status == 204 and nothing is None
    status, nothing = await post(http, server, request("token_balance", ["a"], ...))
    assert status == 204 and nothing is None
    status, too_long = await post(http, server, [request("token_balance", ["a"], n) for n in range(6)])
    assert too_long["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
    assert too_long["error"]["data"] == {"limit": "batch_length_max", "max": 5, "got": 6}


async def test_oversized_request_answers_a_json_rpc_error(server: RpcServer, http: aiohttp.ClientSession) -> None:
    big = request("token_balance", ["a" * 5_000])
    status, reply = await post(http, server, big)
    assert status == 413
    assert reply["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
    assert reply["error"]["data"]["limit"] == "request_bytes_max"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server counts as it reads
        for _ in range(10):
            yield b" " * 1_000

    async with http.post(server.url, data=chunks(), headers={"Content-Type": "application/json"}) as reply:
        assert reply.status == 413
        assert (await reply.json())["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
    # The connection and the server still work afterwards.
    assert (await post(http, server, request("token_balance", ["a"])))[1]["result"] == 100


async def test_only_post_on_root(server: RpcServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url) as reply:
        assert reply.status == 405
    async with http.post(server.url + "other", data=b"{}") as reply:
        assert reply.status == 404


async def test_content_type_is_checked_leniently(server: RpcServer, http: aiohttp.ClientSession) -> None:
    body = json.dumps(request("token_balance", ["a"])).encode()
    for accepted in ("application/json; charset=utf-8", "application/json-rpc", "application/octet-stream"):
        async with http.post(server.url, data=body, headers={"Content-Type": accepted}) as reply:
            assert reply.status == 200 and (await reply.json())["result"] == 100
    for refused in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        async with http.post(server.url, data=body, headers={"Content-Type": refused}) as reply:
            assert reply.status == 415
            assert (await reply.json())["error"]["code"] == ErrorCode.INVALID_REQUEST


async def test_rpc_discover_lists_every_registered_method(server: RpcServer) -> None:
    async with RpcClient(server.url) as client:
        document = await client.call(DISCOVER_METHOD)
    by_name = {entry["name"]: entry for entry in document["methods"]}
    assert set(by_name) == {method.name for method in server.registry}
    for method in server.registry:
        assert [(p["name"], p["schema"], p["required"]) for p in by_name[method.name]["params"]] == [
            (p.name, p.schema, p.required) for p in method.params
        ]
        assert by_name[method.name]["result"]["schema"] == method.result
    assert document["info"] == {"title": "secledger-test", "version": "0.0.1"}


async def test_read_only_mode_refuses_write_methods(http: aiohttp.ClientSession) -> None:
    async with RpcServer(build_registry(), read_only=True) as observer:
        _, refused = await post(http, observer, request("tx_submit", ["tx1"]))
        assert refused["error"]["code"] == ErrorCode.READ_ONLY
        assert refused["error"]["data"] == {"method": "tx_submit"}
        assert (await post(http, observer, request("token_balance", ["a"])))[1]["result"] == 100
        async with http.ws_connect(observer.ws_url) as socket:
            over_ws = await ws_call(socket, request("tx_submit", ["tx1"]))
            assert over_ws["error"]["code"] == ErrorCode.READ_ONLY


async def test_client_call_and_call_sync(server: RpcServer) -> None:
    async with RpcClient(server.url) as client:
        assert await client.call("token_balance", account="abcd") == 400
        with pytest.raises(RpcError) as caught:
            await client.call("tx_submit", tx="bad")
        assert caught.value.code == ErrorCode.TX_REJECTED
        assert caught.value.data == {"reason_code": "0x57", "reason": "holding_period"}
        assert await asyncio.to_thread(client.call_sync, "token_balance", account="ab", height=1) == 201
        # Responses arrive in many pieces; the client reads them whole.
        assert await client.call("blob", size=3_000_000) == "x" * 3_000_000
        assert await asyncio.to_thread(client.call_sync, "blob", size=3_000_000) == "x" * 3_000_000
        with pytest.raises(RpcError) as caught:
            await asyncio.to_thread(client.call_sync, "token_balance", account="a" * 5_000)
        assert caught.value.code == ErrorCode.LIMIT_EXCEEDED


# --- WebSocket ------------------------------------------------------------------------------------


async def test_websocket_speaks_the_same_json_rpc(server: RpcServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(server.ws_url) as socket:
        assert (await ws_call(socket, request("token_balance", ["abc"], 9))) == {"jsonrpc": "2.0", "result": 300, "id": 9}
        batch = await ws_call(socket, [request("token_balance", ["a"], 1), request("nope", None, 2)])
        assert [reply.get("result") for reply in batch] == [100, None]
        assert batch[1]["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
        await socket.send_str("{not json")
        assert (await receive_json(socket))["error"]["code"] == ErrorCode.PARSE_ERROR
        await socket.send_bytes(json.dumps(request("token_balance", ["ab"], 3)).encode())
        assert (await receive_json(socket))["result"] == 200
        too_big = await ws_call(socket, request("token_balance", ["a" * 5_000]))
        assert too_big["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
        # A notification over WebSocket gets no answer: the next reply is for the next request.
        await socket.send_str(json.dumps(request("token_balance", ["a"], ...)))
        assert (await ws_call(socket, request("token_balance", ["a"], 4)))["id"] == 4


async def test_websocket_declines_compression_a_client_offers(server: RpcServer, http: aiohttp.ClientSession) -> None:
    # aiohttp's client offers permessage-deflate by default; the node keeps its CPU for consensus.
    async with http.ws_connect(server.ws_url, compress=15) as socket:
        assert socket.compress == 0
        assert (await ws_call(socket, request("token_balance", ["abc"], 1)))["result"] == 300


async def test_subscribe_receive_filtered_unsubscribe(server: RpcServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(server.ws_url) as socket:
        subscribed = await ws_call(socket, request("subscribe", {"topic": "blocks", "filter": {"height_min": 3}}))
        subscription = subscribed["result"]
        events = await ws_call(socket, request("subscribe", ["events"]))
        assert server.subscription_count("blocks") == 1 and server.subscription_count("events") == 1
        delivered = [server.publish("blocks", {"height": height}, match=height_at_least) for height in range(6)]
        assert delivered == [0, 0, 0, 1, 1, 1]
        for height in (3, 4, 5):
            assert await receive_json(socket) == {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"subscription": subscription, "result": {"height": height}},
            }
        assert (await ws_call(socket, request("unsubscribe", [subscription])))["result"] is True
        assert (await ws_call(socket, request("unsubscribe", [subscription])))["result"] is False
        assert server.publish("blocks", {"height": 10}, match=height_at_least) == 0
        assert server.publish("events", {"kind": "transfer"}) == 1
        note = await receive_json(socket)
        assert note["params"] == {"subscription": events["result"], "result": {"kind": "transfer"}}
    await asyncio.sleep(0.05)
    assert server.subscription_count() == 0 and server.websocket_count == 0


async def test_subscribe_errors(http: aiohttp.ClientSession) -> None:
    async with RpcServer(build_registry(), subscriptions_per_connection_max=2) as server:
        async with http.ws_connect(server.ws_url) as socket:
            unknown = await ws_call(socket, request("subscribe", {"topic": "nope"}))
            assert unknown["error"]["code"] == ErrorCode.INVALID_PARAMS
            assert unknown["error"]["message"].startswith("topic: expected one of")
            bad_filter = await ws_call(socket, request("subscribe", {"topic": "blocks", "filter": {"height": 1}}))
            assert bad_filter["error"]["code"] == ErrorCode.INVALID_PARAMS
            assert bad_filter["error"]["message"].startswith("filter.height: unknown property")
            for _ in range(2):
                assert "result" in await ws_call(socket, request("subscribe", ["blocks"]))
            limit = await ws_call(socket, request("subscribe", ["blocks"]))
            assert limit["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
            assert limit["error"]["data"]["limit"] == "subscriptions_per_connection_max"
        _, over_http = await post(http, server, request("subscribe", ["blocks"]))
        assert over_http["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
        with pytest.raises(ValueError, match="unknown topic"):
            server.publish("nope", {})


async def test_slow_subscriber_is_dropped_without_blocking_the_publisher(http: aiohttp.ClientSession) -> None:
    async with RpcServer(build_registry(), outbound_queue_length_max=8) as server:
        async with http.ws_connect(server.ws_url) as slow_socket, http.ws_connect(server.ws_url) as fast_socket:
            await ws_call(slow_socket, request("subscribe", ["blocks"]))
            await ws_call(fast_socket, request("subscribe", ["blocks"]))
            fast_received = 0

            async def read_fast() -> None:
                nonlocal fast_received
                while True:
                    await receive_json(fast_socket)
                    fast_received += 1

            reader = asyncio.create_task(read_fast())
            # The slow client stops reading; the server keeps publishing large blocks at a pace
            # a reading client keeps up with, until the slow one's queue overflows.
            payload = {"height": 0, "data": "x" * 65_536}
            published = 0
            slowest_publish_s = 0.0
            async with asyncio.timeout(WAIT_S * 4):
                while server.subscription_count("blocks") == 2:
                    started = time.perf_counter()
                    server.publish("blocks", payload)
                    slowest_publish_s = max(slowest_publish_s, time.perf_counter() - started)
                    published += 1
                    await asyncio.sleep(0.001)
            assert slowest_publish_s < 0.1, "publish must never wait for a subscriber"
            # The fast client is unaffected: still subscribed, and it gets everything.
            assert server.subscription_count("blocks") == 1
            assert server.publish("blocks", {"height": 1}) == 1
            async with asyncio.timeout(WAIT_S):
                while fast_received < published + 1:
                    await asyncio.sleep(0.01)
            reader.cancel()
            # The slow client finds the close, with its reason, after what was already sent.
            async with asyncio.timeout(WAIT_S):
                while True:
                    message = await slow_socket.receive()
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
            assert message.type is aiohttp.WSMsgType.CLOSE
            assert message.data == aiohttp.WSCloseCode.POLICY_VIOLATION
            assert message.extra == SLOW_SUBSCRIBER_REASON
            assert published > 8, "the drop came from a full queue, not from the first messages"


async def test_stop_closes_every_websocket(http: aiohttp.ClientSession) -> None:
    server = RpcServer(build_registry())
    await server.start()
    sockets = [await http.ws_connect(server.ws_url) for _ in range(3)]
    for socket in sockets:
        await ws_call(socket, request("subscribe", ["blocks"]))
    async with asyncio.timeout(WAIT_S):
        _, *messages = await asyncio.gather(server.stop(), *(socket.receive() for socket in sockets))
    for message in messages:
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == aiohttp.WSCloseCode.GOING_AWAY and message.extra == STOP_REASON
    assert server.websocket_count == 0 and server.subscription_count() == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.post(server.url, data=b"{}")
    await server.stop()  # a second stop is harmless
    for socket in sockets:
        await socket.close()


async def test_client_subscription_helper(server: RpcServer) -> None:
    async with RpcClient(server.url) as client, client.subscribe("blocks", {"height_min": 2}) as subscription:
        for height in range(4):
            server.publish("blocks", {"height": height}, match=height_at_least)
        async with asyncio.timeout(WAIT_S):
            received = [await anext(subscription), await anext(subscription)]
        assert received == [{"height": 2}, {"height": 3}]
        assert await subscription.unsubscribe() is True
        assert server.subscription_count() == 0
    async with RpcClient(server.url) as client:
        with pytest.raises(RpcError) as caught:
            async with client.subscribe("blocks", {"bad": 1}):
                pass
        assert caught.value.code == ErrorCode.INVALID_PARAMS


async def test_websocket_limits(http: aiohttp.ClientSession) -> None:
    async with RpcServer(build_registry(), request_bytes_max=1_024, websockets_max=1) as server:
        async with http.ws_connect(server.ws_url) as socket:
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await http.ws_connect(server.ws_url)
            assert caught.value.status == 503
            # Far over the limit, the message is not read into memory: the socket closes with 1009.
            await socket.send_str("x" * 1_024 * 5)
            message = await socket.receive(timeout=WAIT_S)
            assert message.type is aiohttp.WSMsgType.CLOSE
            assert message.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
