"""Liveness (GET /health on the RPC port): the process and its event loop work.

A `LoopMonitor` ticks every `TICK_S` on the node's loop and measures how late each tick fires: the
loop's lag (a long block apply, a garbage collection, a blocking call). The node is alive while it
runs and the last tick is recent; a loop that stopped turning, or a monitor that died, makes the
answer 503. (A loop blocked outright cannot answer at all: the prober's timeout says it.)

A halted node is alive: it keeps serving reads for the investigation, and a restart would not
repair its store. Readiness (node/ops/readiness.py) is what says 503 for it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

#: Interval of the loop monitor's ticks.
TICK_S: Final[float] = 0.5
#: A last tick older than this means the loop, or the monitor, stopped: not alive.
STALE_S: Final[float] = 10.0


class LoopMonitor:
    """Measures the event loop's lag, tick by tick; `run` is the node's task."""

    def __init__(self) -> None:
        self.lag_s = 0.0  # of the last tick
        self.last_tick_s: float | None = None  # loop.time() of the last tick

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.last_tick_s = loop.time()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self.lag_s = max(0.0, now - due)
            self.last_tick_s = now

    def stale(self, now_s: float) -> bool:
        return self.last_tick_s is None or now_s - self.last_tick_s > STALE_S


def liveness(monitor: LoopMonitor, *, running: bool, moniker: str, height: int) -> tuple[bool, dict[str, Any]]:
    """`(alive, body)` for GET /health."""
    now = asyncio.get_running_loop().time()
    if not running:
        status = "stopped"
    elif monitor.stale(now):
        status = "stalled"
    else:
        status = "ok"
    body: dict[str, Any] = {"status": status, "node": moniker, "height": height,
                            "loop_lag_ms": round(monitor.lag_s * 1000, 1)}
    if status == "stalled" and monitor.last_tick_s is not None:
        body["last_tick_s_ago"] = round(now - monitor.last_tick_s, 1)
    return status == "ok", body
