"""`subscribe` with `from_height` over real sockets, against a topic whose history is a stand-in:
the replay, then live payloads, without a gap or a repeat, even when heights are published while
the replay runs; its bounds and its errors (docs/RPC.md, "Subscriptions")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from node.rpc.client import RpcClient, RpcError
from node.rpc.methods import MethodRegistry, Topic
from node.rpc.protocol import ErrorCode
from node.rpc.server import RpcServer

WAIT_S = 10.0


class Chain:
    """Heights 1..tip, each with `per_height` payloads; `page` reads `page_size` at a time and, if
    `commit_while_reading`, commits (and publishes) a new height on every page it serves, as a
    busy node would while a replay runs."""

    def __init__(self, tip: int, *, per_height: int = 2, page_size: int = 3, first: int = 1) -> None:
        self.height = tip
        self.per_height = per_height
        self.page_size = page_size
        self.first = first
        self.server: RpcServer | None = None
        self.commit_while_reading = 0
        self.pages = 0

    def payloads(self, height: int) -> list[dict[str, Any]]:
        return [{"height": height, "n": n, "even": height % 2 == 0} for n in range(self.per_height)]

    def commit(self) -> None:
        self.height += 1
        assert self.server is not None
        for payload in self.payloads(self.height):
            self.server.publish("ticks", payload, lambda f, p: "even" not in f or f["even"] == p["even"])

    # TopicHistory
    def tip(self) -> int:
        return self.height

    def first_height(self) -> int:
        return self.first

    def page(self, filter: dict[str, Any], from_height: int, to_height: int, after: Any) -> tuple[list[Any], Any]:
        self.pages += 1
        every = [p for h in range(from_height, to_height + 1) for p in self.payloads(h)
                 if "even" not in filter or filter["even"] == p["even"]]
        start = after or 0
        if self.commit_while_reading:
            self.commit_while_reading -= 1
            self.commit()
        end = start + self.page_size
        return every[start:end], (end if end < len(every) else None)


@pytest.fixture
async def chain() -> AsyncIterator[Chain]:
    chain = Chain(tip=20)
    registry = MethodRegistry("replay-test", "0")
    registry.add_topic(Topic("ticks", "Ticks.", {"type": "object", "properties": {"even": {"type": "boolean"}},
                                                  "additionalProperties": False}, {"type": "object"}, history=chain))
    registry.add_topic(Topic("plain", "No history.", {"type": "object"}, {"type": "object"}))
    async with RpcServer(registry, outbound_queue_length_max=8, replay_heights_max=50) as server:
        chain.server = server
        yield chain


def client(chain: Chain) -> RpcClient:
    assert chain.server is not None
    return RpcClient(chain.server.url, timeout_ms=int(WAIT_S * 1000))


async def take(subscription: Any, count: int) -> list[dict[str, Any]]:
    return [await asyncio.wait_for(subscription.__anext__(), WAIT_S) for _ in range(count)]


def keys(payloads: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(p["height"], p["n"]) for p in payloads]


async def test_replay_then_live_with_commits_during_the_replay(chain: Chain) -> None:
    # 20 heights of 2 payloads in pages of 3: 14 pages, each of which commits a new height
    chain.commit_while_reading = 10
    async with client(chain) as rpc, rpc.subscribe("ticks", from_height=5) as subscription:
        replayed = await take(subscription, 2 * (30 - 5 + 1))  # heights 5..30: 20 then 10 more during the replay
        assert chain.height == 30
        chain.commit()
        chain.commit()
        live = await take(subscription, 4)
    expected = [(h, n) for h in range(5, 33) for n in range(2)]
    assert keys(replayed + live) == expected  # no gap, no repeat, in order
    assert chain.pages > 14


async def test_replay_applies_the_filter_and_a_future_height_just_waits(chain: Chain) -> None:
    async with client(chain) as rpc:
        async with rpc.subscribe("ticks", {"even": True}, from_height=17) as subscription:
            assert keys(await take(subscription, 4)) == [(18, 0), (18, 1), (20, 0), (20, 1)]
            chain.commit()  # 21: odd, filtered out
            chain.commit()  # 22
            assert keys(await take(subscription, 2)) == [(22, 0), (22, 1)]
        async with rpc.subscribe("ticks", from_height=24) as ahead:  # the tip is 22: nothing to replay yet
            chain.commit()  # 23 is below from_height: never sent
            chain.commit()
            assert keys(await take(ahead, 2)) == [(24, 0), (24, 1)]


async def test_a_slow_reader_is_paced_not_dropped_by_its_replay(chain: Chain) -> None:
    """The outbound queue holds 8 messages; a replay of 40 waits for room instead of overflowing."""
    async with client(chain) as rpc, rpc.subscribe("ticks", from_height=1) as subscription:
        await asyncio.sleep(0.3)  # not reading: the replay must wait, not fill the queue and be dropped
        assert keys(await take(subscription, 40)) == [(h, n) for h in range(1, 21) for n in range(2)]
        assert subscription.close_code is None


async def test_replay_bounds_and_errors(chain: Chain) -> None:
    async with client(chain) as rpc:
        with pytest.raises(RpcError) as no_history:
            async with rpc.subscribe("plain", from_height=1):
                pass
        assert no_history.value.code == ErrorCode.INVALID_PARAMS and "from_height" in no_history.value.message
        chain.height = 100
        with pytest.raises(RpcError) as too_far:
            async with rpc.subscribe("ticks", from_height=50):
                pass
        assert too_far.value.code == ErrorCode.LIMIT_EXCEEDED
        assert too_far.value.data == {"limit": "replay_heights_max", "max": 50, "got": 51}
        async with rpc.subscribe("ticks", from_height=51) as within:  # exactly 50 heights: allowed
            assert keys(await take(within, 2)) == [(51, 0), (51, 1)]
        chain.first = 60
        with pytest.raises(RpcError) as pruned:
            async with rpc.subscribe("ticks", from_height=59):
                pass
        assert pruned.value.code == ErrorCode.HISTORY_PRUNED == -32006
        assert pruned.value.data == {"height": 59, "first_height": 60}
        with pytest.raises(RpcError) as zero:
            async with rpc.subscribe("ticks", from_height=0):
                pass
        assert zero.value.code == ErrorCode.INVALID_PARAMS


async def test_the_subscription_id_comes_before_the_first_replayed_payload(chain: Chain) -> None:
    assert chain.server is not None
    async with aiohttp.ClientSession() as http, http.ws_connect(chain.server.ws_url) as socket:
        await socket.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                          "params": {"topic": "ticks", "from_height": 20}}))
        first = json.loads((await socket.receive(timeout=WAIT_S)).data)
        assert first["id"] == 1 and len(first["result"]) == 32
        second = json.loads((await socket.receive(timeout=WAIT_S)).data)
        assert second["params"] == {"subscription": first["result"], "result": {"height": 20, "n": 0, "even": True}}
        # unsubscribing ends the replay and the live feed alike
        await socket.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "unsubscribe",
                                          "params": [first["result"]]}))
        while True:
            answer = json.loads((await socket.receive(timeout=WAIT_S)).data)
            if answer.get("id") == 2:
                break
        assert answer["result"] is True
        chain.commit()
        with pytest.raises(asyncio.TimeoutError):
            await socket.receive(timeout=0.3)
