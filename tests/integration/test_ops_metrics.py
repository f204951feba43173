"""A running network scraped as Prometheus would, and probed as a load balancer would: the figures
move as blocks commit, and readiness follows quorum and halts."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.client import Signer
from ledger.testing import key_for
from node.rpc.client import RpcClient, RpcError
from node.setup.config import Address, MetricsSection
from node.setup.keys import load_key
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def with_metrics(net: LocalNetwork) -> None:
    """Metrics on for every node, each on a port of its own choosing."""
    for name, config in net.configs.items():
        net.configs[name] = dataclasses.replace(config, metrics=MetricsSection(True, Address("127.0.0.1", 0)))


async def scrape(http: aiohttp.ClientSession, url: str) -> Samples:
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(predicate: Callable[[], object], timeout_s: float = 15.0) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout_s)


async def probe(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_metrics_move_as_blocks_commit(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path / "net", validators=4, observers=1)
    with_metrics(net)
    async with net, aiohttp.ClientSession() as http:
        v0 = net.nodes["validator-0"]
        assert v0.ops.metrics_server is not None
        url = v0.ops.metrics_server.url
        await net.wait_for_height(2)
        await until(lambda: len(v0.peers.connected_peers()) == 4)
        before = await scrape(http, url)
        admin = Signer(load_key(net.directory / "keys" / "admin.json"), v0.chain_id)
        async with RpcClient(net.rpc_url("validator-0")) as client:
            hashes = [(await client.call("tx_submit", tx=admin.grant_role("claim_issuer", bytes(
                key_for(f"kyc-{i}").verify_key)).hex()))["hash"] for i in range(5)]
            for tx_hash in hashes:
                assert (await client.call("tx_wait", hash=tx_hash, timeout_ms=20_000))["status"] == "committed"
            with pytest.raises(RpcError):
                await client.call("no_such_method")
        await net.wait_for_height(v0.ledger.tip.height + 2)
        after = await scrape(http, url)

    height = value(after, "secledger_chain_height")
    assert height >= value(before, "secledger_chain_height") + 2
    assert value(after, "secledger_consensus_height") >= height
    assert sum(value(after, "secledger_consensus_step", step=s) for s in ("propose", "prevote", "precommit", "commit")) == 1
    for name in ("block_interval_seconds", "block_transactions", "block_size_bytes", "block_apply_duration_seconds",
                 "block_commit_duration_seconds", "block_validate_duration_seconds",
                 "sign_state_save_duration_seconds"):
        assert value(after, f"secledger_{name}_count") > value(before, f"secledger_{name}_count"), name
    assert value(after, "secledger_block_transactions_sum") - value(before, "secledger_block_transactions_sum") == 5
    assert value(after, "secledger_block_size_bytes_sum") > value(before, "secledger_block_size_bytes_sum")
    assert value(after, "secledger_transactions_committed_total", outcome="accepted") == 5
    assert value(after, "secledger_mempool_admissions_total", source="client") == 5
    assert value(after, "secledger_mempool_transactions") == 0
    assert value(after, "secledger_rpc_requests_total", method="tx_submit", code="0") == 5
    assert value(after, "secledger_rpc_requests_total", method="unknown", code="-32601") == 1
    assert value(after, "secledger_peers_connected", kind="validator") == 3
    assert value(after, "secledger_peers_connected", kind="observer") == 1
    assert value(after, "secledger_validator_power_connected") == value(after, "secledger_validator_power_total") == 40
    assert value(after, "secledger_validator_power_quorum") == 27
    assert value(after, "secledger_halted") == 0 and value(after, "secledger_ready") == 1
    assert value(after, "secledger_sync_lag_blocks") <= 2
    assert value(after, "secledger_rpc_subscriptions", topic="blocks") == 0
    assert value(after, "secledger_p2p_messages_sent_total") > value(before, "secledger_p2p_messages_sent_total")
    assert value(after, "secledger_process_max_resident_memory_bytes") > 0
    assert ("secledger_p2p_inbound_refused_total", (("reason", "unknown_key"),)) in after  # by reason, from 0
    assert value(after, "process_resident_memory_bytes") > 0


async def test_health_and_readiness_follow_quorum_and_halts(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path / "net", validators=4, observers=1)
    with_metrics(net)
    async with net, aiohttp.ClientSession() as http:
        base = net.rpc_url("validator-0")
        v0 = net.nodes["validator-0"]
        await net.wait_for_height(2)
        await until(lambda: len(v0.peers.connected_peers()) == 4)
        status, body = await probe(http, base + "health")
        assert status == 200 and body["status"] == "ok" and body["node"] == "validator-0"
        status, body = await probe(http, base + "ready")
        assert status == 200 and body["ready"] and body["voting"] and body["reasons"] == []
        assert body["validator_power"] == {"connected": 40, "total": 40, "quorum": 27}
        status, body = await probe(http, net.rpc_url("observer-0") + "ready")
        assert status == 200 and body["mode"] == "observer" and "validator_power" not in body

        # two of four validators gone: 20 of 40 is no quorum
        await net.stop("validator-2")
        await net.stop("validator-3")
        await until(lambda: len(v0.peers.connected_peers()) == 2)
        status, body = await probe(http, base + "ready")
        assert status == 503 and not body["ready"]
        assert body["reasons"] == ["connected validators hold 20 of 40 voting power, counting this node's 10; "
                                   "a quorum is 27"]
        samples = await scrape(http, v0.ops.metrics_server.url)
        assert value(samples, "secledger_ready") == 0 and value(samples, "secledger_validator_power_connected") == 20

        # halted: not ready, still alive (it serves reads for the investigation)
        v1 = net.nodes["validator-1"]
        v1.halt("test: a certified block did not apply")
        status, body = await probe(http, net.rpc_url("validator-1") + "ready")
        assert status == 503 and "halted: test: a certified block did not apply" in body["reasons"]
        assert (await probe(http, net.rpc_url("validator-1") + "health"))[0] == 200
        samples = await scrape(http, v1.ops.metrics_server.url)
        assert value(samples, "secledger_halted") == 1

        # a stopped node's probe answers no more, and its metrics port is let go
        url = v1.ops.metrics_server.url
        await net.stop("validator-1")
        with pytest.raises(aiohttp.ClientConnectionError):
            await scrape(http, url)


async def test_an_idle_node_writes_a_summary_not_a_line_per_block(tmp_path: Path, caplog) -> None:
    net = LocalNetwork(tmp_path / "net", validators=1, observers=0)
    with caplog.at_level(logging.INFO):
        async with net:
            node = net.nodes["validator-0"]
            await net.wait_for_height(5)
            node.ops.summary.report()
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert not [r for r in infos if "committed height" in r.getMessage()]
    [summary] = [r for r in infos if r.getMessage() == "node summary"]
    assert summary.blocks >= 4 and summary.txs == 0 and summary.ready is True and summary.voting is True
