"""What an operator sees of one node: metrics, the health and readiness probes, the summary log.

`Node` builds one `Operations` after its parts and feeds it through three narrow doors:
`on_commit` after every block, `observe_stage` for a timed step the driver does not time itself
(an observer's apply), and `start`/`stop`. Everything else is read from the node's public parts
when asked (a scrape, a probe, a summary), or hooked once here: the consensus driver's
`on_timing`, the RPC dispatcher's `on_answer`, and the RPC server's GET /health and GET /ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ledger import Block, BlockResult

from . import health, readiness
from .health import LoopMonitor
from .metrics import NodeMetrics
from .metrics_server import MetricsServer
from .summary import Summary

if TYPE_CHECKING:
    from node.service import Node


class Operations:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.monitor = LoopMonitor()
        self.metrics = NodeMetrics(node, self.monitor)
        self.summary = Summary(node)
        self.metrics_server: MetricsServer | None = None
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []
        if node.driver is not None:
            node.driver.on_timing = self.metrics.observe_stage
        node.rpc.dispatcher.on_answer = self.metrics.count_rpc
        node.rpc.add_probe("/health", self.health)
        node.rpc.add_probe("/ready", self.ready)

    # --- start / stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.monitor.run(), name="ops-loop-monitor"),
                       loop.create_task(self.summary.run(), name="ops-summary")]
        self._running = True
        listen = self.node.config.metrics
        if listen.enabled:
            self.metrics_server = MetricsServer(self.metrics.render, listen.listen.host, listen.listen.port)
            await self.metrics_server.start()

    async def stop(self) -> None:
        self._running = False
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # --- fed by the node -------------------------------------------------------------------------

    def on_commit(self, result: BlockResult, block: Block) -> None:
        self.metrics.on_commit(result, block)
        self.summary.on_commit(len(result.receipts), sum(1 for r in result.receipts if not r.outcome.ok))

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.metrics.observe_stage(stage, seconds)

    # --- probes ------------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        return health.liveness(self.monitor, running=self._running, moniker=self.node.config.node.moniker,
                               height=self.node.ledger.tip.height)

    def ready(self) -> tuple[bool, dict[str, Any]]:
        if not self._running:
            return False, {"node": self.node.config.node.moniker, "ready": False, "reasons": ["not running"]}
        return readiness.readiness(self.node)
