"""Turn one JSON-RPC body into its response bytes: parse, look up, check, call, encode.

The transport-free core of the server: HTTP and WebSocket both hand it a body and a session (or
None for HTTP) and send back whatever it returns. It never raises for anything a client sends;
a handler's unexpected exception is logged with its traceback and answered -32603 without one.

Batch entries run one after the other, in the order sent: a client batching transactions of one
signer (nonces n, n+1, ...) must see them admitted in that order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from node.rpc.methods import MethodRegistry, Session, bind_params
from node.rpc.protocol import (
    ErrorReply,
    InternalError,
    JsonId,
    MethodNotFound,
    ReadOnly,
    Request,
    RpcErrorBase,
    Timeout,
    encode,
    error_response,
    parse_message,
    success_response,
)

logger = logging.getLogger(__name__)

BATCH_LENGTH_MAX_DEFAULT: Final[int] = 100
"""Entries in one batch; a longer batch is refused whole with -32004."""
CALL_TIMEOUT_MS_DEFAULT: Final[int] = 10_000
"""How long one handler may run before the call answers -32003."""


class Dispatcher:
    """Answers bodies for one registry. `read_only` refuses methods declared `write=True`."""

    def __init__(
        self,
        registry: MethodRegistry,
        *,
        read_only: bool = False,
        batch_length_max: int = BATCH_LENGTH_MAX_DEFAULT,
        call_timeout_ms: int = CALL_TIMEOUT_MS_DEFAULT,
    ) -> None:
        if batch_length_max < 1 or call_timeout_ms < 1:
            raise ValueError("batch_length_max and call_timeout_ms must be positive")
        self.registry = registry
        self.read_only = read_only
        self.batch_length_max = batch_length_max
        self.call_timeout_ms = call_timeout_ms
        #: Told `(method, code)` once per request answered or run: the method name (None for an
        #: invalid request) and 0 for a result, else the error code. For metrics (node/ops/metrics.py).
        self.on_answer: Callable[[str | None, int], None] | None = None

    async def handle(self, body: bytes | str, session: Session | None = None) -> bytes | None:
        """The encoded response, or None when nothing is to be sent (only notifications)."""
        message = parse_message(body, self.batch_length_max)
        responses: list[bytes] = []
        for item in message.items:
            response = await self._answer(item, session)
            if response is not None:
                responses.append(response)
        if not responses:
            return None
        if message.is_batch:
            return b"[" + b",".join(responses) + b"]"
        return responses[0]

    async def _answer(self, item: ErrorReply | Request, session: Session | None) -> bytes | None:
        if isinstance(item, ErrorReply):
            self._observe(None, item.error.code)
            return encode(error_response(item.id, item.error))
        try:
            result = await self._call(item, session)
        except RpcErrorBase as error:
            self._observe(item.method, error.code)
            return None if item.is_notification else _encode_error(item.id, error)
        self._observe(item.method, 0)
        if item.is_notification:
            return None
        try:
            return encode(success_response(item.id, result))
        except (TypeError, ValueError):
            logger.exception("rpc %s returned a result JSON cannot carry: %r", item.method, type(result))
            return _encode_error(item.id, InternalError())

    def _observe(self, method: str | None, code: int) -> None:
        if self.on_answer is not None:
            self.on_answer(method, int(code))

    async def _call(self, request: Request, session: Session | None) -> Any:
        method = self.registry.get(request.method)
        if method is None:
            raise MethodNotFound(request.method)
        if method.subscription and session is None:
            raise MethodNotFound(request.method, "only available over WebSocket")
        if method.write and self.read_only:
            raise ReadOnly(request.method)
        arguments = bind_params(method, request.params)
        if method.subscription:
            arguments["session"] = session
        timeout = asyncio.timeout(self.call_timeout_ms / 1000)
        try:
            async with timeout:
                result = await method.handler(**arguments)
            return self.registry.encode_result(result)
        except RpcErrorBase:
            raise
        except TimeoutError:
            if timeout.expired():
                raise Timeout(self.call_timeout_ms) from None
            logger.exception("rpc %s raised TimeoutError (id %r)", request.method, request.id)
            raise InternalError() from None
        except Exception:
            # asyncio.CancelledError is a BaseException and passes through: never swallow it.
            logger.exception("rpc %s failed (id %r)", request.method, request.id)
            raise InternalError() from None


def _encode_error(request_id: JsonId, error: RpcErrorBase) -> bytes:
    try:
        return encode(error_response(request_id, error))
    except (TypeError, ValueError):
        # A domain error whose data JSON cannot carry is the node's bug; the client still gets an answer.
        logger.exception("rpc error data is not JSON: %r", error.data)
        return encode(error_response(request_id, InternalError()))
