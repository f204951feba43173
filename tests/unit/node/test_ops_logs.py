"""Log lines: JSON with a fixed set of keys, or text with the fields appended; one line each."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from node.ops import logs


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.set_height_source(None)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_time_level_logger_node_height_message_and_fields() -> None:
    stream = io.StringIO()
    logs.setup_logging("info", "validator-0", "json", stream=stream)
    logs.set_height_source(lambda: 1234)
    logging.getLogger("secledger.test").info("peer not connected", extra={"address": "10.0.0.2:26656", "key": b"\x01"})
    logging.getLogger("secledger.test").debug("below the level")
    [line] = lines(stream)
    document = json.loads(line)
    assert list(document) == ["time", "level", "logger", "node", "height", "message", "fields"]
    assert document["level"] == "info" and document["logger"] == "secledger.test"
    assert document["node"] == "validator-0" and document["height"] == 1234
    assert document["message"] == "peer not connected"
    assert document["fields"] == {"address": "10.0.0.2:26656", "key": "01"}
    assert document["time"].endswith("Z") and document["time"][10] == "T"


def test_json_renders_percent_arguments_and_keeps_a_traceback_on_one_line() -> None:
    stream = io.StringIO()
    logs.setup_logging("debug", "observer-0", "json", stream=stream)
    log = logging.getLogger("secledger.test")
    log.warning("committed height %d: %d txs", 7, 3)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler failed")
    first, second = (json.loads(line) for line in lines(stream))
    assert first["message"] == "committed height 7: 3 txs" and first["fields"] == {} and first["height"] is None
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]
    assert "Traceback" in second["exception"]


def test_a_height_source_that_fails_gives_null_not_a_lost_line() -> None:
    stream = io.StringIO()
    logs.setup_logging("info", "v", "json", stream=stream)
    logs.set_height_source(lambda: 1 // 0)
    logging.getLogger("secledger.test").info("still written")
    assert json.loads(lines(stream)[0])["height"] is None


def test_text_keeps_the_old_format_and_appends_fields() -> None:
    stream = io.StringIO()
    logs.setup_logging("info", "validator-0", "text", stream=stream)
    log = logging.getLogger("secledger.test")
    log.info("rpc listening on %s", "http://127.0.0.1:1/")
    log.info("node summary", extra={"height": 5, "ready": True, "hint": "two words", "peer": "ab"})
    plain, summary = lines(stream)
    assert plain.endswith(" validator-0 INFO secledger.test: rpc listening on http://127.0.0.1:1/")
    assert summary.endswith('secledger.test: node summary height=5 ready=true hint="two words" peer=ab')


def test_setup_replaces_its_own_handler_and_refuses_an_unknown_format() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.setup_logging("info", "v", "text", stream=first)
    logs.setup_logging("info", "v", "json", stream=second)
    logging.getLogger("secledger.test").info("once")
    assert first.getvalue() == "" and len(lines(second)) == 1
    with pytest.raises(ValueError):
        logs.setup_logging("info", "v", "xml")
