"""A hostile JSON-RPC client against a real `secledger start` process (a one-validator chain on
loopback ports chosen at run time): a flood of concurrent requests, oversized bodies and batches,
unknown methods, wrong types, deep nesting. Every answer is a clear JSON-RPC error, the process's
memory stays bounded, the mempool and the chain are untouched by the junk, and the node keeps
committing blocks throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from node.testing import free_port_base

pytestmark = pytest.mark.asyncio

SECLEDGER = str(Path(sys.executable).parent / "secledger")
#: Requests in the flood, all in flight at once from one client.
FLOOD_REQUESTS = 2_000
#: The node's resident memory may grow by at most this much over the whole test.
RSS_GROWTH_MAX_BYTES = 150 << 20


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
async def node(tmp_path):
    """One validator as a process; yields (url, process); killed at the end whatever happens."""
    base = free_port_base(2)
    out = subprocess.run([SECLEDGER, "testnet", "--validators", "1", "--observers", "0", "--out",
                          str(tmp_path / "net"), "--port-base", str(base)], check=True, capture_output=True, text=True)
    plan = json.loads(out.stdout)["nodes"][0]
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([SECLEDGER, "start", "--config", plan["config"]], stdout=log, stderr=log)
    try:
        yield plan["rpc"], process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


async def _post(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, object]:
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as reply:
        return reply.status, json.loads(await reply.read())


async def _height(http: aiohttp.ClientSession, url: str) -> int:
    _, answer = await _post(http, url, b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status"}')
    assert isinstance(answer, dict)
    return answer["result"]["height"]


async def _wait_height(http: aiohttp.ClientSession, url: str, height: int, bound_s: float) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        try:
            if await _height(http, url) >= height:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"node did not reach height {height} within {bound_s}s")


def _junk(rng: random.Random, i: int) -> tuple[bytes, set[int]]:
    """One hostile request and the error codes (or 0 for success) it may get."""
    choice = rng.randrange(8)
    if choice == 0:
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": "chain_status"}).encode(), {0}
    if choice == 1:
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": f"no_such_{i}"}).encode(), {-32601}
    if choice == 2:
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": "block_get", "params": {"height": "x"}}).encode(), {-32602}
    if choice == 3:
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tx_submit",
                           "params": {"tx": os.urandom(rng.randrange(1, 200)).hex()}}).encode(), {-32005}
    if choice == 4:
        return b"[" * 100_000 + b"]" * 100_000, {-32700}
    if choice == 5:
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tx_get", "params": ["zz"]}).encode(), {-32602}
    if choice == 6:
        return os.urandom(rng.randrange(1, 300)), {-32700, -32600}
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tx_submit", "params": {"tx": 7}}).encode(), {-32602}


def _codes(answer: object) -> set[int]:
    items = answer if isinstance(answer, list) else [answer]
    return {item["error"]["code"] if "error" in item else 0 for item in items}  # type: ignore[index]


async def test_flood_of_hostile_requests_gets_clear_errors_and_the_node_goes_on(node):
    url, process = node
    rng = random.Random(20260101)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await _wait_height(http, url, 2, 60)
        rss_before = _rss_bytes(process.pid)
        start_height = await _height(http, url)

        # 1. a flood: FLOOD_REQUESTS concurrent requests, mostly junk, from one client
        requests = [_junk(rng, i) for i in range(FLOOD_REQUESTS)]
        answers = await asyncio.gather(*(_post(http, url, body) for body, _ in requests))
        for (body, allowed), (_, answer) in zip(requests, answers, strict=True):
            assert _codes(answer) <= allowed, (body[:80], answer)

        # 2. oversized bodies: refused with the limit named, however large
        for size in (1_048_577, 8 << 20, 64 << 20):
            body = b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status", "pad": "' + b"x" * size + b'"}'
            try:
                _, answer = await _post(http, url, body)
            except aiohttp.ClientError:
                continue  # the server may also hang up on a body this large: also a clear refusal
            assert _codes(answer) == {-32004}, answer

        # 3. batches: over the limit refused whole; at the limit, every item answered
        over = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "chain_status"} for i in range(101)]).encode()
        assert _codes((await _post(http, url, over))[1]) == {-32004}
        huge = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "chain_status"} for i in range(100_000)]).encode()
        try:
            assert _codes((await _post(http, url, huge))[1]) == {-32004}
        except aiohttp.ClientError:
            pass
        at = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "nope"} for i in range(100)]).encode()
        answer = (await _post(http, url, at))[1]
        assert isinstance(answer, list) and len(answer) == 100 and _codes(answer) == {-32601}

        # 4. the node is up, answers normally, keeps committing, took no junk into its mempool
        await _wait_height(http, url, start_height + 3, 30)
        _, status = await _post(http, url, b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status"}')
        assert status["result"]["mempool"]["txs"] == 0 and status["result"]["halted"] is None  # type: ignore[index]
        assert process.poll() is None
        await asyncio.sleep(1)  # let buffers of the last requests be freed
        growth = _rss_bytes(process.pid) - rss_before
        print(f"node RSS {rss_before >> 20} MiB before, {(rss_before + growth) >> 20} MiB after the flood")
        assert growth < RSS_GROWTH_MAX_BYTES, f"RSS grew by {growth >> 20} MiB"
