"""The event loop stall monitor (node/ops/loop_stalls.py): a loop held by a blocking call shows up
as one stall of about that length, in the bucket that holds it, and in the Prometheus exposition."""

from __future__ import annotations

import asyncio
import bisect
import time

import pytest
import uvloop
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from node.ops import loop_stalls
from node.ops.loop_stalls import BUCKETS_S, ENVIRONMENT_VARIABLE, STALL_MIN_S, LoopStallMonitor
from node.ops.metrics import _loop_stalls

BLOCK_S = 0.05
INTERVAL_S = 0.002


def bucket_of(seconds: float) -> int:
    """Index of the bucket a value lands in (len(BUCKETS_S) for +Inf)."""
    return bisect.bisect_left(BUCKETS_S, seconds)


def spin(seconds: float) -> None:
    """Hold the loop on the CPU, as a block's apply would."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


async def hold_the_loop(monitor: LoopStallMonitor, hold=time.sleep) -> tuple[float, list[int]]:
    """Let the probe run a while, then block the loop with `hold(BLOCK_S)` (time.sleep by default);
    return how long it was really held and the stalls the monitor recorded around it (per bucket)."""
    await asyncio.sleep(0.03)  # a few probes on an idle loop
    before = list(monitor.counts)
    started = time.perf_counter()
    hold(BLOCK_S)
    held = time.perf_counter() - started
    await asyncio.sleep(3 * INTERVAL_S + 0.005)  # the late probe runs, then one on time
    return held, [after - earlier for after, earlier in zip(monitor.counts, before, strict=True)]


def check_held(monitor: LoopStallMonitor, held: float, new: list[int]) -> None:
    # A stall is recorded at most one interval short (plus uvloop's millisecond rounding), never longer.
    low, high = held - INTERVAL_S - 0.0015, held + 0.001
    assert sum(new[bucket_of(low):bucket_of(high) + 1]) == 1, (held, new)
    assert sum(new[bucket_of(0.016):]) == 1, (held, new)  # and nothing else that long
    if high <= BUCKETS_S[bucket_of(BLOCK_S)]:  # the usual case (a very loaded machine may overrun the sleep)
        assert new[bucket_of(BLOCK_S)] == 1 and BUCKETS_S[bucket_of(BLOCK_S)] == 0.064, (held, new)
    assert monitor.max_s >= low


async def test_a_loop_held_for_50_ms_shows_one_stall_in_its_bucket() -> None:
    monitor = LoopStallMonitor(INTERVAL_S)
    monitor.start()
    try:
        assert monitor.running
        held, new = await hold_the_loop(monitor)
    finally:
        monitor.stop()
    assert not monitor.running
    check_held(monitor, held, new)
    assert monitor.count == sum(monitor.counts) and monitor.sum_s >= monitor.max_s
    assert monitor.cpu_s < 0.02  # asleep in the kernel: the loop was held, but used no CPU


async def test_a_loop_held_on_the_cpu_counts_the_cpu_of_the_stall() -> None:
    monitor = LoopStallMonitor(INTERVAL_S)
    monitor.start()
    try:
        cpu = time.thread_time()
        held, new = await hold_the_loop(monitor, spin)
        cpu = time.thread_time() - cpu
    finally:
        monitor.stop()
    check_held(monitor, held, new)
    if cpu >= 0.9 * held:  # this thread was not preempted meanwhile (a loaded machine may do it)
        assert monitor.cpu_s >= held - INTERVAL_S - 0.0015 - 0.1 * held
    assert monitor.cpu_s <= monitor.sum_s


def test_the_same_under_uvloop_whose_timers_have_millisecond_resolution() -> None:
    async def main() -> tuple[LoopStallMonitor, float, list[int]]:
        monitor = LoopStallMonitor(INTERVAL_S)
        monitor.start()
        try:
            held, new = await hold_the_loop(monitor)
        finally:
            monitor.stop()
        return monitor, held, new

    monitor, held, new = uvloop.run(main())
    check_held(monitor, held, new)


async def test_the_metric_exposes_the_histogram_and_the_worst_stall() -> None:
    monitor = LoopStallMonitor(INTERVAL_S)
    for late in (0.0004, 0.0015, 0.003, 0.05, 0.05, 2.0):
        monitor.record(late, cpu_s=late / 2)

    class Stalls(Collector):
        def collect(self):
            yield from _loop_stalls(monitor)

    registry = CollectorRegistry()
    registry.register(Stalls())
    samples = {(s.name, s.labels.get("le")): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    bucket = "secledger_loop_stall_seconds_bucket"
    assert samples[bucket, "0.001"] == 0  # 0.4 ms is under the threshold: jitter, not a stall
    assert samples[bucket, "0.002"] == 1
    assert samples[bucket, "0.004"] == 2
    assert samples[bucket, "0.032"] == 2
    assert samples[bucket, "0.064"] == 4  # the two 50 ms stalls
    assert samples[bucket, "1.024"] == 4
    assert samples[bucket, "+Inf"] == 5
    assert samples["secledger_loop_stall_seconds_count", None] == 5
    assert samples["secledger_loop_stall_seconds_sum", None] == pytest.approx(0.0015 + 0.003 + 0.1 + 2.0)
    assert samples["secledger_loop_stall_max_seconds", None] == 2.0
    assert samples["secledger_loop_stall_cpu_seconds_total", None] == pytest.approx((0.0015 + 0.003 + 0.1 + 2.0) / 2)
    assert list(_loop_stalls(None)) == []  # a node without the monitor exposes nothing of it


def test_buckets_run_from_1_ms_to_about_1_s_and_the_threshold_is_1_ms() -> None:
    assert BUCKETS_S[0] == 0.001 and 1.0 <= BUCKETS_S[-1] < 1.1 and STALL_MIN_S == 0.001
    assert all(b == 2 * a for a, b in zip(BUCKETS_S, BUCKETS_S[1:], strict=False))


async def test_an_interval_of_zero_turns_the_probe_off(monkeypatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "0")
    monitor = LoopStallMonitor()
    assert monitor.interval_s == 0
    monitor.start()
    assert not monitor.running
    monitor.stop()


def test_the_interval_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "5")
    assert loop_stalls.interval_from_environment() == 0.005
    for bad in ("fast", "-1", "5000"):
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, bad)
        assert loop_stalls.interval_from_environment() == loop_stalls.PROBE_INTERVAL_S
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    assert LoopStallMonitor().interval_s == loop_stalls.PROBE_INTERVAL_S
