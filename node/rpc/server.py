"""The JSON-RPC 2.0 server: HTTP POST at "/" and WebSocket at "/ws" (aiohttp), plus subscriptions.

Both transports hand each body to one `Dispatcher`; this file only moves bytes, enforces the
transport limits and keeps the subscriptions. Rules:
- Everything has a bound: request bytes, batch length, WebSocket connections, subscriptions per
  connection, queued outbound messages per connection, body read time, close time.
- `publish` never blocks and never awaits: a subscriber whose outbound queue is full is dropped
  (closed with code 1008 and a reason), so one slow client cannot slow the node.
- `stop` closes every WebSocket (code 1001) before the listener goes away.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from node.rpc.dispatch import BATCH_LENGTH_MAX_DEFAULT, CALL_TIMEOUT_MS_DEFAULT, Dispatcher
from node.rpc.methods import SUBSCRIPTION_NOTIFICATION, MethodRegistry
from node.rpc.protocol import (
    InvalidRequest,
    LimitExceeded,
    RpcErrorBase,
    encode,
    error_response,
)

logger = logging.getLogger(__name__)

REQUEST_BYTES_MAX_DEFAULT: Final[int] = 1_048_576
"""Largest HTTP body or WebSocket message answered normally; larger ones answer -32004."""
WS_MESSAGE_BYTES_HARD_FACTOR: Final[int] = 4
"""A WebSocket message over this many times `request_bytes_max` closes the socket (code 1009)
instead of being read into memory to answer -32004."""
OUTBOUND_QUEUE_LENGTH_MAX_DEFAULT: Final[int] = 256
"""Messages (responses and notifications) waiting to be written to one WebSocket."""
SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT: Final[int] = 32
"""Live subscriptions on one WebSocket connection."""
WEBSOCKETS_MAX_DEFAULT: Final[int] = 256
"""Open WebSocket connections; one more is answered HTTP 503."""
BODY_READ_TIMEOUT_MS: Final[int] = 10_000
"""Time allowed to receive a whole HTTP request body."""
WS_HEARTBEAT_MS: Final[int] = 30_000
"""Ping interval on WebSockets; a peer that misses a pong is closed."""
CLOSE_TIMEOUT_MS: Final[int] = 2_000
"""Time a WebSocket close handshake may take before the transport is cut."""
SHUTDOWN_TIMEOUT_MS: Final[int] = 5_000
"""Time in-flight HTTP requests get when the server stops."""
READ_CHUNK_BYTES: Final[int] = 65_536
"""Largest piece of an HTTP body read at once."""

SLOW_SUBSCRIBER_REASON: Final[str] = "outbound queue full: client reads too slowly"
"""Close reason (with code 1008) sent to a WebSocket client dropped for not reading."""
STOP_REASON: Final[str] = "server stopping"
"""Close reason (with code 1001) sent to every WebSocket client by `stop`."""

REFUSED_CONTENT_TYPES: Final[frozenset[str]] = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
"""The only refused request content types (HTTP 415): the CORS-safelisted ones, which a web page
may POST cross-origin without a preflight. Anything else, or no header, is read as JSON."""

Match = Callable[[dict[str, Any], Any], bool]
"""`match(filter, payload)`: whether a subscriber with this filter gets this payload."""

Probe = Callable[[], tuple[bool, dict[str, Any]]]
"""A health check for `add_probe`: `(ok, body)`, answered 200 when ok, else 503, the body as JSON."""


class RpcServer:
    """Serves one `MethodRegistry`. Use `async with RpcServer(...) as server:` or start()/stop()."""

    def __init__(
        self,
        registry: MethodRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        request_bytes_max: int = REQUEST_BYTES_MAX_DEFAULT,
        batch_length_max: int = BATCH_LENGTH_MAX_DEFAULT,
        read_only: bool = False,
        *,
        call_timeout_ms: int = CALL_TIMEOUT_MS_DEFAULT,
        outbound_queue_length_max: int = OUTBOUND_QUEUE_LENGTH_MAX_DEFAULT,
        subscriptions_per_connection_max: int = SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT,
        websockets_max: int = WEBSOCKETS_MAX_DEFAULT,
    ) -> None:
        if min(request_bytes_max, outbound_queue_length_max, subscriptions_per_connection_max, websockets_max) < 1:
            raise ValueError("limits must be positive")
        self.registry = registry
        self.host = host
        self.request_bytes_max = request_bytes_max
        self.outbound_queue_length_max = outbound_queue_length_max
        self.subscriptions_per_connection_max = subscriptions_per_connection_max
        self.websockets_max = websockets_max
        self.dispatcher = Dispatcher(
            registry, read_only=read_only, batch_length_max=batch_length_max, call_timeout_ms=call_timeout_ms
        )
        self._port_requested = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._connections: set[_Connection] = set()
        # topic -> subscription id -> (connection, filter); publish looks only at its topic.
        self._subscriptions: dict[str, dict[str, tuple[_Connection, dict[str, Any]]]] = {}
        self._probes: dict[str, Probe] = {}  # GET path -> health check (add_probe)

    # --- start / stop -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("server already started")
        app = web.Application()
        app.router.add_post("/", self._handle_http)
        app.router.add_get("/ws", self._handle_websocket)
        for path, probe in self._probes.items():
            app.router.add_get(path, _probe_handler(probe))
        # No access log: under load it would be a line per HTTP request, most of the node's log,
        # written on the event loop; the node logs what matters (errors, refusals of peers) itself.
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_MS / 1000,
                               access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port_requested)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        logger.info("rpc listening on %s", self.url)

    async def stop(self) -> None:
        """Close every WebSocket (1001), then stop listening. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        connections = list(self._connections)
        await asyncio.gather(
            *(connection.close(WSCloseCode.GOING_AWAY, STOP_REASON) for connection in connections),
            return_exceptions=True,
        )
        await runner.cleanup()
        logger.info("rpc stopped")

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "ws"

    # --- public -----------------------------------------------------------------------------------

    def add_probe(self, path: str, probe: Probe) -> None:
        """Answer GET `path` (such as "/health" or "/ready") with `probe()`: 200 when it says ok,
        else 503, with its body as JSON, as load balancers and Kubernetes expect. Before start()."""
        if self._runner is not None:
            raise RuntimeError("probes are added before the server starts")
        if not path.startswith("/") or path in ("/", "/ws"):
            raise ValueError(f"bad probe path {path!r}")
        self._probes[path] = probe

    def publish(self, topic: str, payload: Any, match: Match | None = None) -> int:
        """Notify every subscriber of `topic` whose filter `match(filter, payload)` accepts.

        Never blocks. Returns how many notifications were queued. Raises ValueError for an
        undeclared topic and TypeError for a payload JSON cannot carry (both are caller bugs).
        """
        if self.registry.topic(topic) is None:
            raise ValueError(f"unknown topic {topic!r}")
        # Encoded once; only the subscription id differs between subscribers.
        result = encode(payload).decode()
        delivered = 0
        for subscription_id, (connection, filter) in list(self._subscriptions.get(topic, {}).items()):
            if match is not None and not match(filter, payload):
                continue
            text = (
                f'{{"jsonrpc":"2.0","method":"{SUBSCRIPTION_NOTIFICATION}",'
                f'"params":{{"subscription":"{subscription_id}","result":{result}}}}}'
            )
            if connection.offer(text):
                delivered += 1
        return delivered

    def subscription_count(self, topic: str | None = None) -> int:
        """Live subscriptions, of one topic or of all."""
        if topic is not None:
            return len(self._subscriptions.get(topic, {}))
        return sum(len(by_id) for by_id in self._subscriptions.values())

    @property
    def websocket_count(self) -> int:
        return len(self._connections)

    # --- HTTP -------------------------------------------------------------------------------------

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type")
        if content_type is not None and not _is_acceptable_content_type(content_type):
            error = InvalidRequest(f"Invalid Request: unsupported content type {content_type[:60]!r}; use application/json")
            return _json_error(415, error)
        if request.content_length is not None and request.content_length > self.request_bytes_max:
            return _json_error(413, self._too_large(request.content_length))
        body = bytearray()
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_MS / 1000):
                while chunk := await request.content.read(READ_CHUNK_BYTES):
                    body += chunk
                    if len(body) > self.request_bytes_max:
                        # aiohttp reads and discards the rest of the body after we answer.
                        return _json_error(413, self._too_large(len(body)))
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="request body not received in time") from None
        response = await self.dispatcher.handle(bytes(body))
        if response is None:
            return web.Response(status=204)
        return web.Response(body=response, content_type="application/json")

    def _too_large(self, got_bytes: int) -> LimitExceeded:
        return LimitExceeded("request_bytes_max", self.request_bytes_max, got_bytes)

    # --- WebSocket --------------------------------------------------------------------------------

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if self._runner is None:
            raise web.HTTPServiceUnavailable(text="server stopping")
        if len(self._connections) >= self.websockets_max:
            raise web.HTTPServiceUnavailable(text=f"too many WebSocket connections ({self.websockets_max})")
        socket = web.WebSocketResponse(
            max_msg_size=self.request_bytes_max * WS_MESSAGE_BYTES_HARD_FACTOR,
            heartbeat=WS_HEARTBEAT_MS / 1000,
            timeout=CLOSE_TIMEOUT_MS / 1000,
            # No permessage-deflate: a validator's CPU orders blocks; compressing every answer
            # (and inflating every request) cost it more than the bytes saved on a LAN link.
            compress=False,
        )
        await socket.prepare(request)
        connection = _Connection(self, socket, request.remote or "unknown")
        self._connections.add(connection)
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    body: bytes = message.data.encode()
                elif message.type is WSMsgType.BINARY:
                    body = message.data
                else:
                    continue
                if connection.closing:
                    continue  # the close handshake under way ends this loop
                if len(body) > self.request_bytes_max:
                    response: bytes | None = encode(error_response(None, self._too_large(len(body))))
                else:
                    response = await self.dispatcher.handle(body, connection)
                if response is not None:
                    connection.offer(response.decode())
        finally:
            self._forget(connection)
            await connection.stop_writer()
        return socket

    def _add_subscription(self, connection: _Connection, topic: str, filter: dict[str, Any]) -> str:
        subscription_id = secrets.token_hex(16)
        self._subscriptions.setdefault(topic, {})[subscription_id] = (connection, filter)
        return subscription_id

    def _remove_subscription(self, topic: str, subscription_id: str) -> None:
        by_id = self._subscriptions.get(topic, {})
        by_id.pop(subscription_id, None)
        if not by_id:
            self._subscriptions.pop(topic, None)

    def _forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self._drop_subscriptions(connection)

    def _drop_subscriptions(self, connection: _Connection) -> None:
        for subscription_id, topic in list(connection.subscriptions.items()):
            self._remove_subscription(topic, subscription_id)
        connection.subscriptions.clear()


class _Connection:
    """One WebSocket: its subscriptions and its bounded outbound queue. Implements `Session`."""

    def __init__(self, server: RpcServer, socket: web.WebSocketResponse, remote: str) -> None:
        self._server = server
        self._socket = socket
        self.remote = remote
        self.subscriptions: dict[str, str] = {}  # subscription id -> topic
        self.closing = False
        self._queue: asyncio.Queue[str] = asyncio.Queue(server.outbound_queue_length_max)
        self._writer = asyncio.create_task(self._write_loop())
        self._closer: asyncio.Task[None] | None = None

    def subscribe(self, topic: str, filter: dict[str, Any]) -> str:
        limit = self._server.subscriptions_per_connection_max
        if len(self.subscriptions) >= limit:
            raise LimitExceeded("subscriptions_per_connection_max", limit, len(self.subscriptions) + 1)
        subscription_id = self._server._add_subscription(self, topic, filter)
        self.subscriptions[subscription_id] = topic
        return subscription_id

    def unsubscribe(self, subscription_id: str) -> bool:
        topic = self.subscriptions.pop(subscription_id, None)
        if topic is None:
            return False
        self._server._remove_subscription(topic, subscription_id)
        return True

    def offer(self, text: str) -> bool:
        """Queue a message without waiting; a full queue drops the connection."""
        if self.closing:
            return False
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning("rpc: dropping WebSocket client %s: %s", self.remote, SLOW_SUBSCRIBER_REASON)
            # Off the publisher's list at once; the connection stays known until its handler
            # ends, so that stop() still waits for the close under way.
            self._server._drop_subscriptions(self)
            self._begin_close(WSCloseCode.POLICY_VIOLATION, SLOW_SUBSCRIBER_REASON)
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        """Close with `code` (or wait for a close already under way)."""
        await asyncio.shield(self._begin_close(code, reason))

    def _begin_close(self, code: int, reason: str) -> asyncio.Task[None]:
        if self._closer is None:
            self.closing = True
            self._closer = asyncio.create_task(self._close(code, reason))
        return self._closer

    async def _close(self, code: int, reason: str) -> None:
        # Queued messages are discarded: the client is too slow for them, or the server is stopping.
        await self.stop_writer()
        try:
            await asyncio.wait_for(self._socket.close(code=code, message=reason.encode()), CLOSE_TIMEOUT_MS / 1000)
        except (TimeoutError, ConnectionError):
            pass  # aiohttp has already closed the transport abnormally

    async def stop_writer(self) -> None:
        if not self._writer.done():
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # our caller was cancelled too: never swallow that

    async def _write_loop(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                await self._socket.send_str(text)
        except (ConnectionError, RuntimeError) as error:
            # The peer went away mid-send; the reading side notices and cleans up.
            logger.debug("rpc: WebSocket write failed: %s", error)


def _probe_handler(probe: Probe) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        ok, body = probe()
        return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})

    return handle


def _is_acceptable_content_type(header: str) -> bool:
    return header.split(";", 1)[0].strip().lower() not in REFUSED_CONTENT_TYPES


def _json_error(status: int, error: RpcErrorBase) -> web.Response:
    return web.Response(status=status, body=encode(error_response(None, error)), content_type="application/json")
