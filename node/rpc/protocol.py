"""JSON-RPC 2.0 wire format: parsing requests and building responses, with no I/O.

Rules of this file (https://www.jsonrpc.org/specification):
- Bytes go in (`parse_message`), typed requests or ready-made error replies come out; responses are
  plain dicts built by `success_response` / `error_response` and turned into bytes by `encode`.
- Anything a client can send ends as a `Request` or an `ErrorReply`; no other exception escapes
  `parse_message` (the fuzz test in tests/unit/node/test_rpc_protocol.py holds us to that).
- Every error code this server can answer is declared once, in `ERROR_TABLE`; docs/RPC.md and the
  OpenRPC document are derived from (or checked against) it.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson

JSONRPC_VERSION: Final[str] = "2.0"

JsonId = str | int | float | None
"""A request id: the spec allows a string, a number or null (null is discouraged but legal)."""

SERVER_ERROR_CODE_MIN: Final[int] = -32099
"""Lowest code of the range the spec leaves to the implementation ("server errors")."""
SERVER_ERROR_CODE_MAX: Final[int] = -32000
"""Highest code of the server error range."""
RESERVED_ERROR_CODE_MIN: Final[int] = -32768
"""The spec reserves -32768..-32000 for itself; only the server range inside it is ours."""
RESERVED_ERROR_CODE_MAX: Final[int] = -32000


class ErrorCode(enum.IntEnum):
    """Every error code this server answers. The meaning of each lives in `ERROR_TABLE`."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    TX_REJECTED = -32000
    NOT_FOUND = -32001
    READ_ONLY = -32002
    TIMEOUT = -32003
    LIMIT_EXCEEDED = -32004
    MEMPOOL_REFUSED = -32005
    HISTORY_PRUNED = -32006


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the error table: the default message, what it means, and what `data` carries."""

    code: ErrorCode
    message: str
    meaning: str
    data: str


ERROR_TABLE: Final[Mapping[ErrorCode, ErrorSpec]] = {
    spec.code: spec
    for spec in (
        ErrorSpec(ErrorCode.PARSE_ERROR, "Parse error", "the body is not valid UTF-8 JSON", "none"),
        ErrorSpec(
            ErrorCode.INVALID_REQUEST,
            "Invalid Request",
            "the JSON is not a valid request object (or the batch is empty)",
            "none",
        ),
        ErrorSpec(
            ErrorCode.METHOD_NOT_FOUND,
            "Method not found",
            "no such method, or a WebSocket-only method called over HTTP",
            "none",
        ),
        ErrorSpec(
            ErrorCode.INVALID_PARAMS,
            "Invalid params",
            "params do not match the method's declared schemas; the message names the param",
            '{"param": dotted path, "problem": text}',
        ),
        ErrorSpec(
            ErrorCode.INTERNAL_ERROR,
            "Internal error",
            "a bug on the server; the traceback is logged, never sent",
            "none",
        ),
        ErrorSpec(
            ErrorCode.TX_REJECTED,
            "Transaction rejected",
            "the ledger refused the transaction",
            '{"reason_code": "0x57", "reason": rule name}',
        ),
        ErrorSpec(ErrorCode.NOT_FOUND, "Not found", "the requested object does not exist", '{"what": text}'),
        ErrorSpec(
            ErrorCode.READ_ONLY,
            "Read-only node",
            "a write method was called on a read-only (observer) node",
            '{"method": name}',
        ),
        ErrorSpec(ErrorCode.TIMEOUT, "Timeout", "the call did not finish in time", '{"timeout_ms": int}'),
        ErrorSpec(
            ErrorCode.LIMIT_EXCEEDED,
            "Limit exceeded",
            "a request, batch or subscription limit was exceeded",
            '{"limit": name, "max": int, "got": int}',
        ),
        ErrorSpec(
            ErrorCode.MEMPOOL_REFUSED,
            "Mempool refused",
            "the mempool did not admit the transaction (full, duplicate, stale nonce)",
            '{"reason": text}',
        ),
        ErrorSpec(
            ErrorCode.HISTORY_PRUNED,
            "History pruned",
            "the height asked for is before the first one this node holds (it joined by state sync); "
            "ask an archive node",
            '{"height": int, "first_height": int}',
        ),
    )
}


# --- errors ---------------------------------------------------------------------------------------


class RpcErrorBase(Exception):
    """An error that becomes a JSON-RPC error object. Raise a subclass, never this class directly."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = int(code)
        self.message = message
        self.data = data

    def to_object(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcErrorBase):
    def __init__(self, message: str = "Parse error") -> None:
        super().__init__(ErrorCode.PARSE_ERROR, message)


class InvalidRequest(RpcErrorBase):
    def __init__(self, message: str = "Invalid Request") -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message)


class MethodNotFound(RpcErrorBase):
    def __init__(self, method: str, why: str = "method not found") -> None:
        super().__init__(ErrorCode.METHOD_NOT_FOUND, f"{why}: {method}")


class InvalidParams(RpcErrorBase):
    """Params do not match the schema; `param` is the dotted path of the offending value."""

    def __init__(self, param: str, problem: str) -> None:
        message = f"{param}: {problem}" if param else problem
        super().__init__(ErrorCode.INVALID_PARAMS, message, {"param": param, "problem": problem})
        self.param = param
        self.problem = problem


class InternalError(RpcErrorBase):
    def __init__(self) -> None:
        super().__init__(ErrorCode.INTERNAL_ERROR, "Internal error")


class RpcDomainError(RpcErrorBase):
    """Base for errors the node raises from a handler; the client sees code, message and data.

    Codes must come from the server range -32099..-32000 (see `ErrorCode`) or lie outside the
    range the spec reserves (below -32768 or above -32000), so a domain error can never pose as
    a protocol error.
    """

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"error code must be an int, got {code!r}")
        in_server_range = SERVER_ERROR_CODE_MIN <= code <= SERVER_ERROR_CODE_MAX
        in_reserved_range = RESERVED_ERROR_CODE_MIN <= code <= RESERVED_ERROR_CODE_MAX
        if in_reserved_range and not in_server_range:
            raise ValueError(f"error code {code} is reserved by JSON-RPC 2.0 for protocol errors")
        super().__init__(code, message, data)


class TxRejected(RpcDomainError):
    """The ledger refused a transaction; `reason_code` is the rule's code such as "0x57"."""

    def __init__(self, reason_code: str, reason: str, message: str | None = None) -> None:
        super().__init__(
            ErrorCode.TX_REJECTED,
            message or f"transaction rejected: {reason} ({reason_code})",
            {"reason_code": reason_code, "reason": reason},
        )


class NotFound(RpcDomainError):
    def __init__(self, what: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"not found: {what}", {"what": what})


class ReadOnly(RpcDomainError):
    def __init__(self, method: str) -> None:
        super().__init__(
            ErrorCode.READ_ONLY, f"read-only node: {method} changes state", {"method": method}
        )


class Timeout(RpcDomainError):
    def __init__(self, timeout_ms: int) -> None:
        super().__init__(ErrorCode.TIMEOUT, f"call timed out after {timeout_ms} ms", {"timeout_ms": timeout_ms})


class LimitExceeded(RpcDomainError):
    """A bound was hit; `limit` names the setting (for example "batch_length_max")."""

    def __init__(self, limit: str, maximum: int, got: int) -> None:
        super().__init__(
            ErrorCode.LIMIT_EXCEEDED,
            f"limit exceeded: {limit} is {maximum}, got {got}",
            {"limit": limit, "max": maximum, "got": got},
        )


class MempoolRefused(RpcDomainError):
    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.MEMPOOL_REFUSED, f"mempool refused the transaction: {reason}", {"reason": reason})


class HistoryPruned(RpcDomainError):
    """`height` is before `first_height`, the first height whose blocks and events this node holds."""

    def __init__(self, height: int, first_height: int) -> None:
        super().__init__(
            ErrorCode.HISTORY_PRUNED,
            f"history pruned: height {height} is before this node's first height {first_height}; ask an archive node",
            {"height": height, "first_height": first_height},
        )


# --- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed request. `is_notification` is true when the client sent no "id" member."""

    method: str
    params: list[Any] | dict[str, Any] | None
    id: JsonId
    is_notification: bool


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A request that was refused while parsing; it is answered even when it had no id."""

    id: JsonId
    error: RpcErrorBase


Item = Request | ErrorReply


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed body: one item, or a batch of items (each answered separately)."""

    items: tuple[Item, ...]
    is_batch: bool


def parse_message(body: bytes | str, batch_length_max: int | None = None) -> Message:
    """Parse one HTTP body or WebSocket message. Never raises for any input.

    A batch longer than `batch_length_max` is refused whole (one error, nothing runs): running a
    prefix would leave the client guessing which of its transactions were submitted.
    """
    try:
        document = decode_json(body)
    except ParseError as error:
        return Message((ErrorReply(None, error),), is_batch=False)
    if isinstance(document, list):
        if not document:
            return Message((ErrorReply(None, InvalidRequest("Invalid Request: empty batch")),), is_batch=False)
        if batch_length_max is not None and len(document) > batch_length_max:
            error = LimitExceeded("batch_length_max", batch_length_max, len(document))
            return Message((ErrorReply(None, error),), is_batch=False)
        return Message(tuple(parse_request(entry) for entry in document), is_batch=True)
    return Message((parse_request(document),), is_batch=False)


def decode_json(body: bytes | str, *, fast: bool = True) -> Any:
    """Strict JSON (RFC 8259): UTF-8 only, no NaN or Infinity. Raises ParseError.

    msgspec parses what it can (exact integers of any size, as `json` gives them); anything it
    refuses, and any body that could be nested near the recursion limit, goes to `json`, which
    decides and words the error as before. So the answers are the standard library's, only
    cheaper; `fast=False` is the standard library alone, the reference that
    tests/unit/node/test_rpc_json.py and bench/codec.py hold the fast way to."""
    if fast and (len(body) < 2 * JSON_FAST_BRACKETS_MAX or _brackets(body) < JSON_FAST_BRACKETS_MAX):
        try:
            return _JSON_DECODER.decode(body)
        except Exception:  # refused, or read otherwise by `json` (1e400, a lone surrogate): it decides
            pass
    try:  # called from here, not a helper: json's depth limit counts the frames above it
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and the int digit limit;
        # RecursionError is a deeply nested document.
        raise ParseError(f"Parse error: {_first_line(error)}") from None


JSON_FAST_BRACKETS_MAX: Final[int] = 512
"""A body with fewer '[' and '{' than this (or shorter than twice this: a document closes what it
opens) is nested less deeply, far from where `json` (whose limit is the recursion limit, less the
frames in use) and msgspec (a few levels more) refuse; a body with more (a batch of over 250
requests, or deep nesting) is parsed by `json` alone, so that the line between a parse error and a
document stays exactly where it was. Counting costs about 0.3 ns a byte."""

_JSON_DECODER: Final = msgspec.json.Decoder()


def _brackets(body: bytes | str) -> int:
    if isinstance(body, str):
        return body.count("[") + body.count("{")
    return body.count(b"[") + body.count(b"{")


def parse_request(entry: Any) -> Item:
    """Check one request object; the id is echoed in the error when it could be read."""
    if not isinstance(entry, dict):
        return ErrorReply(None, InvalidRequest("Invalid Request: expected an object"))
    has_id = "id" in entry
    request_id = entry.get("id")
    if has_id and not _is_valid_id(request_id):
        return ErrorReply(None, InvalidRequest("Invalid Request: id must be a string, number or null"))
    if entry.get("jsonrpc") != JSONRPC_VERSION:
        return ErrorReply(request_id, InvalidRequest('Invalid Request: "jsonrpc" must be "2.0"'))
    method = entry.get("method")
    if not isinstance(method, str):
        return ErrorReply(request_id, InvalidRequest('Invalid Request: "method" must be a string'))
    params = entry.get("params")
    if "params" in entry and not isinstance(params, list | dict):
        return ErrorReply(request_id, InvalidRequest('Invalid Request: "params" must be an array or object'))
    extra = set(entry) - {"jsonrpc", "method", "params", "id"}
    if extra:
        names = ", ".join(sorted(extra))
        return ErrorReply(request_id, InvalidRequest(f"Invalid Request: unknown members: {names}"))
    return Request(method=method, params=params, id=request_id, is_notification=not has_id)


# --- responses ------------------------------------------------------------------------------------


def success_response(request_id: JsonId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC_VERSION, "result": result, "id": request_id}


def error_response(request_id: JsonId, error: RpcErrorBase) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC_VERSION, "error": error.to_object(), "id": request_id}


def notification(method: str, params: dict[str, Any] | list[Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC_VERSION, "method": method, "params": params}


def encode(document: Any, *, fast: bool = True) -> bytes:
    """Compact UTF-8 JSON. Raises TypeError or ValueError for what JSON cannot carry.

    JSON text may escape a lone UTF-16 surrogate (`"\\udc00"`), which Python decodes into a str
    that UTF-8 cannot encode. A request id (or a value quoted in an error) of that kind is echoed
    back escaped, as ASCII JSON, exactly as the client wrote it.

    orjson writes the document; whatever it would write otherwise than `json` (integers beyond 64
    bits, keys that are not strings, lone surrogates, subclasses of str, int, dict, list or tuple
    such as an IntEnum, dataclasses, datetimes, nesting over 254 levels) it refuses, and `json`
    writes it as before. NaN and infinities, which orjson would write as null, are refused as
    `json` refuses them: a document that came out with a null is searched for them. Floats may be
    spelled otherwise (1e-7 for 1e-07), never with another value. Two types `json` refuses orjson
    writes, a plain Enum member (by its value) and a UUID (as text): no parsed request holds one and
    the node builds none into a document. `fast=False` is `json` alone."""
    if fast:
        try:
            data = orjson.dumps(document, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is one: `json` decides
            pass
        else:
            if b"null" in data and _has_non_finite_float(document):
                raise ValueError("Out of range float values are not JSON compliant")
            return data
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(document, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


_ORJSON_OPTIONS: Final[int] = (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _has_non_finite_float(document: Any) -> bool:
    """Whether a NaN or an infinity is anywhere in a document orjson wrote (so made only of dicts,
    lists, tuples and scalars: anything else it refuses)."""
    stack = [document]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
        elif kind is float and not math.isfinite(value):
            return True
    return False


# --- private --------------------------------------------------------------------------------------


def _is_valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False  # bool is an int in Python, but true is not a number in JSON
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _first_line(error: BaseException) -> str:
    # The decoder's detail helps a client author and reveals nothing about the server.
    text = str(error)
    return text.splitlines()[0][:200] if text else type(error).__name__
