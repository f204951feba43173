"""A small JSON-RPC 2.0 client for secledger nodes: async over aiohttp, sync over urllib (for the
CLI), and a WebSocket subscription helper.

A JSON-RPC error answer raises `RpcError` with the server's code, message and data; a failure to
get any JSON-RPC answer (connection refused, not JSON, wrong id) raises `RpcTransportError`.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any, Final

import aiohttp
from yarl import URL

from node.rpc.methods import SUBSCRIBE_METHOD, SUBSCRIPTION_NOTIFICATION, UNSUBSCRIBE_METHOD

TIMEOUT_MS_DEFAULT: Final[int] = 10_000
"""Time allowed for one call, connection included."""
RESPONSE_BYTES_MAX: Final[int] = 64 * 1_048_576
"""Largest response or WebSocket message the client reads."""


class RpcError(Exception):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class RpcTransportError(Exception):
    """No usable JSON-RPC answer came back."""


class RpcClient:
    """Calls one node. `url` is the HTTP endpoint ("http://127.0.0.1:26657/"); the WebSocket
    endpoint is derived from it ("ws://127.0.0.1:26657/ws") unless `ws_url` is given."""

    def __init__(self, url: str, *, ws_url: str | None = None, timeout_ms: int = TIMEOUT_MS_DEFAULT) -> None:
        self.url = url
        parsed = URL(url)
        self.ws_url = ws_url or str(parsed.with_scheme("wss" if parsed.scheme == "https" else "ws").with_path("/ws"))
        self.timeout_ms = timeout_ms
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def call(self, method: str, /, **params: Any) -> Any:
        """Call `method` with named params over HTTP; return its result or raise RpcError."""
        request_id = next(self._ids)
        body = _request_body(method, params, request_id)
        try:
            async with self._http().post(self.url, data=body, headers={"Content-Type": "application/json"}) as reply:
                text = await _read_capped(reply.content)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RpcTransportError(f"{self.url}: {type(error).__name__}: {error}") from error
        return _result(text, status, request_id)

    def call_sync(self, method: str, /, **params: Any) -> Any:
        """Like `call`, without an event loop (urllib); for the CLI."""
        request_id = next(self._ids)
        request = urllib.request.Request(
            self.url,
            data=_request_body(method, params, request_id),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_ms / 1000) as reply:  # noqa: S310
                return _result(reply.read(RESPONSE_BYTES_MAX + 1), reply.status, request_id)
        except urllib.error.HTTPError as error:
            # 413 and 415 still carry a JSON-RPC error body.
            return _result(error.read(RESPONSE_BYTES_MAX + 1), error.code, request_id)
        except (urllib.error.URLError, OSError) as error:
            raise RpcTransportError(f"{self.url}: {error}") from error

    def subscribe(self, topic: str, filter: dict[str, Any] | None = None, *,
                  from_height: int | None = None) -> Subscription:
        """`async with client.subscribe("blocks") as sub: async for payload in sub: ...`

        With `from_height`, the node first sends the committed payloads from that height on, then
        live ones, without a gap or a repeat: to resume after a disconnect, pass the height after
        the last one fully received (docs/RPC.md, "Subscriptions")."""
        return Subscription(self, topic, filter or {}, from_height=from_height)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_ms / 1000))
        return self._session


class Subscription:
    """One subscription on its own WebSocket. Iterating yields payloads; iteration ends when the
    server closes the socket (see `close_code` and `close_reason`, e.g. 1008 for a slow reader)."""

    def __init__(self, client: RpcClient, topic: str, filter: dict[str, Any], *,
                 from_height: int | None = None) -> None:
        self._client = client
        self.topic = topic
        self.filter = filter
        self.from_height = from_height
        self.id: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._early: list[Any] = []

    async def __aenter__(self) -> Subscription:
        try:
            self._socket = await self._client._http().ws_connect(self._client.ws_url, max_msg_size=RESPONSE_BYTES_MAX)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RpcTransportError(f"{self._client.ws_url}: {error}") from error
        try:
            params: dict[str, Any] = {"topic": self.topic, "filter": self.filter}
            if self.from_height is not None:
                params["from_height"] = self.from_height
            self.id = await self._request(SUBSCRIBE_METHOD, params)
        except BaseException:
            await self._socket.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._early:
            return self._early.pop(0)
        while True:
            document = await self._receive()
            if document is None:
                raise StopAsyncIteration
            payload = self._payload_of(document)
            if payload is not _NOT_OURS:
                return payload

    async def unsubscribe(self) -> bool:
        """Cancel on the server; the socket stays open until `close`."""
        return bool(await self._request(UNSUBSCRIBE_METHOD, {"subscription": self.id}))

    async def close(self) -> None:
        if self._socket is not None and not self._socket.closed:
            await self._socket.close()

    async def _request(self, method: str, params: dict[str, Any]) -> Any:
        assert self._socket is not None
        request_id = next(self._client._ids)
        await self._socket.send_bytes(_request_body(method, params, request_id))
        while True:
            document = await self._receive()
            if document is None:
                raise RpcTransportError(f"WebSocket closed ({self.close_code}: {self.close_reason})")
            if isinstance(document, dict) and document.get("id") == request_id:
                return _result_of(document, request_id)
            payload = self._payload_of(document)
            if payload is not _NOT_OURS:
                self._early.append(payload)

    async def _receive(self) -> Any:
        assert self._socket is not None
        message = await self._socket.receive()
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            try:
                return json.loads(message.data)
            except ValueError as error:
                raise RpcTransportError(f"not JSON from {self._client.ws_url}") from error
        self.close_code = self._socket.close_code
        self.close_reason = message.extra if isinstance(message.extra, str) else None
        return None

    def _payload_of(self, document: Any) -> Any:
        if (
            isinstance(document, dict)
            and document.get("method") == SUBSCRIPTION_NOTIFICATION
            and isinstance(document.get("params"), dict)
            and document["params"].get("subscription") == self.id
        ):
            return document["params"].get("result")
        return _NOT_OURS


_NOT_OURS: Final[object] = object()


async def _read_capped(stream: aiohttp.StreamReader) -> bytes:
    # StreamReader.read(n) returns what has arrived so far, not n bytes: loop to the end.
    body = bytearray()
    while chunk := await stream.read(65_536):
        body += chunk
        if len(body) > RESPONSE_BYTES_MAX:
            break
    return bytes(body)


def _request_body(method: str, params: dict[str, Any], request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}).encode()


def _result(body: bytes, status: int, request_id: int) -> Any:
    if len(body) > RESPONSE_BYTES_MAX:
        raise RpcTransportError(f"response larger than {RESPONSE_BYTES_MAX} bytes")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise RpcTransportError(f"HTTP {status}: not a JSON-RPC response: {body[:200]!r}") from error
    # The server answers errors it detects before reading an id (size, content type) with id null.
    return _result_of(document, request_id, id_may_be_null=True)


def _result_of(document: Any, request_id: int, id_may_be_null: bool = False) -> Any:
    if not isinstance(document, dict) or document.get("jsonrpc") != "2.0":
        raise RpcTransportError(f"not a JSON-RPC response: {str(document)[:200]}")
    if document.get("id") != request_id and not (id_may_be_null and document.get("id") is None):
        raise RpcTransportError(f"response id {document.get('id')!r} does not match request id {request_id}")
    error = document.get("error")
    if isinstance(error, dict):
        raise RpcError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
    if "result" not in document:
        raise RpcTransportError("response has neither result nor error")
    return document["result"]
