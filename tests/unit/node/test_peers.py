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

import nacl.signing
import pytest

from node.p2p.errors import ConnectionClosed, FrameTooLarge, HandshakeError
from node.p2p.peers import (
    KIND_KEEPALIVE,
    KIND_MESSAGE,
    PeerAddress,
    PeerConfig,
    PeerManager,
    _SendQueue,
)
from node.p2p.secret_connection import SecretConnection, connect

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


# -- configuration and small parts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"message_bytes_max": 0},
        {"idle_timeout_ms": -1},
        {"keepalive_interval_ms": 500, "idle_timeout_ms": 500},
        {"dial_backoff_min_ms": 300, "dial_backoff_max_ms": 200},
        {"send_queue_bytes_max": 10, "message_bytes_max": 11},
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
    assert bytes(stranger.verify_key).hex() in caplog.text
    assert "refused unknown peer" in caplog.text
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
    assert impostor.key.hex() in caplog.text
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


async def test_handshakes_in_flight_are_bounded() -> None:
    node = _Node(config=PeerConfig(**{**_fields(FAST), "handshakes_inbound_max": 2}))
    async with _running(node) as port:
        streams = [await asyncio.open_connection(HOST, port) for _ in range(3)]
        try:
            await _until(lambda: node.manager.stats.inbound_over_limit == 1)
            # The third is closed at once, with no hello.
            assert await asyncio.wait_for(streams[2][0].read(), 5) == b""
        finally:
            for _, writer in streams:
                writer.close()


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
    node = _Node(key=own)
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
    node = _Node()
    peer_key = bytes(_key().verify_key)
    first = _FakeConn(peer_key)
    assert node.manager._admit(first, outbound=False) is not None
    first.closed = True  # Died; its reader has not torn it down yet.
    second = _FakeConn(peer_key)
    link = node.manager._admit(second, outbound=False)
    assert link is not None and link.conn is second
    assert node.events == [("up", peer_key), ("down", peer_key), ("up", peer_key)]
