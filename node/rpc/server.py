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
from node.rpc.methods import SUBSCRIPTION_NOTIFICATION, MethodRegistry, TopicHistory
from node.rpc.protocol import (
    HistoryPruned,
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

REPLAY_HEIGHTS_MAX_DEFAULT: Final[int] = 10_000
"""Most heights one `subscribe` with `from_height` may replay (the tip and the heights below it);
further back is -32004 (`replay_heights_max`): page through `events_query` or `block_get` instead."""

SLOW_SUBSCRIBER_REASON: Final[str] = "outbound queue full: client reads too slowly"
"""Close reason (with code 1008) sent to a WebSocket client dropped for not reading."""
STOP_REASON: Final[str] = "server stopping"
"""Close reason (with code 1001) sent to every WebSocket client by `stop`."""
REPLAY_FAILED_REASON: Final[str] = "replay failed"
"""Close reason (with code 1011) when reading the history of a subscription with `from_height`
failed on the server; the client reconnects and resumes."""

REFUSED_CONTENT_TYPES: Final[frozenset[str]] = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
"""The only refused request content types (HTTP 415): the CORS-safelisted ones, which a web page
may POST cross-origin without a preflight. Anything else, or no header, is read as JSON."""

Match = Callable[[dict[str, Any], Any], bool]
"""`match(filter, payload)`: whether a subscriber with this filter gets this payload."""

Probe = Callable[[], tuple[bool, dict[str, Any]]]
"""A health check for `add_probe`: `(ok, body)`, answered 200 when ok, else 503, the body as JSON."""

Page = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A GET handler for `add_page`."""


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
        replay_heights_max: int = REPLAY_HEIGHTS_MAX_DEFAULT,
    ) -> None:
        if min(request_bytes_max, outbound_queue_length_max, subscriptions_per_connection_max, websockets_max,
               replay_heights_max) < 1:
            raise ValueError("limits must be positive")
        self.replay_heights_max = replay_heights_max
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
        # topic -> subscription id -> subscription; publish looks only at its topic.
        self._subscriptions: dict[str, dict[str, _Subscription]] = {}
        self._probes: dict[str, Probe] = {}  # GET path -> health check (add_probe)
        self._pages: dict[str, Page] = {}  # GET route -> handler (add_page): the console's files

    # --- start / stop -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("server already started")
        app = web.Application()
        app.router.add_post("/", self._handle_http)
        app.router.add_get("/ws", self._handle_websocket)
        for path, probe in self._probes.items():
            app.router.add_get(path, _probe_handler(probe))
        for route, page in self._pages.items():
            app.router.add_get(route, page)
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

    def add_page(self, route: str, page: Page) -> None:
        """Answer GET `route` (an aiohttp route such as "/console/{path:.*}") with `page`, read-only
        content such as the regulator's console (node/console/). Before start()."""
        if self._runner is not None:
            raise RuntimeError("pages are added before the server starts")
        if not route.startswith("/") or route in ("/", "/ws") or route in self._probes:
            raise ValueError(f"bad page route {route!r}")
        self._pages[route] = page

    def publish(self, topic: str, payload: Any, match: Match | None = None) -> int:
        """Notify every subscriber of `topic` whose filter `match(filter, payload)` accepts.

        Never blocks. Returns how many notifications were queued. Raises ValueError for an
        undeclared topic and TypeError for a payload JSON cannot carry (both are caller bugs).
        """
        if self.registry.topic(topic) is None:
            raise ValueError(f"unknown topic {topic!r}")
        # Encoded once; only the subscription id differs between subscribers.
        payload = self.registry.encode_result(payload)
        result = encode(payload).decode()
        height = payload.get("height") if isinstance(payload, dict) else None
        delivered = 0
        for subscription_id, subscription in list(self._subscriptions.get(topic, {}).items()):
            if not subscription.live:
                continue  # replaying from_height: its replay reads this height too, in order
            if subscription.floor is not None and isinstance(height, int) and height <= subscription.floor:
                continue  # the replay sent this height already
            if match is not None and not match(subscription.filter, payload):
                continue
            if subscription.connection.offer(_notification(subscription_id, result)):
                delivered += 1
        return delivered

    def encode_payload(self, payload: Any) -> str:
        """A payload's JSON text, as `publish` sends it."""
        return encode(self.registry.encode_result(payload)).decode()

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
                # After the answer that names them: a replay's first notification must not
                # overtake the subscription id the client matches it by.
                connection.start_replays()
        finally:
            self._forget(connection)
            await connection.stop_writer()
        return socket

    def _add_subscription(self, subscription: _Subscription) -> str:
        subscription_id = secrets.token_hex(16)
        self._subscriptions.setdefault(subscription.topic, {})[subscription_id] = subscription
        return subscription_id

    def _remove_subscription(self, topic: str, subscription_id: str) -> None:
        by_id = self._subscriptions.get(topic, {})
        subscription = by_id.pop(subscription_id, None)
        if subscription is not None:
            subscription.active = False
        if not by_id:
            self._subscriptions.pop(topic, None)

    def _forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self._drop_subscriptions(connection)

    def _drop_subscriptions(self, connection: _Connection) -> None:
        for subscription_id, topic in list(connection.subscriptions.items()):
            self._remove_subscription(topic, subscription_id)
        connection.subscriptions.clear()
        connection.cancel_replays()


class _Subscription:
    """One subscription. `live` is false while a `from_height` replay runs (publish skips it; the
    replay reads those heights from history instead); `floor` is the last height the replay sent,
    so a live payload of that height or below is never sent twice."""

    __slots__ = ("active", "connection", "filter", "floor", "live", "topic")

    def __init__(self, connection: _Connection, topic: str, filter: dict[str, Any], *, live: bool = True,
                 floor: int | None = None) -> None:
        self.connection = connection
        self.topic = topic
        self.filter = filter
        self.live = live
        self.floor = floor
        self.active = True


class _Connection:
    """One WebSocket: its subscriptions and its bounded outbound queue. Implements `Session`."""

    def __init__(self, server: RpcServer, socket: web.WebSocketResponse, remote: str) -> None:
        self._server = server
        self._socket = socket
        self.remote = remote
        self.subscriptions: dict[str, str] = {}  # subscription id -> topic
        self.closing = False
        self._queue: asyncio.Queue[str] = asyncio.Queue(server.outbound_queue_length_max)
        self._room = asyncio.Event()  # set when the queue drains below half (for replays)
        self._pending_replays: list[tuple[str, _Subscription, TopicHistory, int]] = []
        self._replays: set[asyncio.Task[None]] = set()
        self._writer = asyncio.create_task(self._write_loop())
        self._closer: asyncio.Task[None] | None = None

    def subscribe(self, topic: str, filter: dict[str, Any], *, from_height: int | None = None) -> str:
        limit = self._server.subscriptions_per_connection_max
        if len(self.subscriptions) >= limit:
            raise LimitExceeded("subscriptions_per_connection_max", limit, len(self.subscriptions) + 1)
        if from_height is None:
            subscription_id = self._server._add_subscription(_Subscription(self, topic, filter))
            self.subscriptions[subscription_id] = topic
            return subscription_id
        declared = self._server.registry.topic(topic)
        history = declared.history if declared is not None else None
        if history is None:
            raise ValueError(f"topic {topic} has no history")  # the subscribe method checked it
        first = history.first_height()
        if from_height < first:
            raise HistoryPruned(from_height, first)
        heights = history.tip() - from_height + 1
        if heights > self._server.replay_heights_max:
            raise LimitExceeded("replay_heights_max", self._server.replay_heights_max, heights)
        subscription = _Subscription(self, topic, filter, live=False, floor=from_height - 1)
        subscription_id = self._server._add_subscription(subscription)
        self.subscriptions[subscription_id] = topic
        self._pending_replays.append((subscription_id, subscription, history, from_height))
        return subscription_id

    def start_replays(self) -> None:
        """Start the replays of the subscriptions made by the request just answered."""
        pending, self._pending_replays = self._pending_replays, []
        for subscription_id, subscription, history, from_height in pending:
            if subscription.active and not self.closing:
                task = asyncio.create_task(self._replay(subscription_id, subscription, history, from_height))
                self._replays.add(task)
                task.add_done_callback(self._replays.discard)

    def cancel_replays(self) -> None:
        self._pending_replays.clear()
        for task in list(self._replays):
            task.cancel()

    async def _replay(self, subscription_id: str, subscription: _Subscription, history: TopicHistory,
                      from_height: int) -> None:
        """Send the payloads of `from_height` up to the tip, then go live. Heights committed while
        this runs are read here too (publish skips the subscription until it is live); the switch
        to live happens in the same step that finds nothing left to read, so nothing published
        after it is missed, and `floor` keeps out what the replay already sent."""
        next_height = from_height
        try:
            while subscription.active:
                tip = history.tip()
                if next_height > tip:
                    subscription.floor = next_height - 1
                    subscription.live = True
                    return
                after: Any = None
                while subscription.active:
                    payloads, after = history.page(subscription.filter, next_height, tip, after)
                    for payload in payloads:
                        if not subscription.active or not await self._offer_when_room(
                                _notification(subscription_id, self._server.encode_payload(payload))):
                            return
                    if after is None:
                        break
                    await asyncio.sleep(0)  # a page at a time: consensus and other clients go on
                next_height = tip + 1
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("rpc: replay of subscription %s failed", subscription_id)
            self._server._drop_subscriptions(self)
            self._begin_close(WSCloseCode.INTERNAL_ERROR, REPLAY_FAILED_REASON)

    async def _offer_when_room(self, text: str) -> bool:
        """Queue a replayed notification once the queue is at most half full: a replay waits for a
        slow reader instead of overflowing its queue, and leaves room for live messages."""
        while self._queue.qsize() * 2 >= self._queue.maxsize and not self.closing:
            self._room.clear()
            await self._room.wait()
        return self.offer(text)

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
        self.cancel_replays()
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
                if self._queue.qsize() * 2 < self._queue.maxsize:
                    self._room.set()
                await self._socket.send_str(text)
        except (ConnectionError, RuntimeError) as error:
            # The peer went away mid-send; the reading side notices and cleans up.
            logger.debug("rpc: WebSocket write failed: %s", error)


def _notification(subscription_id: str, result: str) -> str:
    """The notification of one payload, `result` already encoded."""
    return (
        f'{{"jsonrpc":"2.0","method":"{SUBSCRIPTION_NOTIFICATION}",'
        f'"params":{{"subscription":"{subscription_id}","result":{result}}}}}'
    )


def _probe_handler(probe: Probe) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        ok, body = probe()
        return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})

    return handle


def _is_acceptable_content_type(header: str) -> bool:
    return header.split(";", 1)[0].strip().lower() not in REFUSED_CONTENT_TYPES


def _json_error(status: int, error: RpcErrorBase) -> web.Response:
    return web.Response(status=status, body=encode(error_response(None, error)), content_type="application/json")
