"""Liveness and readiness decisions, on stand-ins for the node's parts (networks: tests/integration)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from node.ops import health, readiness


def observer(*, height: int = 10, peer_heights: dict[bytes, int] | None = None, halted: str | None = None):
    heights = {b"a": height} if peer_heights is None else peer_heights
    return SimpleNamespace(
        ledger=SimpleNamespace(tip=SimpleNamespace(height=height)), halted=halted, observer=True,
        sync=SimpleNamespace(peer_heights=heights),
        peers=SimpleNamespace(connected_peers=lambda: frozenset(heights)),
        config=SimpleNamespace(node=SimpleNamespace(moniker="observer-0", mode="observer")))


def test_an_observer_two_blocks_behind_is_ready_three_is_not() -> None:
    ok, body = readiness.readiness(observer(peer_heights={b"a": 12, b"b": 9}))
    assert ok and body["lag_blocks"] == 2 and body["reasons"] == [] and body["ready"] is True
    ok, body = readiness.readiness(observer(peer_heights={b"a": 13}))
    assert not ok and body["lag_blocks"] == 3
    assert body["reasons"] == ["behind: a peer reports height 13, this node is at 10"]


def test_an_observer_alone_or_halted_is_not_ready() -> None:
    ok, body = readiness.readiness(observer(peer_heights={}))
    assert not ok and body["peers"] == 0 and "no peer connected" in body["reasons"][0]
    ok, body = readiness.readiness(observer(halted="cannot apply certified block 5"))
    assert not ok and body["halted"] is True and body["reasons"] == ["halted: cannot apply certified block 5"]


def test_sync_lag_counts_only_peers_ahead() -> None:
    assert readiness.sync_lag(observer(peer_heights={b"a": 4})) == 0
    assert readiness.sync_lag(observer(peer_heights={b"a": 40, b"b": 11})) == 30


def test_validator_power_quorum_is_more_than_two_thirds() -> None:
    power = readiness.ValidatorPower(height=5, total=40, quorum=27, own=10, connected=20, validators_connected=1)
    assert not power.has_quorum
    assert readiness.ValidatorPower(5, 40, 27, 10, 27, 2).has_quorum
    assert not readiness.ValidatorPower(5, 3, 3, 1, 2, 1).has_quorum  # 2 of 3 is not more than two thirds


async def test_liveness_follows_the_loop_monitor() -> None:
    monitor = health.LoopMonitor()
    ok, body = health.liveness(monitor, running=True, moniker="v", height=1)
    assert not ok and body["status"] == "stalled"  # the monitor never ticked
    task = asyncio.get_running_loop().create_task(monitor.run())
    try:
        await asyncio.sleep(0)
        ok, body = health.liveness(monitor, running=True, moniker="v", height=3)
        assert ok and body == {"status": "ok", "node": "v", "height": 3, "loop_lag_ms": 0.0}
        ok, body = health.liveness(monitor, running=False, moniker="v", height=3)
        assert not ok and body["status"] == "stopped"
        assert monitor.stale(asyncio.get_running_loop().time() + health.STALE_S + 1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
