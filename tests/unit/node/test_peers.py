"""Tests of node.p2p.peers: the PeerManager against hand-driven peers on 127.0.0.1.

One manager at a time faces a peer we script with a bare SecretConnection (silent, slow, rude,
unknown), so each rule of the manager is seen on its own. Timings are short; every test ends by
itself within a few seconds. Networks of several managers are in tests/integration/test_p2p.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable

import nacl.bindings
import nacl.public
import nacl.signing
import pytest

from node.p2p.admission import InboundGate, RefusalLog, source_of
from node.p2p.errors import ConnectionClosed, FrameTooLarge, HandshakeError
from node.p2p.peers import (
    KIND_KEEPALIVE,
    KIND_MESSAGE,
    PeerAddress,
    PeerConfig,
    PeerManager,
    _SendQueue,
)
from node.p2p.secret_connection import (
    AUTH_BYTES,
    HELLO_BYTES,
    MAGIC,
    NO_NETWORK,
    TAG_BYTES,
    SecretConnection,
    auth_payload,
    connect,
    derive_secrets,
)

HOST = "127.0.0.1"

FAST = PeerConfig(
    message_bytes_max=64 * 1024,
    handshake_timeout_ms=300,
    dial_timeout_ms=1_000,
    keepalive_interval_ms=100,
    idle_timeout_ms=400,
    write_timeout_ms=1_000,
    send_queue_messages_max=16,
    send_queue_bytes_max=1 << 20,
    dial_backoff_min_ms=20,
    dial_backoff_max_ms=200,
)
"""Short timings so that timeouts fire within a test; the keepalive still beats the idle timeout 4 to 1."""


class _Node:
    """A PeerManager plus a record of what it saw."""

    def __init__(
        self,
        *,
        allowed: set[bytes] | None = None,
        config: PeerConfig = FAST,
        key: nacl.signing.SigningKey | None = None,
    ) -> None:
        self.signing_key = key or nacl.signing.SigningKey.generate()
        self.key = bytes(self.signing_key.verify_key)
        self.messages: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self.events: list[tuple[str, bytes]] = []
        self.manager = PeerManager(
            self.signing_key,
            allowed_keys=allowed or set(),
            on_message=self._on_message,
            on_peer_up=lambda key: self.events.append(("up", key)),
            on_peer_down=lambda key: self.events.append(("down", key)),
            config=config,
            rng=random.Random(7),
        )

    async def _on_message(self, peer_key: bytes, message: bytes) -> None:
        await self.messages.put((peer_key, message))

    async def next_message(self) -> tuple[bytes, bytes]:
        return await asyncio.wait_for(self.messages.get(), 5)


@contextlib.asynccontextmanager
async def _running(node: _Node) -> AsyncIterator[int]:
    """Listen on a free port and start; yields the port; stops however the test ends."""
    port = await node.manager.listen(HOST, 0)
    await node.manager.start()
    try:
        yield port
    finally:
        await node.manager.stop()


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


async def _dial(port: int, key: nacl.signing.SigningKey, **limits: int) -> SecretConnection:
    return await connect(HOST, port, key, lambda k: True, **limits)


def _key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _line(record: logging.LogRecord) -> str:
    """A log record as the node's text format writes it: the message, then its fields as key=value."""
    fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}
    return " ".join([record.getMessage(), *(f"{k}={v}" for k, v in fields.items())])


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(_line(r) for r in caplog.records)


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("p2p inbound refus")]


# -- configuration and small parts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"message_bytes_max": 0},
        {"idle_timeout_ms": -1},
        {"keepalive_interval_ms": 500, "idle_timeout_ms": 500},
        {"dial_backoff_min_ms": 300, "dial_backoff_max_ms": 200},
        {"send_queue_bytes_max": 10, "message_bytes_max": 11},
        {"hello_timeout_ms": 0},
        {"handshakes_per_address_max": 0},
        {"connections_per_address_per_s": 0},
        {"refusal_log_interval_ms": 0},
        {"dial_warning_interval_ms": 700_000, "dial_warning_interval_max_ms": 600_000},
    ],
)
def test_config_refuses_inconsistent_bounds(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PeerConfig(**changes)


def test_backoff_doubles_is_capped_and_jittered_in_whole_ms() -> None:
    manager = PeerManager(
        _key(),
        allowed_keys=(),
        on_message=_ignore,
        config=PeerConfig(dial_backoff_min_ms=100, dial_backoff_max_ms=1_000),
        rng=random.Random(1),
    )
    for failures, ceiling in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000), (60, 1_000)]:
        delays = {manager._backoff_ms(failures) for _ in range(200)}
        assert all(isinstance(d, int) and ceiling // 2 <= d <= ceiling for d in delays)
        assert len(delays) > 10  # Jittered, not fixed.


async def _ignore(peer_key: bytes, message: bytes) -> None:
    return None


async def test_send_queue_is_bounded_by_count_and_bytes() -> None:
    queue = _SendQueue(messages_max=3, bytes_max=10)
    assert queue.offer(b"1234") and queue.offer(b"1234")
    assert not queue.offer(b"123")  # 11 bytes
    assert queue.offer(b"12")
    assert not queue.offer(b"")  # 4th message
    assert await queue.take() == b"1234"
    assert queue.queued_bytes == 6 and len(queue) == 2


def test_persistent_peers_are_allowed_and_our_own_key_is_skipped() -> None:
    own, other = _key(), bytes(_key().verify_key)
    manager = PeerManager(
        own,
        allowed_keys=(),
        on_message=_ignore,
        persistent_peers=[(bytes(own.verify_key), HOST, 1), (other, HOST, 2)],
    )
    assert manager._persistent == {other: PeerAddress(other, HOST, 2)}
    assert manager._accept_inbound(other) and not manager._accept_inbound(bytes(own.verify_key))
    with pytest.raises(ValueError):
        manager.add_persistent_peer((b"short", HOST, 3))
    # A persistent peer's literal address is known: its handshakes draw on the reserved slots.
    assert manager._gate.is_known(HOST)
    manager.add_persistent_peer((bytes(_key().verify_key), "validator-3.example", 4))
    assert not manager._gate.is_known("validator-3.example")


def test_network_id_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PeerManager(_key(), allowed_keys=(), on_message=_ignore, network_id=b"genesis")
    assert PeerManager(_key(), allowed_keys=(), on_message=_ignore).network_id == NO_NETWORK


# -- the inbound gate and the refusal log, on a fake clock ----------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _gate(clock: _Clock, **changes: float) -> InboundGate:
    limits: dict[str, float] = {
        "handshakes_max": 4,
        "handshakes_reserved_max": 2,
        "handshakes_per_source_max": 2,
        "connections_per_s": 2,
        "connections_burst": 3,
        "sources_max": 8,
        **changes,
    }
    return InboundGate(clock=clock, **limits)  # type: ignore[arg-type]


def test_gate_rate_limits_new_connections_per_address_with_a_burst() -> None:
    clock = _Clock()
    gate = _gate(clock, handshakes_per_source_max=10, handshakes_max=10)
    verdicts = [gate.admit("10.0.0.1") for _ in range(4)]
    assert [v.refused for v in verdicts] == [None, None, None, "rate_limited"]
    assert gate.admit("10.0.0.2").refused is None  # another address has its own bucket
    clock.now += 0.5  # one token back at 2 per second
    assert gate.admit("10.0.0.1").refused is None
    assert gate.admit("10.0.0.1").refused == "rate_limited"


def test_gate_evicts_the_oldest_handshake_of_an_address_at_its_cap() -> None:
    clock = _Clock()
    gate = _gate(clock)
    first, second = gate.admit("10.0.0.1").ticket, gate.admit("10.0.0.1").ticket
    third = gate.admit("10.0.0.1")
    assert third.ticket is not None and third.evicted == (first,)
    assert first is not None and not first.active and second is not None and second.active
    gate.done(first)  # the evicted task ending later: harmless
    assert gate.in_flight() == 2


def test_gate_evicts_from_the_busiest_stranger_and_keeps_reserved_slots_for_known_addresses() -> None:
    clock = _Clock()
    gate = _gate(clock)
    gate.remember("10.0.0.9")
    strangers = [gate.admit(a).ticket for a in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3")]
    assert gate.in_flight() == 4  # the stranger pool is full
    newcomer = gate.admit("10.0.0.4")
    assert newcomer.ticket is not None and newcomer.evicted == (strangers[0],)  # busiest, oldest
    # A known address does not compete with strangers: its pool is its own.
    known = [gate.admit("10.0.0.9") for _ in range(2)]
    assert all(v.ticket is not None and v.ticket.reserved and not v.evicted for v in known)
    assert gate.in_flight() == 6
    for ticket in (*strangers, newcomer.ticket, *(v.ticket for v in known)):
        assert ticket is not None
        gate.done(ticket)
    assert gate.in_flight() == 0


def test_gate_groups_ipv6_by_64_and_unwraps_mapped_ipv4() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert source_of("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_of("fe80::1%eth0") == "fe80::/64"
    clock = _Clock()
    gate = _gate(clock)
    gate.admit("2001:db8:1:2::1")
    gate.admit("2001:db8:1:2::2")
    assert gate.admit("2001:db8:1:2::3").evicted  # one /64 is one address


def test_gate_table_is_bounded_idle_addresses_go_first() -> None:
    clock = _Clock()
    gate = _gate(clock, sources_max=2, handshakes_max=10)
    a = gate.admit("10.0.0.1").ticket
    b = gate.admit("10.0.0.2").ticket
    assert gate.admit("10.0.0.3").refused == "rate_limited"  # table full of busy addresses
    assert a is not None and b is not None
    gate.done(a)
    gate.done(b)
    clock.now += 10  # their buckets are full again: idle
    assert gate.admit("10.0.0.3").refused is None


def test_refusal_log_writes_the_first_at_once_and_then_one_summary_per_interval() -> None:
    clock = _Clock()
    scheduled: list[tuple[float, Callable[[], None]]] = []

    class _Handle:
        def cancel(self) -> None:
            scheduled.clear()

    def schedule(delay_s: float, callback: Callable[[], None]) -> _Handle:
        scheduled.append((clock.now + delay_s, callback))
        return _Handle()

    lines: list[tuple[str, dict[str, object]]] = []
    refusals = RefusalLog(
        interval_s=10, clock=clock, emit=lambda m, f: lines.append((m, f)), schedule=schedule
    )
    refusals.note("unknown_key", "10.0.0.1", "refused unknown peer abcd connecting from 10.0.0.1")
    assert lines == [
        (
            "p2p inbound refused",
            {
                "reason": "unknown_key",
                "source": "10.0.0.1",
                "detail": "refused unknown peer abcd connecting from 10.0.0.1",
            },
        )
    ]
    for i in range(5_000):
        clock.now += 0.001
        refusals.note("rate_limited" if i % 2 else "timed_out", f"10.0.0.{2 + i % 3}", f"detail {i}")
    assert len(lines) == 1 and len(scheduled) == 1  # one summary due, at the end of the interval
    due_s, flush = scheduled.pop()
    assert due_s == pytest.approx(1_010.0)
    clock.now = due_s
    flush()
    assert len(lines) == 2
    message, fields = lines[1]
    assert message == "p2p inbound refusals"
    assert fields == {
        "refused": 5000,
        "span_s": 10,
        "rate_limited": 2500,
        "timed_out": 2500,
        "busiest": "10.0.0.2:1667,10.0.0.3:1667,10.0.0.4:1666",
        "last": "detail 4999",
    }
    # A refusal that comes when a summary is due but before its timer runs goes into that summary.
    refusals.note("evicted", "10.0.0.1", "before the timer")
    clock.now += 10
    refusals.note("evicted", "10.0.0.1", "due now")
    assert len(lines) == 3 and lines[2] == (
        "p2p inbound refusals",
        {"refused": 2, "span_s": 10, "evicted": 2, "busiest": "10.0.0.1:2", "last": "due now"},
    )
    assert not scheduled  # its timer was cancelled: no second line right after
    lines.pop()
    refusals.note("failed", "10.0.0.1", "one more")  # within the interval of the summary: counted
    assert len(lines) == 2
    refusals.close()  # stopping: what is pending is written now
    assert len(lines) == 3 and lines[2][1]["failed"] == 1 and not scheduled


# -- one manager against a scripted peer ----------------------------------------------------------


async def test_known_peer_connects_both_learn_keys_and_messages_flow() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        conn = await _dial(port, client_key, frame_bytes_max=FAST.message_bytes_max + 1)
        try:
            assert conn.remote_key == node.key
            await _until(lambda: node.manager.connected_peers() == {conn.local_key})
            assert node.events == [("up", conn.local_key)]
            await conn.send(KIND_MESSAGE + b"hello")
            assert await node.next_message() == (conn.local_key, b"hello")
            assert node.manager.send(conn.local_key, b"back")
            while (frame := await conn.receive()) == KIND_KEEPALIVE:
                pass
            assert frame == KIND_MESSAGE + b"back"
        finally:
            conn.close()
        await _until(lambda: node.events[-1] == ("down", conn.local_key))
        assert node.manager.connected_peers() == frozenset()
        assert not node.manager.send(conn.local_key, b"gone")


async def test_unknown_peer_is_refused_logged_with_its_key_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stranger = _key()
    node = _Node(allowed={bytes(_key().verify_key)})
    async with _running(node) as port:
        with caplog.at_level(logging.WARNING, logger="node.p2p.peers"):
            with pytest.raises(HandshakeError, match="refused our node key"):
                await _dial(port, stranger)
            await _until(lambda: node.manager.stats.refused_unknown == 1)
    assert bytes(stranger.verify_key).hex() in _logged(caplog)
    assert "refused unknown peer" in _logged(caplog)
    assert node.events == []


async def test_dialled_peer_with_the_wrong_key_is_refused_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    impostor = _Node(allowed=set())  # Accepts nobody either; we only need it to listen.
    expected = bytes(_key().verify_key)
    node = _Node()
    async with _running(impostor) as port:
        node.manager.add_persistent_peer((expected, HOST, port))
        with caplog.at_level(logging.WARNING, logger="node.p2p.peers"):
            async with _running(node):
                await _until(lambda: node.manager.stats.refused_unknown >= 1)
        # Refused on both sides: the impostor refuses us too (we are not on its list).
        await _until(lambda: impostor.manager.stats.refused_unknown >= 1)
    assert impostor.key.hex() in _logged(caplog)
    assert node.events == [] and impostor.events == []


async def test_silent_connector_is_cut_after_the_handshake_timeout() -> None:
    node = _Node()
    loop = asyncio.get_running_loop()
    async with _running(node) as port:
        reader, writer = await asyncio.open_connection(HOST, port)
        started = loop.time()
        try:
            await asyncio.wait_for(reader.read(), 5)  # Its hello, then EOF when it cuts us.
            assert FAST.handshake_timeout_ms / 1000 * 0.8 <= loop.time() - started < 3
            await _until(lambda: node.manager.stats.handshake_failures == 1)
        finally:
            writer.close()


async def _open_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to us from `source`, another loopback address (all of 127/8 is local)."""
    return await asyncio.open_connection(HOST, port, local_addr=(source, 0))


async def test_handshakes_in_flight_are_bounded_per_address_and_the_oldest_makes_room() -> None:
    config = PeerConfig(**{**_fields(FAST), "handshake_timeout_ms": 3_000, "handshakes_per_address_max": 2})
    node = _Node(config=config)
    loop = asyncio.get_running_loop()
    async with _running(node) as port:
        streams = [await _open_from("127.0.0.2", port) for _ in range(3)]
        started = loop.time()
        try:
            # The first (oldest) is cut at once: its hello, then EOF, long before any timeout.
            assert len(await asyncio.wait_for(streams[0][0].read(), 5)) == HELLO_BYTES
            assert loop.time() - started < 1
            await _until(lambda: node.manager.stats.handshakes_evicted == 1)
            assert node.manager.stats.inbound_refused["evicted"] == 1
            assert node.manager._gate.in_flight() == 2
        finally:
            for _, writer in streams:
                writer.close()


async def test_new_connections_are_rate_limited_per_address() -> None:
    config = PeerConfig(
        **{**_fields(FAST), "connections_per_address_burst": 3, "connections_per_address_per_s": 1}
    )
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)}, config=config)
    async with _running(node) as port:
        streams = [await _open_from("127.0.0.3", port) for _ in range(5)]
        try:
            await _until(lambda: node.manager.stats.inbound_rate_limited == 2)
            # Over the rate: closed on accept, before we say a word.
            assert [await asyncio.wait_for(r.read(), 5) for r, _ in streams[3:]] == [b"", b""]
            assert node.manager.stats.inbound_refused["rate_limited"] == 2
            # Another address is not held back by this one.
            conn = await connect(HOST, port, client_key, lambda k: True)
            conn.close()
        finally:
            for _, writer in streams:
                writer.close()


async def test_a_silent_connector_is_cut_at_the_hello_deadline() -> None:
    config = PeerConfig(**{**_fields(FAST), "hello_timeout_ms": 100, "handshake_timeout_ms": 3_000})
    node = _Node(config=config)
    loop = asyncio.get_running_loop()
    async with _running(node) as port:
        reader, writer = await asyncio.open_connection(HOST, port)
        started = loop.time()
        try:
            assert len(await asyncio.wait_for(reader.read(), 5)) == HELLO_BYTES
            assert loop.time() - started < 1.5  # the hello deadline, not the 3 s handshake timeout
            await _until(lambda: node.manager.stats.handshake_timeouts == 1)
            assert node.manager.stats.inbound_refused["timed_out"] == 1
        finally:
            writer.close()


async def test_silent_sockets_from_one_client_do_not_stop_an_allowed_peer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The review's case: one client holding 64 silent sockets (reopened as they are cut) left an
    allow-listed peer with 0 handshakes out of 48. The limits are the defaults here."""
    config = PeerConfig(**{**_fields(PeerConfig()), "message_bytes_max": FAST.message_bytes_max})
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)}, config=config)
    stop = asyncio.Event()
    opened = 0

    async def hold_silent_socket() -> None:
        nonlocal opened
        while not stop.is_set():
            try:
                reader, writer = await _open_from("127.0.0.2", port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            opened += 1
            try:
                await reader.read()  # until the node cuts us
            except OSError:
                pass
            finally:
                writer.close()

    with caplog.at_level(logging.INFO, logger="node.p2p"):
        async with _running(node) as port:
            attackers = [asyncio.create_task(hold_silent_socket()) for _ in range(64)]
            try:
                await asyncio.sleep(0.3)
                completed = 0
                for _ in range(20):
                    conn = await connect(HOST, port, client_key, lambda k: True, handshake_timeout_ms=5_000)
                    await _until(lambda: conn.local_key in node.manager.connected_peers())  # noqa: B023
                    conn.close()
                    completed += 1
                    await _until(lambda: conn.local_key not in node.manager.connected_peers())  # noqa: B023
            finally:
                stop.set()
                for task in attackers:
                    task.cancel()
                await asyncio.gather(*attackers, return_exceptions=True)
    assert completed == 20
    assert opened >= 64 and node.manager.stats.inbound_refused["rate_limited"] > 0
    assert node.manager._gate.in_flight() <= config.handshakes_per_address_max
    refusal_lines = _refusal_lines(caplog)
    assert len(refusal_lines) <= 2  # the first, and the summary written at stop


def _fields(config: PeerConfig) -> dict[str, int]:
    return {name: getattr(config, name) for name in PeerConfig.__dataclass_fields__}


async def test_authenticated_but_silent_peer_is_cut_after_the_idle_timeout() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    loop = asyncio.get_running_loop()
    async with _running(node) as port:
        conn = await _dial(port, client_key)
        started = loop.time()
        try:
            # We never send, not even keepalives, though the manager keeps sending them to us.
            await _until(lambda: ("down", conn.local_key) in node.events)
            assert FAST.idle_timeout_ms / 1000 * 0.8 <= loop.time() - started < 3
            assert node.manager.stats.idle_disconnects == 1
        finally:
            conn.close()


async def test_keepalives_keep_an_idle_link_open_past_the_idle_timeout() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        conn = await _dial(port, client_key)
        try:
            keepalives = 0
            async with asyncio.timeout(3 * FAST.idle_timeout_ms / 1000):
                while keepalives < 8:  # 8 x 100 ms: twice the idle timeout.
                    assert await conn.receive() == KIND_KEEPALIVE
                    keepalives += 1
                    await conn.send(KIND_KEEPALIVE)
            assert node.manager.connected_peers() == {conn.local_key}
            assert node.manager.stats.idle_disconnects == 0
        finally:
            conn.close()


async def test_message_limit_is_checked_on_send_and_on_receive() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        conn = await _dial(port, client_key, frame_bytes_max=1 << 20)
        try:
            await _until(lambda: bool(node.manager.connected_peers()))
            limit = FAST.message_bytes_max
            with pytest.raises(FrameTooLarge):
                node.manager.send(conn.local_key, bytes(limit + 1))
            with pytest.raises(FrameTooLarge):
                node.manager.broadcast(bytes(limit + 1))
            await conn.send(KIND_MESSAGE + bytes(limit))  # At the limit: delivered.
            assert await node.next_message() == (conn.local_key, bytes(limit))
            await conn.send(KIND_MESSAGE + bytes(limit + 1))  # Over: the link is cut.
            await _until(lambda: ("down", conn.local_key) in node.events)
            assert node.messages.empty()
        finally:
            conn.close()


@pytest.mark.parametrize("frame", [b"", b"\x07junk", KIND_KEEPALIVE + b"x"])
async def test_bad_envelope_cuts_the_link(frame: bytes) -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        conn = await _dial(port, client_key)
        try:
            await conn.send(frame)
            await _until(lambda: ("down", conn.local_key) in node.events)
            assert node.manager.stats.protocol_errors == 1
        finally:
            conn.close()


async def test_slow_peer_overflowing_its_send_queue_is_cut_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        # The peer never reads: kernel buffers fill, the writer stalls, the queue overflows.
        conn = await _dial(port, client_key)
        try:
            await _until(lambda: bool(node.manager.connected_peers()))
            message = bytes(FAST.message_bytes_max)
            with caplog.at_level(logging.WARNING, logger="node.p2p.peers"):
                async with asyncio.timeout(5):
                    while node.manager.send(conn.local_key, message):
                        await asyncio.sleep(0.001)  # Slower than loopback: only a stall fills the queue.
            assert node.manager.stats.overflow_disconnects == 1
            assert (
                node.manager.stats.messages_sent > FAST.send_queue_messages_max
            )  # The kernel took some first.
            assert "cutting the slow peer" in caplog.text
            assert conn.local_key not in node.manager.connected_peers()
            await _until(lambda: ("down", conn.local_key) in node.events)
        finally:
            conn.close()


async def test_handler_error_is_logged_and_the_link_survives(caplog: pytest.LogCaptureFixture) -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    calls: list[bytes] = []

    async def flaky(peer_key: bytes, message: bytes) -> None:
        calls.append(message)
        if message == b"boom":
            raise ValueError("node bug")

    node.manager._on_message = flaky
    async with _running(node) as port:
        conn = await _dial(port, client_key)
        try:
            with caplog.at_level(logging.ERROR, logger="node.p2p.peers"):
                await conn.send(KIND_MESSAGE + b"boom")
                await conn.send(KIND_MESSAGE + b"after")
                await _until(lambda: calls == [b"boom", b"after"])
            assert node.manager.stats.handler_errors == 1
            assert "on_message failed" in caplog.text
            assert node.manager.connected_peers() == {conn.local_key}
        finally:
            conn.close()


async def test_disconnect_cuts_the_peer_and_reports_it_down() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        conn = await _dial(port, client_key)
        try:
            await _until(lambda: bool(node.manager.connected_peers()))
            assert node.manager.disconnect(conn.local_key, "test")
            assert not node.manager.disconnect(conn.local_key)  # Already cut.
            await _until(lambda: node.events == [("up", conn.local_key), ("down", conn.local_key)])
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(conn.receive(), 5)
        finally:
            conn.close()


async def test_second_link_from_the_same_dialler_replaces_the_first_without_a_flap() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        first = await _dial(port, client_key)
        second = None
        try:
            await _until(lambda: bool(node.manager.connected_peers()))
            # Same dialler again (it lost the first link without us noticing): newer wins.
            second = await _dial(port, client_key)
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(first.receive(), 5)
            await second.send(KIND_MESSAGE + b"on the new link")
            assert await node.next_message() == (second.local_key, b"on the new link")
            assert node.events == [("up", second.local_key)]
            assert node.manager.stats.links_replaced == 1
        finally:
            first.close()
            if second is not None:
                second.close()


async def test_stop_is_idempotent_and_a_stopped_manager_stays_stopped() -> None:
    node = _Node()
    async with _running(node):
        pass
    await node.manager.stop()
    with pytest.raises(RuntimeError):
        await node.manager.start()
    with pytest.raises(RuntimeError):
        await node.manager.listen(HOST, 0)


async def test_stop_does_not_swallow_the_callers_cancellation() -> None:
    blocked = asyncio.Event()
    release = asyncio.Event()
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})

    async def stubborn(peer_key: bytes, message: bytes) -> None:
        blocked.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            await release.wait()  # A handler that is slow to die keeps stop() waiting...
            raise

    node.manager._on_message = stubborn
    port = await node.manager.listen(HOST, 0)
    conn = await _dial(port, client_key)
    try:
        await conn.send(KIND_MESSAGE + b"x")
        await asyncio.wait_for(blocked.wait(), 5)
        stopper = asyncio.create_task(node.manager.stop())
        await asyncio.sleep(0.05)
        stopper.cancel()  # ...and the caller of stop() gives up: that cancellation must reach it.
        with pytest.raises(asyncio.CancelledError):
            await stopper
    finally:
        release.set()
        await node.manager.stop()
        conn.close()


async def test_peer_that_stops_reading_is_cut_after_the_write_timeout() -> None:
    client_key = _key()
    config = PeerConfig(
        **{
            **_fields(FAST),
            "write_timeout_ms": 300,
            "send_queue_messages_max": 1_024,
            "send_queue_bytes_max": 64 << 20,
        }
    )
    node = _Node(allowed={bytes(client_key.verify_key)}, config=config)
    async with _running(node) as port:
        conn = await _dial(port, client_key)  # Never reads.
        try:
            await _until(lambda: bool(node.manager.connected_peers()))
            for _ in range(600):  # ~38 MiB: more than loopback buffers hold, less than the queue.
                assert node.manager.send(conn.local_key, bytes(FAST.message_bytes_max))
            await _until(lambda: ("down", conn.local_key) in node.events)
            assert node.manager.stats.overflow_disconnects == 0
        finally:
            conn.close()


class _FakeConn:
    """Just what _admit looks at."""

    def __init__(self, remote_key: bytes) -> None:
        self.remote_key = remote_key
        self.closed = False
        self.peername = ("fake", 0)

    def close(self, reason: str = "") -> None:
        self.closed = True


@pytest.mark.parametrize("we_are_lower", [True, False])
async def test_duplicate_links_keep_the_one_the_lower_key_dialled_and_the_newer_on_a_tie(
    we_are_lower: bool,
) -> None:
    keys = sorted((_key() for _ in range(2)), key=lambda k: bytes(k.verify_key))
    own, peer = keys if we_are_lower else keys[::-1]
    peer_key = bytes(peer.verify_key)
    node = _Node(key=own, allowed={peer_key})
    admit = node.manager._admit
    ours_wins = we_are_lower  # The link we dial wins exactly when our key is the lower.

    # Our dial first, then the peer's: the peer's replaces ours only if the peer is lower.
    mine, theirs = _FakeConn(peer_key), _FakeConn(peer_key)
    assert admit(mine, outbound=True) is not None
    replaced = admit(theirs, outbound=False) is not None
    assert replaced is not ours_wins
    assert (mine.closed, theirs.closed) == (not ours_wins, ours_wins)
    # The other order ends the same way.
    node.manager._links.clear()
    mine, theirs = _FakeConn(peer_key), _FakeConn(peer_key)
    assert admit(theirs, outbound=False) is not None
    replaced = admit(mine, outbound=True) is not None
    assert replaced is ours_wins
    assert (mine.closed, theirs.closed) == (not ours_wins, ours_wins)
    # Same dialler twice: the newer wins (the dialler believes the older is dead).
    winner = node.manager._links[peer_key]
    again = _FakeConn(peer_key)
    assert admit(again, outbound=winner.outbound) is not None
    assert winner.conn.closed and not again.closed
    assert node.events == [("up", peer_key), ("up", peer_key)]  # Cleared links between: two ups.
    assert node.manager.stats.links_replaced == 2 and node.manager.stats.duplicates_closed == 1


async def test_a_new_link_after_a_dead_one_gives_a_down_then_an_up() -> None:
    peer_key = bytes(_key().verify_key)
    node = _Node(allowed={peer_key})
    first = _FakeConn(peer_key)
    assert node.manager._admit(first, outbound=False) is not None
    first.closed = True  # Died; its reader has not torn it down yet.
    second = _FakeConn(peer_key)
    link = node.manager._admit(second, outbound=False)
    assert link is not None and link.conn is second
    assert node.events == [("up", peer_key), ("down", peer_key), ("up", peer_key)]


# -- the allow-list at admission, dial warnings, roles by inclusion, the network id --------------


async def _handshake_by_hand(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: nacl.signing.SigningKey
) -> SecretConnection:
    """Our half of the handshake, up to and including reading the peer's verdict (it must accept).

    Our own verdict is left to the caller, so the peer is held just before it admits the link."""
    ephemeral = nacl.public.PrivateKey.generate()
    own_ephemeral = bytes(ephemeral.public_key)
    writer.write(MAGIC + own_ephemeral)
    peer_ephemeral = (await reader.readexactly(HELLO_BYTES))[len(MAGIC) :]
    shared = nacl.bindings.crypto_scalarmult(bytes(ephemeral), peer_ephemeral)
    send_key, receive_key, challenge = derive_secrets(own_ephemeral, peer_ephemeral, shared)
    public = bytes(key.verify_key)
    conn = SecretConnection(
        reader, writer, local_key=public, remote_key=b"", send_key=send_key, receive_key=receive_key
    )
    await conn.send(
        public + NO_NETWORK + key.sign(auth_payload(NO_NETWORK, own_ephemeral, challenge)).signature
    )
    auth = await conn._receive_frame(AUTH_BYTES + TAG_BYTES, exact=True)
    conn._remote_key = auth[:32]
    assert await conn._receive_frame(1 + TAG_BYTES, exact=True) == b"\x01"
    return conn


async def test_an_inbound_key_taken_off_the_list_during_its_handshake_is_not_admitted() -> None:
    client_key = _key()
    node = _Node(allowed={bytes(client_key.verify_key)})
    async with _running(node) as port:
        reader, writer = await asyncio.open_connection(HOST, port)
        conn = await _handshake_by_hand(reader, writer, client_key)  # the node accepted our key...
        try:
            node.manager.set_allowed_keys(set())  # ...and then governance removed it
            await conn.send(b"\x01")  # our verdict: the node's handshake now completes
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(conn.receive(), 5)
            assert node.manager.stats.admission_refused == 1
            assert node.manager.stats.inbound_refused["off_the_list"] == 1
            assert node.events == [] and node.manager.connected_peers() == frozenset()
        finally:
            conn.close()


async def test_an_outbound_key_taken_off_the_list_during_its_handshake_is_not_admitted() -> None:
    server_key = _key()
    server_public = bytes(server_key.verify_key)
    node = _Node()
    verdict_read = asyncio.Event()
    release = asyncio.Event()
    conns: list[SecretConnection] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = await _handshake_by_hand(reader, writer, server_key)
        conns.append(conn)
        verdict_read.set()
        await release.wait()
        await conn.send(b"\x01")

    tasks: list[asyncio.Task[None]] = []
    server = await asyncio.start_server(lambda r, w: tasks.append(asyncio.create_task(serve(r, w))), HOST, 0)
    try:
        node.manager.add_persistent_peer((server_public, HOST, server.sockets[0].getsockname()[1]))
        async with _running(node):
            await asyncio.wait_for(verdict_read.wait(), 5)  # the node accepted the server's key
            node.manager.set_allowed_keys(set())
            release.set()
            await _until(lambda: node.manager.stats.admission_refused == 1)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(conns[0].receive(), 5)
            assert node.events == [] and node.manager.connected_peers() == frozenset()
            dials = node.manager.stats.dials
            await asyncio.sleep(0.3)  # off the list: not dialled again
            assert node.manager.stats.dials == dials
    finally:
        server.close()
        for conn in conns:
            conn.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_peer_is_warned_about_with_its_address_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = PeerConfig(
        **{
            **_fields(FAST),
            "dial_warning_after_ms": 200,
            "dial_warning_interval_ms": 400,
            "dial_warning_interval_max_ms": 800,
        }
    )
    port = _free_port()
    peer = _Node(config=config)
    node = _Node(allowed={peer.key}, config=config)
    node.manager.add_persistent_peer((peer.key, HOST, port))
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.DEBUG, logger="node.p2p.peers"):
        async with _running(node):
            started = loop.time()
            await _until(lambda: node.manager.stats.dial_warnings >= 1)
            assert loop.time() - started >= 0.15  # a refused TCP connect may be a restart: grace first
            await asyncio.sleep(1.6)  # warnings due at ~0.2, 0.6 (+400 ms) and 1.4 s (+800 ms)
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert 2 <= len(warnings) <= 4 < node.manager.stats.dial_failures
            assert all(r.getMessage() == "p2p peer unreachable" for r in warnings)
            assert all(r.address == f"{HOST}:{port}" and r.peer == peer.key.hex() for r in warnings)  # type: ignore[attr-defined]
            assert "Connect call failed" in warnings[0].reason or "refused" in warnings[0].reason  # type: ignore[attr-defined]
            # The peer comes up: one line says so, and the warnings stop.
            await peer.manager.listen(HOST, port)
            peer.manager.set_allowed_keys({node.key})
            await peer.manager.start()
            try:
                await _until(lambda: peer.key in node.manager.connected_peers())
            finally:
                await peer.manager.stop()
    reached = [_line(r) for r in caplog.records if r.getMessage() == "p2p peer reachable again"]
    assert len(reached) == 1 and f"peer={peer.key.hex()} address={HOST}:{port}" in reached[0]


async def test_a_peer_that_refuses_our_key_is_warned_about_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """The issue's validator whose key no genesis lists: its peers refuse it, and it says so."""
    listener = _Node(allowed=set())
    node = _Node()
    async with _running(listener) as port:
        node.manager.add_persistent_peer((listener.key, HOST, port))
        with caplog.at_level(logging.WARNING, logger="node.p2p.peers"):
            async with _running(node):
                await _until(lambda: node.manager.stats.dial_warnings == 1)
                await asyncio.sleep(0.3)  # several more refused dials: no more warnings this interval
    lines = [_line(r) for r in caplog.records if r.getMessage() == "p2p peer unreachable"]
    assert len(lines) == 1 and node.manager.stats.refused_by_peer >= 2
    assert f"address={HOST}:{port}" in lines[0] and "refused our node key" in lines[0]


async def test_broadcast_only_reaches_the_keys_named() -> None:
    clients = [_key() for _ in range(3)]
    keys = [bytes(k.verify_key) for k in clients]
    node = _Node(allowed=set(keys))
    async with _running(node) as port:
        conns = [await _dial(port, k) for k in clients]
        try:
            await _until(lambda: node.manager.connected_peers() == set(keys))
            stranger = bytes(_key().verify_key)
            assert node.manager.broadcast(b"validators only", only={keys[0], keys[2], stranger}) == 2
            assert node.manager.broadcast(b"none", only=set()) == 0
            assert node.manager.broadcast(b"one", exclude=keys[0], only={keys[0], keys[1]}) == 1
            for conn, expected in zip(
                conns, [[b"validators only"], [b"one"], [b"validators only"]], strict=True
            ):
                got: list[bytes] = []
                async with asyncio.timeout(5):
                    while len(got) < len(expected):
                        frame = await conn.receive()
                        if frame != KIND_KEEPALIVE:
                            got.append(frame[1:])
                assert got == expected
        finally:
            for conn in conns:
                conn.close()


async def test_a_peer_on_another_network_is_refused_on_both_ends_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours, theirs = b"\x01" * 32, b"\x02" * 32
    listener, dialler = _Node(), _Node()
    listener.manager = PeerManager(
        listener.signing_key, allowed_keys={dialler.key}, on_message=_ignore, config=FAST, network_id=ours
    )
    dialler.manager = PeerManager(
        dialler.signing_key, allowed_keys=(), on_message=_ignore, config=FAST, network_id=theirs
    )
    with caplog.at_level(logging.WARNING, logger="node.p2p.peers"):
        async with _running(listener) as port:
            dialler.manager.add_persistent_peer((listener.key, HOST, port))
            async with _running(dialler):
                await _until(lambda: listener.manager.stats.network_mismatches >= 1)
                await _until(lambda: dialler.manager.stats.network_mismatches >= 1)
    assert listener.manager.stats.inbound_refused["other_network"] >= 1
    text = _logged(caplog)
    assert f"{HOST}:{port}" in text and "another network" in text and ours.hex() in text
