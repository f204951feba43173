"""The method registry: declarations that drive both dispatch and the OpenRPC document.

A method is declared once, as an `RpcMethod` with its `Param`s and their JSON schemas. The same
declaration validates incoming params before the handler runs and is rendered by
`openrpc_document`, which `rpc.discover` serves; documentation and dispatch cannot drift.

The schema language is a small subset of JSON Schema (see `SCHEMA_KEYWORDS`). A schema that uses
anything else is refused when the method is registered, so no constraint is silently ignored.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from node.rpc.protocol import ERROR_TABLE, ErrorCode, InvalidParams

OPENRPC_VERSION: Final[str] = "1.2.6"

METHOD_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
"""Method and topic names: lower snake case, dots allowed for namespaces."""

RESERVED_PREFIX: Final[str] = "rpc."
"""JSON-RPC 2.0 reserves names starting with "rpc." for the protocol; only built-ins use it."""

SCHEMA_TYPES: Final[frozenset[str]] = frozenset({"string", "integer", "boolean", "object", "array", "null"})

SCHEMA_KEYWORDS: Final[frozenset[str]] = frozenset(
    {
        "type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
        "items", "properties", "required", "additionalProperties", "format",
        # Annotations: carried into the OpenRPC document, never checked.
        "description", "title", "examples", "default",
    }
)

U64_MAX: Final[int] = 2**64 - 1
"""The largest value of `format: "u64"`: the ledger codec's widest integer (ledger/kinds.py AMOUNT_MAX)."""

SCHEMA_FORMATS: Final[frozenset[str]] = frozenset({"u64"})
"""Formats the validator enforces. `u64`: an unsigned 64-bit integer written as a decimal string
(ASCII digits, no sign, no spaces, no leading zeros), as CometBFT writes its 64-bit integers; JSON
parsers that read every number as a double (JavaScript's among them) would round it above 2^53.
`minimum` and `maximum` bound the number the string spells."""

_U64_TEXT: Final[re.Pattern[str]] = re.compile(r"(?:0|[1-9][0-9]{0,19})\Z")

SUBSCRIBE_METHOD: Final[str] = "subscribe"
UNSUBSCRIBE_METHOD: Final[str] = "unsubscribe"
DISCOVER_METHOD: Final[str] = "rpc.discover"
SUBSCRIPTION_NOTIFICATION: Final[str] = "subscription"
"""The method name of every notification a subscriber receives."""

SUBSCRIPTION_ID_PATTERN: Final[str] = "^[0-9a-f]{32}$"

Handler = Callable[..., Awaitable[Any]]


class Session(Protocol):
    """What a WebSocket connection offers to subscription methods (`RpcMethod.subscription`).
    `from_height` is passed only when the client gave it (the topic then has a `history`)."""

    def subscribe(self, topic: str, filter: dict[str, Any], *, from_height: int | None = None) -> str: ...

    def unsubscribe(self, subscription_id: str) -> bool: ...


# --- declarations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its name, JSON schema, whether it must be given, and a line for the docs."""

    name: str
    schema: dict[str, Any]
    required: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"param name {self.name!r} must be lower snake case")
        check_schema(self.schema, self.name)


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """A method the server dispatches and documents.

    `handler` is an async callable taking the params as keyword arguments; an optional param the
    client left out is not passed, so the handler's default applies. `write` marks methods that
    change state (refused on a read-only node). `subscription` marks WebSocket-only methods whose
    handler also receives `session=` (the connection); over HTTP they answer -32601. `errors` lists
    the domain error codes the handler may raise, for the OpenRPC document.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    result: dict[str, Any]
    handler: Handler
    write: bool = False
    subscription: bool = False
    errors: tuple[ErrorCode, ...] = ()

    def __post_init__(self) -> None:
        if not METHOD_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"method name {self.name!r} must match {METHOD_NAME_PATTERN.pattern}")
        names = [param.name for param in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate param names {names}")
        # An object whose __call__ is async is accepted as well as an async function.
        if not (
            inspect.iscoroutinefunction(self.handler) or inspect.iscoroutinefunction(type(self.handler).__call__)
        ):
            raise TypeError(f"{self.name}: handler must be an async function")
        check_schema(self.result, f"{self.name}.result")
        for code in self.errors:
            ErrorCode(code)  # raises ValueError for a code outside the table
        _check_handler_signature(self)


class TopicHistory(Protocol):
    """What a topic offers for `subscribe` with `from_height`: the payloads it published for
    committed heights, read back in the order they were published. Every payload of such a topic
    is an object with an integer "height", and heights are published in ascending order, each
    height's payloads together."""

    def tip(self) -> int:
        """The last height whose payloads have been published."""
        ...

    def first_height(self) -> int:
        """The lowest height this node can replay (1 unless it pruned history)."""
        ...

    def page(self, filter: dict[str, Any], from_height: int, to_height: int,
             after: Any) -> tuple[list[Any], Any]:
        """Payloads matching `filter` of the heights `from_height` to `to_height`, from the start
        (`after` None) or after the cursor the previous page returned; the cursor of the next
        page, or None once the range is exhausted."""
        ...


@dataclass(frozen=True, slots=True)
class Topic:
    """A subscription topic the node publishes to, with the schema of a subscriber's filter.
    With a `history`, `subscribe` takes `from_height` and replays before going live."""

    name: str
    summary: str
    filter_schema: dict[str, Any]
    payload_schema: dict[str, Any]
    history: TopicHistory | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not METHOD_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"topic name {self.name!r} must match {METHOD_NAME_PATTERN.pattern}")
        if self.filter_schema.get("type") != "object":
            raise ValueError(f"topic {self.name}: filter_schema must be of type object")
        check_schema(self.filter_schema, f"{self.name}.filter")
        check_schema(self.payload_schema, f"{self.name}.payload")


class MethodRegistry:
    """All methods and topics of one server. `rpc.discover` is registered on construction, and
    `subscribe`/`unsubscribe` as soon as the first topic is added.

    `result_encoder`, if given, turns every handler's result and every published or replayed
    subscription payload into its JSON form, at the boundary, in one place (the node's turns bytes
    into hex and 64-bit amounts into decimal strings). It must be idempotent: a value already in
    JSON form passes through unchanged."""

    def __init__(self, title: str = "secledger", version: str = "0.1.0",
                 result_encoder: Callable[[Any], Any] | None = None) -> None:
        self.title = title
        self.version = version
        self.result_encoder = result_encoder
        self._methods: dict[str, RpcMethod] = {}
        self._topics: dict[str, Topic] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        #: Specification extensions ("x-..." members) added to the top of the OpenRPC document.
        self.extensions: dict[str, Any] = {}
        self._install(_discover_method(self))

    def add(self, method: RpcMethod) -> RpcMethod:
        """Register a method; names are unique and "rpc." is reserved. Returns the method."""
        if method.name.startswith(RESERVED_PREFIX) or method.name in (SUBSCRIBE_METHOD, UNSUBSCRIBE_METHOD):
            raise ValueError(f"method name {method.name!r} is reserved")
        if method.name in self._methods:
            raise ValueError(f"method {method.name!r} is already registered")
        return self._install(method)

    def add_topic(self, topic: Topic) -> Topic:
        """Declare a topic that WebSocket clients may subscribe to."""
        if topic.name in self._topics:
            raise ValueError(f"topic {topic.name!r} is already registered")
        self._topics[topic.name] = topic
        # Rebuilt on each topic so the "topic" param's enum (and the docs) list every topic.
        self._install(_subscribe_method(self))
        self._install(_unsubscribe_method())
        return topic

    def add_schema(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Name a schema that params and results share (an amount, say): it is listed under
        `components.schemas` of the OpenRPC document. Returns the schema, to use in `Param`s."""
        if name in self._schemas:
            raise ValueError(f"schema {name!r} is already registered")
        check_schema(schema, name)
        self._schemas[name] = schema
        return schema

    @property
    def schemas(self) -> Mapping[str, dict[str, Any]]:
        return dict(self._schemas)

    def get(self, name: str) -> RpcMethod | None:
        return self._methods.get(name)

    def encode_result(self, value: Any) -> Any:
        """`value` in the JSON form clients receive (see `result_encoder`)."""
        return value if self.result_encoder is None else self.result_encoder(value)

    def topic(self, name: str) -> Topic | None:
        return self._topics.get(name)

    @property
    def topics(self) -> Mapping[str, Topic]:
        return dict(self._topics)

    def __iter__(self) -> Iterator[RpcMethod]:
        return iter(list(self._methods.values()))

    def __len__(self) -> int:
        return len(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def _install(self, method: RpcMethod) -> RpcMethod:
        self._methods[method.name] = method
        return method


# --- params ---------------------------------------------------------------------------------------


def bind_params(method: RpcMethod, params: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
    """Map by-position or by-name params to keyword arguments and validate each one.

    Raises InvalidParams naming the param and the problem.
    """
    declared = {param.name: param for param in method.params}
    if params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):
        if len(params) > len(method.params):
            raise InvalidParams(
                "", f"too many positional params: {method.name} takes at most {len(method.params)}, got {len(params)}"
            )
        given = {param.name: value for param, value in zip(method.params, params, strict=False)}
    else:
        unknown = sorted(set(params) - set(declared))
        if unknown:
            expected = ", ".join(declared) or "none"
            raise InvalidParams(unknown[0], f"unknown param (expected: {expected})")
        given = dict(params)
    for param in method.params:
        if param.name not in given:
            if param.required:
                raise InvalidParams(param.name, "missing required param")
            continue
        validate(given[param.name], param.schema, param.name)
    return given


def parse_u64(text: Any) -> int | None:
    """The number a `format: "u64"` string spells, or None if it is not one (wrong type, a sign,
    spaces, leading zeros, anything but ASCII digits, or over 2^64 - 1)."""
    if not isinstance(text, str) or not _U64_TEXT.match(text):
        return None
    number = int(text)
    return number if number <= U64_MAX else None


def validate(value: Any, schema: Mapping[str, Any], path: str) -> None:
    """Check `value` against a schema of the supported subset; raise InvalidParams at `path`."""
    if schema.get("format") == "u64":
        _validate_u64(value, schema, path)
        return
    expected = schema.get("type")
    if expected is not None:
        types = [expected] if isinstance(expected, str) else list(expected)
        if not any(_has_type(value, name) for name in types):
            raise InvalidParams(path, f"expected {' or '.join(types)}, got {_json_type(value)}")
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(_show(option) for option in schema["enum"])
        raise InvalidParams(path, f"expected one of {options}, got {_show(value)}")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise InvalidParams(path, f"must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise InvalidParams(path, f"must be <= {schema['maximum']}, got {value}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise InvalidParams(path, f"must be at least {schema['minLength']} characters, got {len(value)}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise InvalidParams(path, f"must be at most {schema['maxLength']} characters, got {len(value)}")
        # JSON Schema patterns are unanchored (search); declare ^...$ to match the whole string.
        if "pattern" in schema and not _ecma_pattern(schema["pattern"]).search(value):
            raise InvalidParams(path, f"must match {schema['pattern']}, got {_show(value)}")
    if isinstance(value, list):
        if "items" in schema:
            for index, item in enumerate(value):
                validate(item, schema["items"], f"{path}[{index}]")
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise InvalidParams(f"{path}.{name}", "missing required property")
        if schema.get("additionalProperties", True) is False:
            for name in value:
                if name not in properties:
                    raise InvalidParams(f"{path}.{name}", f"unknown property (expected: {', '.join(properties) or 'none'})")
        for name, sub_schema in properties.items():
            if name in value:
                validate(value[name], sub_schema, f"{path}.{name}")


def _validate_u64(value: Any, schema: Mapping[str, Any], path: str) -> None:
    what = schema.get("title", "value")
    if not isinstance(value, str):
        # A JSON number is refused even when it would fit: a client that sends numbers would lose
        # precision above 2^53 without noticing; one spelling for everyone.
        raise InvalidParams(path, f'{what} must be a decimal string, e.g. "1000", got {_json_type(value)}')
    number = parse_u64(value)
    if number is None:
        if _U64_TEXT.match(value):
            raise InvalidParams(path, f"{what} must be at most {U64_MAX}, got {_show(value)}")
        raise InvalidParams(path, f"{what} must be a decimal string of the digits 0-9 (no sign, spaces or "
                                  f'leading zeros), e.g. "1000", got {_show(value)}')
    if "pattern" in schema and not _ecma_pattern(schema["pattern"]).search(value):
        raise InvalidParams(path, f"must match {schema['pattern']}, got {_show(value)}")
    if "minimum" in schema and number < schema["minimum"]:
        raise InvalidParams(path, f"{what} must be >= {schema['minimum']}, got {_show(value)}")
    if "maximum" in schema and number > schema["maximum"]:
        raise InvalidParams(path, f"{what} must be <= {schema['maximum']}, got {_show(value)}")


def check_schema(schema: Any, where: str) -> None:
    """Refuse, at registration time, a schema this validator would not fully enforce."""
    if not isinstance(schema, dict):
        raise TypeError(f"{where}: schema must be a dict, got {type(schema).__name__}")
    unknown = set(schema) - SCHEMA_KEYWORDS
    if unknown:
        raise ValueError(f"{where}: unsupported schema keywords {sorted(unknown)}")
    if "format" in schema:
        if schema["format"] not in SCHEMA_FORMATS:
            raise ValueError(f"{where}: unsupported format {schema['format']!r} (supported: {sorted(SCHEMA_FORMATS)})")
        if schema.get("type") != "string" or set(schema) & {"enum", "minLength", "maxLength"}:
            raise ValueError(f"{where}: a u64 schema is of type string, bounded by minimum and maximum only")
    expected = schema.get("type")
    if expected is not None:
        types = [expected] if isinstance(expected, str) else expected
        if not isinstance(types, list) or not types or not set(types) <= SCHEMA_TYPES:
            raise ValueError(f"{where}: type must be one of {sorted(SCHEMA_TYPES)} or a list of them")
    if "pattern" in schema:
        re.compile(schema["pattern"])
    if "items" in schema:
        check_schema(schema["items"], f"{where}[]")
    for name, sub_schema in schema.get("properties", {}).items():
        check_schema(sub_schema, f"{where}.{name}")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise ValueError(f"{where}: enum must be a non-empty list")
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise ValueError(f"{where}: additionalProperties must be a boolean")


# --- OpenRPC --------------------------------------------------------------------------------------


def openrpc_document(registry: MethodRegistry, title: str | None = None, version: str | None = None) -> dict[str, Any]:
    """The OpenRPC 1.2.6 document of every registered method, built from the declarations."""
    for name in registry.extensions:
        if not name.startswith("x-"):
            raise ValueError(f"OpenRPC extension {name!r} must start with 'x-'")
    components: dict[str, Any] = {
        "errors": {spec.code.name: _error_document(spec.code) for spec in ERROR_TABLE.values()},
    }
    if registry.schemas:
        components["schemas"] = registry.schemas
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title or registry.title, "version": version or registry.version},
        "methods": [_method_document(method) for method in registry],
        "components": components,
        **registry.extensions,
        # Specification extension: topics are not an OpenRPC concept, but clients need them.
        "x-subscription-topics": [
            {
                "name": topic.name,
                "summary": topic.summary,
                "filter": topic.filter_schema,
                "payload": topic.payload_schema,
                "x-replay": topic.history is not None,
            }
            for topic in registry.topics.values()
        ],
    }


def method_error_codes(method: RpcMethod) -> list[ErrorCode]:
    """The errors a call of this method can answer, beyond malformed requests."""
    codes = [ErrorCode.INVALID_PARAMS, ErrorCode.INTERNAL_ERROR, ErrorCode.TIMEOUT]
    if method.write:
        codes.append(ErrorCode.READ_ONLY)
    if method.subscription:
        codes += [ErrorCode.METHOD_NOT_FOUND, ErrorCode.LIMIT_EXCEEDED]
    codes += [code for code in method.errors if code not in codes]
    return codes


def _method_document(method: RpcMethod) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": method.name,
        "summary": method.summary,
        "paramStructure": "either",
        "params": [
            {
                "name": param.name,
                "description": param.description,
                "required": param.required,
                "schema": param.schema,
            }
            for param in method.params
        ],
        "result": {"name": f"{method.name}_result", "schema": method.result},
        "errors": [_error_document(code) for code in method_error_codes(method)],
    }
    if method.write:
        document["x-write"] = True
    if method.subscription:
        document["x-websocket-only"] = True
    return document


def _error_document(code: ErrorCode) -> dict[str, Any]:
    spec = ERROR_TABLE[code]
    return {"code": int(spec.code), "message": spec.message, "data": {"description": spec.data}}


# --- built-in methods -----------------------------------------------------------------------------


def _discover_method(registry: MethodRegistry) -> RpcMethod:
    async def discover() -> dict[str, Any]:
        return openrpc_document(registry)

    return RpcMethod(
        name=DISCOVER_METHOD,
        summary="The OpenRPC document of this server.",
        params=(),
        result={"type": "object"},
        handler=discover,
    )


def _subscribe_method(registry: MethodRegistry) -> RpcMethod:
    async def subscribe(session: Session, topic: str, filter: dict[str, Any] | None = None,
                        from_height: int | None = None) -> str:
        declared = registry.topic(topic)
        assert declared is not None, "the enum of the topic param lists every topic"
        filter = {} if filter is None else filter
        validate(filter, declared.filter_schema, "filter")
        if from_height is None:
            return session.subscribe(topic, filter)
        if declared.history is None:
            raise InvalidParams("from_height", f"topic {topic} has no history to replay")
        return session.subscribe(topic, filter, from_height=from_height)

    return RpcMethod(
        name=SUBSCRIBE_METHOD,
        summary=(
            f"Subscribe to a topic (WebSocket only). Returns the subscription id; each event arrives as a "
            f'"{SUBSCRIPTION_NOTIFICATION}" notification with params {{"subscription": id, "result": payload}}. '
            "With from_height, the committed payloads from that height on are sent first (matching the "
            "filter), then live ones, without a gap or a repeat."
        ),
        params=(
            Param("topic", {"type": "string", "enum": list(registry.topics)}, True, "the topic to follow"),
            Param("filter", {"type": "object"}, False, "the topic's filter; see x-subscription-topics"),
            Param("from_height", {"type": "integer", "minimum": 1, "maximum": 2**62}, False,
                  "replay from this height (topics with x-replay only), then go live"),
        ),
        result={"type": "string", "pattern": SUBSCRIPTION_ID_PATTERN},
        handler=subscribe,
        subscription=True,
        errors=(ErrorCode.HISTORY_PRUNED,),
    )


def _unsubscribe_method() -> RpcMethod:
    async def unsubscribe(session: Session, subscription: str) -> bool:
        return session.unsubscribe(subscription)

    return RpcMethod(
        name=UNSUBSCRIBE_METHOD,
        summary="Cancel a subscription of this connection; false if it did not exist.",
        params=(Param("subscription", {"type": "string", "pattern": SUBSCRIPTION_ID_PATTERN}, True, "subscription id"),),
        result={"type": "boolean"},
        handler=unsubscribe,
        subscription=True,
    )


# --- private --------------------------------------------------------------------------------------


def _check_handler_signature(method: RpcMethod) -> None:
    """Fail at registration if the declared params and the handler's arguments disagree."""
    signature = inspect.signature(method.handler)
    arguments = signature.parameters
    takes_any = any(arg.kind is inspect.Parameter.VAR_KEYWORD for arg in arguments.values())
    names = [param.name for param in method.params] + (["session"] if method.subscription else [])
    for name in names:
        if name not in arguments and not takes_any:
            raise TypeError(f"{method.name}: handler does not accept declared param {name!r}")
    declared_required = {param.name for param in method.params if param.required} | (
        {"session"} if method.subscription else set()
    )
    for name, argument in arguments.items():
        if argument.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        if argument.default is inspect.Parameter.empty and name not in declared_required:
            raise TypeError(f"{method.name}: handler argument {name!r} has no default but is not a required param")


@functools.lru_cache(maxsize=256)
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled with JSON Schema's (ECMA-262's) meaning of a final `$`: the end of the
    string. Python's `$` also matches before a final newline, which let "ab\n" pass `^...$`."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _has_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    return value is None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same(value: Any, option: Any) -> bool:
    # 1 == True in Python; an enum of [1] must not accept true.
    return type(value) is type(option) and value == option


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    return text if len(text) <= 80 else text[:77] + "..."
