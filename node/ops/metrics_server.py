"""GET /metrics on its own listen address (`[metrics] listen`), in the Prometheus text format.

Apart from the RPC port so that it can be exposed to the monitoring network alone, as CometBFT
does (its default port, 26660, is ours too). Served by aiohttp on the node's event loop, like
everything else, so a scrape reads the node between two of its steps, never in the middle of one
(prometheus-client's own server would run in a thread, beside the loop). Anything but
GET /metrics answers 404; there is no other route.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger("secledger.ops")

#: Time a scrape in flight gets when the node stops.
SHUTDOWN_TIMEOUT_S: Final[float] = 1.0


class MetricsServer:
    def __init__(self, render: Callable[[], bytes], host: str, port: int) -> None:
        self._render = render
        self.host = host
        self._port_requested = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("metrics server already started")
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port_requested).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        log.info("metrics listening on %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("metrics server not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def _handle(self, request: web.Request) -> web.Response:
        return web.Response(body=self._render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
