"""Logging for a node process: text lines for people (the default), JSON lines for collectors.

`setup_logging(level, moniker, format)` sets up the root logger of the process (a node is one
process). Both formats carry the same facts. The JSON one writes one object per line, always with
the same keys:

    {"time": "2026-12-04T22:21:32.694Z", "level": "info", "logger": "secledger.ops",
     "node": "validator-0", "height": 1234, "message": "node summary", "fields": {"blocks": 60}}

- `time` is UTC, RFC 3339 with milliseconds; `level` is lower case.
- `height` is the node's committed height when the line was written (null until a node says how
  to read it: `set_height_source`).
- `fields` holds what the call passed as `extra={...}` ({} when nothing). Lines written for
  operators keep the message a constant phrase and put the variables there, so a query can count
  them (`message = "p2p peer unreachable"`, grouped by `fields.address`).
- An exception's traceback goes under `exception`, as one string: the line stays one line.

The text format is the one the node always wrote, with the fields appended as `key=value`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

FORMATS: Final[tuple[str, ...]] = ("text", "json")
#: Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD_ATTRIBUTES: Final[frozenset[str]] = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}

_height_source: Callable[[], int] | None = None


def set_height_source(source: Callable[[], int] | None) -> None:
    """Where log lines read the node's committed height from (one node per process)."""
    global _height_source
    _height_source = source


def current_height() -> int | None:
    if _height_source is None:
        return None
    try:
        return _height_source()
    except Exception:  # a log line must never fail because the node is half built or torn down
        return None


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the call passed as `extra=`, in the order given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the keys the module docstring lists."""

    def __init__(self, moniker: str) -> None:
        super().__init__()
        self.moniker = moniker

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "node": self.moniker,
            "height": current_height(),
            "message": record.getMessage(),
            "fields": record_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, default=_json_default, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`time moniker LEVEL logger: message key=value ...`."""

    def __init__(self, moniker: str) -> None:
        super().__init__(f"%(asctime)s {moniker} %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        fields = record_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        return line


def setup_logging(level: str, moniker: str, format: str = "text", *, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records at `level` and above to `stream` (stderr) in `format`.
    Replaces the handler an earlier call installed; returns the new one."""
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(moniker) if format == "json" else TextFormatter(moniker))
    handler._secledger = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_secledger", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler


def _rfc3339(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def _json_default(value: object) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _text_value(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
