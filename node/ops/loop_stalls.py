"""Loop stalls: how long the node's event loop was held by one piece of work.

Everything a node does runs on one asyncio loop, so while one callback runs (a block's apply, a
garbage collection, a large RPC batch, an fsync) nothing else does: votes, gossip and RPC answers
wait. A `LoopStallMonitor` measures those waits with a probe: a plain timer callback (no task, no
future) that the loop should run every `interval_s`; each time it runs it notes how late it is
(`time.monotonic()` against when it was due) and schedules itself again. A wakeup at least
`STALL_MIN_S` late is a stall, recorded in a histogram (`BUCKETS_S`, 1 ms to about 1 s, in
powers of two) with the worst one seen. Prometheus reads it at scrape time as
`secledger_loop_stall_seconds` and `secledger_loop_stall_max_seconds` (node/ops/metrics.py).

On a machine shared with other work, a wakeup is also late while the node waits for a CPU, and a
blocking system call (an fsync) holds the loop without using a CPU. So each stall also notes how
much CPU the loop's thread used meanwhile (`time.thread_time()`, at most the stall's length):
`cpu_s`, served as `secledger_loop_stall_cpu_seconds_total`. Stalled time minus that is time the
loop was blocked in the kernel or waiting for a CPU, not executing Python.

What a figure means: a stall of D seconds that began while the probe was waiting is seen as a
wakeup late by D minus the part of the interval that had already passed, so the recorded value is
between D - interval_s and D (a lower bound, at most `interval_s` short). Stalls shorter than the
interval can be missed in part or whole, and with uvloop (whose timers have millisecond
resolution) wakeups up to about 1 ms late are timer jitter, not work: hence the 1 ms threshold.

Cost: one timer wakeup per interval, most of it the kernel's, not Python's. On the 2-core
development machine five idle nodes used 12-13 % of a core with the probe at 2 ms against 6-6.5 %
without it (two interleaved pairs of 20 s): about 1.3 % of a core per idle node (the same at 5 ms,
0.5 % at 10 ms, 2.3 % at 1 ms). Under load the loop wakes for I/O anyway.
`SECLEDGER_LOOP_PROBE_MS` sets the interval (0 turns the probe off), so its cost can be measured
against a run without it (docs/BENCHMARKS.md, "Loop stalls, a WAN figure and faults at load").
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from dataclasses import dataclass
from typing import Final

log = logging.getLogger("secledger.ops")

#: Interval of the probe's wakeups (seconds): its resolution, and its cost.
PROBE_INTERVAL_S: Final[float] = 0.002
#: A wakeup at least this late is a stall (below it: the timers' own jitter).
STALL_MIN_S: Final[float] = 0.001
#: Upper bounds (seconds) of the histogram's buckets: 1 ms to 1.024 s in powers of two. A stall's
#: recorded value is at most one probe interval short of the true one, so a stall of, say, 50 ms
#: lands in the (32, 64] ms bucket whatever the probe's phase was.
BUCKETS_S: Final[tuple[float, ...]] = tuple(0.001 * 2**k for k in range(11))
#: The environment variable that sets the interval in milliseconds (0: no probe).
ENVIRONMENT_VARIABLE: Final[str] = "SECLEDGER_LOOP_PROBE_MS"


def interval_from_environment(default_s: float = PROBE_INTERVAL_S) -> float:
    """The probe interval `SECLEDGER_LOOP_PROBE_MS` asks for (seconds; 0 for none), else `default_s`."""
    text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not text:
        return default_s
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:
        log.warning("%s=%r is not a number of milliseconds from 0 to 1000; the loop probe keeps %g ms",
                    ENVIRONMENT_VARIABLE, text, default_s * 1000)
        return default_s
    return value / 1000


@dataclass(frozen=True, slots=True)
class StallSnapshot:
    """The histogram as Prometheus exposes it: cumulative counts per upper bound, then +Inf."""

    buckets: tuple[tuple[float, int], ...]  # (upper bound in seconds, stalls at most that long)
    count: int
    sum_s: float
    max_s: float
    interval_s: float
    cpu_s: float  # CPU time the loop's thread used during the stalls


class LoopStallMonitor:
    """The probe and its histogram. `start` on the running loop, `stop` when the node stops."""

    def __init__(self, interval_s: float | None = None, buckets_s: tuple[float, ...] = BUCKETS_S) -> None:
        self.interval_s = interval_from_environment() if interval_s is None else interval_s
        self.bounds = tuple(buckets_s)
        self.counts = [0] * (len(self.bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.count = 0
        self.sum_s = 0.0
        self.max_s = 0.0
        self.cpu_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._cpu_at = 0.0  # the loop thread's CPU time when the probe was last scheduled

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Begin probing the running loop (nothing, if the interval is 0)."""
        if self._handle is not None or self.interval_s <= 0:
            return
        self._loop = asyncio.get_running_loop()
        self._cpu_at = time.thread_time()
        self._schedule(time.monotonic())

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def record(self, late_s: float, cpu_s: float = 0.0) -> None:
        """One wakeup `late_s` seconds late, the loop's thread having used `cpu_s` of CPU since the
        wakeup before: a stall if at least STALL_MIN_S."""
        if late_s < STALL_MIN_S:
            return
        self.counts[bisect.bisect_left(self.bounds, late_s)] += 1
        self.count += 1
        self.sum_s += late_s
        self.cpu_s += min(late_s, max(0.0, cpu_s))
        if late_s > self.max_s:
            self.max_s = late_s

    def snapshot(self) -> StallSnapshot:
        cumulative, total = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            cumulative.append((bound, total))
        return StallSnapshot(tuple(cumulative), self.count, self.sum_s, self.max_s, self.interval_s, self.cpu_s)

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval_s
        self._handle = self._loop.call_later(self.interval_s, self._probe)

    def _probe(self) -> None:
        if self._handle is None:  # stopped meanwhile
            return
        now, cpu = time.monotonic(), time.thread_time()
        self.record(now - self._due, cpu - self._cpu_at)
        self._cpu_at = cpu
        self._schedule(now)
