"""A flood on the peer port: PeerManagers with the default limits on 127.0.0.1, the attacker on
other loopback addresses (all of 127/8 is local on Linux), as it would come from other hosts.

The attack, all at once and bounded in time and connections:
- silent sockets from 32 addresses, 6 wanted per address (192: three times the handshake pool and
  more than the per-address cap), each reopened as soon as the node cuts it;
- a connect-and-drop flood from one more address, as fast as the loop allows.

Under it: an allow-listed peer that only dials in (the node does not dial it) has its link cut
three times and reconnects each time; a first-time observer from a fresh address completes its
handshakes; the node writes a bounded number of log lines about refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import nacl.signing
import pytest

from node.p2p import PeerAddress, PeerConfig, PeerManager
from node.p2p.secret_connection import handshake

pytestmark = pytest.mark.asyncio

HOST = "127.0.0.1"
ATTACK_SOURCES = [f"127.0.0.{i}" for i in range(2, 34)]
SILENT_PER_SOURCE = 6
FLOOD_SOURCE = "127.0.0.50"
FLOOD_CONNECTIONS_MAX = 20_000
OBSERVER_SOURCE = "127.0.0.99"
#: Bound on one reconnection under attack: the peer's redial back-off (250 ms doubling) plus slack.
RECONNECT_BOUND_S = 5.0
CUTS = 3
OBSERVER_HANDSHAKES = 5


async def _ignore(peer_key: bytes, message: bytes) -> None:
    return None


class _Attack:
    """The attacker's tasks and what they saw."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = asyncio.Event()
        self.opened = 0
        self.closed_at_once = 0
        self.flood_opened = 0
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for source in ATTACK_SOURCES:
            for _ in range(SILENT_PER_SOURCE):
                self.tasks.append(asyncio.create_task(self._silent(source)))
        self.tasks.append(asyncio.create_task(self._flood()))

    async def _silent(self, source: str) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port, local_addr=(source, 0))
            except OSError:
                await asyncio.sleep(0.01)
                continue
            self.opened += 1
            try:
                if not await reader.read():  # until cut; nothing at all: refused on accept
                    self.closed_at_once += 1
            except OSError:
                self.closed_at_once += 1
            finally:
                writer.close()

    async def _flood(self) -> None:
        while not self.stop.is_set() and self.flood_opened < FLOOD_CONNECTIONS_MAX:
            try:
                _, writer = await asyncio.open_connection(HOST, self.port, local_addr=(FLOOD_SOURCE, 0))
            except OSError:
                await asyncio.sleep(0.01)
                continue
            self.flood_opened += 1
            writer.transport.abort()

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _sample(read: Callable[[], int], into: list[int]) -> None:
    while True:
        into.append(read())
        await asyncio.sleep(0.005)


async def _until(predicate: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_flood_from_many_addresses_leaves_room_for_allowed_peers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="node.p2p")
    validator_key, peer_key, observer_key = (nacl.signing.SigningKey.generate() for _ in range(3))
    validator_public, peer_public, observer_public = (
        bytes(k.verify_key) for k in (validator_key, peer_key, observer_key)
    )
    config = PeerConfig()  # the limits and timings a node runs with
    validator = PeerManager(
        validator_key, allowed_keys={peer_public, observer_public}, on_message=_ignore, config=config
    )
    port = await validator.listen(HOST, 0)
    await validator.start()
    # It only dials in: every reconnection below needs an inbound handshake to succeed.
    peer = PeerManager(
        peer_key,
        allowed_keys=(),
        on_message=_ignore,
        persistent_peers=[PeerAddress(validator_public, HOST, port)],
        config=config,
    )
    await peer.start()
    attack = _Attack(port)
    started = time.monotonic()
    reconnect_s: list[float] = []
    observer_ok = 0
    in_flight: list[int] = []
    sampler: asyncio.Task[None] = asyncio.create_task(asyncio.sleep(0))
    try:
        await _until(lambda: peer_public in validator.connected_peers(), 10)
        assert validator._gate.is_known(HOST)  # an allowed peer authenticated from there
        attack.start()
        sampler = asyncio.create_task(_sample(lambda: validator._gate.in_flight(), in_flight))
        await _until(lambda: validator._gate.in_flight() >= config.handshakes_inbound_max, 10)

        for _ in range(CUTS):
            assert validator.disconnect(peer_public, "cut during the attack")
            cut_at = time.monotonic()
            await _until(lambda: peer_public in validator.connected_peers(), RECONNECT_BOUND_S)
            reconnect_s.append(time.monotonic() - cut_at)

        opened_before = attack.opened
        for _ in range(OBSERVER_HANDSHAKES):  # a first-time address, so no reserved slot
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(OBSERVER_SOURCE, 0))
            conn = await handshake(reader, writer, observer_key, lambda key: key == validator_public)
            await _until(lambda: observer_public in validator.connected_peers(), 5)
            conn.close()
            observer_ok += 1
            await _until(lambda: observer_public not in validator.connected_peers(), 5)
        # The attack went on throughout: the pool still (about) full, the attacker still opening.
        assert validator._gate.in_flight() >= config.handshakes_inbound_max // 2
        assert attack.opened > opened_before
    finally:
        sampler.cancel()
        await attack.close()
        with contextlib.suppress(Exception):
            await peer.stop()
        await validator.stop()
    elapsed_s = time.monotonic() - started
    stats = validator.stats
    refusal_lines = [r for r in caplog.records if r.getMessage().startswith("p2p inbound refus")]
    print(
        f"\nflood: {elapsed_s:.1f} s, {attack.opened} silent sockets opened ({attack.closed_at_once} closed on accept), "
        f"{attack.flood_opened} flood connections; reconnections {[round(s, 2) for s in reconnect_s]} s; "
        f"observer {observer_ok}/{OBSERVER_HANDSHAKES}; refused {dict(stats.inbound_refused)}; "
        f"refusal log lines {stats.refusal_log_lines}"
    )
    assert len(reconnect_s) == CUTS and observer_ok == OBSERVER_HANDSHAKES
    assert stats.handshakes_evicted > 0 and stats.inbound_rate_limited > 0
    assert stats.inbound_refused["evicted"] == stats.handshakes_evicted
    # At most one line per interval, plus the summary written at stop.
    lines_max = 2 + int(elapsed_s * 1000 / config.refusal_log_interval_ms)
    assert len(refusal_lines) == stats.refusal_log_lines <= lines_max
    # Handshakes in flight never went over the stranger pool plus the reserved slots.
    assert max(in_flight) <= config.handshakes_inbound_max + config.handshakes_reserved_max
