"""Networks of PeerManagers on 127.0.0.1: mesh formation, broadcast, redial, restart, clean stop.

Every manager listens on a port chosen at run time and dials the others as persistent peers, as
validators do. Timings are short and every wait is bounded, so each test ends within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable

import nacl.signing

from node.p2p.peers import PeerAddress, PeerConfig, PeerManager

HOST = "127.0.0.1"

FAST = PeerConfig(
    message_bytes_max=256 * 1024,
    handshake_timeout_ms=1_000,
    dial_timeout_ms=1_000,
    keepalive_interval_ms=100,
    idle_timeout_ms=1_000,
    write_timeout_ms=1_000,
    dial_backoff_min_ms=20,
    dial_backoff_max_ms=200,
)
"""Short timings: a dropped peer is redialled within a fraction of a second."""


class _Node:
    """One PeerManager and what it saw."""

    _seeds = itertools.count()

    def __init__(self, key: nacl.signing.SigningKey | None = None) -> None:
        self.signing_key = key or nacl.signing.SigningKey.generate()
        self.key = bytes(self.signing_key.verify_key)
        self.messages: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self.events: list[tuple[str, bytes]] = []
        self.port = 0
        self.manager = self._new_manager()

    def _new_manager(self) -> PeerManager:
        return PeerManager(
            self.signing_key,
            allowed_keys=(),
            on_message=self._on_message,
            on_peer_up=lambda key: self.events.append(("up", key)),
            on_peer_down=lambda key: self.events.append(("down", key)),
            config=FAST,
            rng=random.Random(next(self._seeds)),
        )

    async def _on_message(self, peer_key: bytes, message: bytes) -> None:
        await self.messages.put((peer_key, message))

    async def listen(self) -> None:
        self.port = await self.manager.listen(HOST, self.port)

    def address(self) -> PeerAddress:
        return PeerAddress(self.key, HOST, self.port)

    async def restart(self, peers: list[_Node]) -> None:
        """A new process with the same key on the same port (the old one must be stopped)."""
        self.manager = self._new_manager()
        await self.listen()
        for peer in peers:
            self.manager.add_persistent_peer(peer.address())
        await self.manager.start()

    async def receive(self, count: int) -> list[tuple[bytes, bytes]]:
        async with asyncio.timeout(5):
            return [await self.messages.get() for _ in range(count)]


@contextlib.asynccontextmanager
async def _network(size: int) -> AsyncIterator[list[_Node]]:
    """`size` nodes, each dialling every other one; stopped however the test ends."""
    nodes = [_Node() for _ in range(size)]
    try:
        for node in nodes:
            await node.listen()
        for node, other in itertools.permutations(nodes, 2):
            node.manager.add_persistent_peer(other.address())
        for node in nodes:
            await node.manager.start()
        await _until(lambda: _full_mesh(nodes))
        yield nodes
    finally:
        for node in nodes:
            await node.manager.stop()


def _full_mesh(nodes: list[_Node]) -> bool:
    return all(node.manager.connected_peers() == {o.key for o in nodes if o is not node} for node in nodes)


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def _link_sockets(node: _Node, peer: _Node) -> tuple[object, object]:
    link = node.manager._links[peer.key]
    transport = link.conn._writer.transport
    return transport.get_extra_info("sockname"), transport.get_extra_info("peername")


async def test_three_managers_form_a_full_mesh_and_broadcast_reaches_all() -> None:
    async with _network(3) as nodes:
        # Both ends of every pair settled on the same TCP connection, the one the lower key dialled.
        await _until(lambda: all(len(n.manager._links) == 2 for n in nodes))
        for node, peer in itertools.permutations(nodes, 2):
            local, remote = _link_sockets(node, peer)
            assert _link_sockets(peer, node) == (remote, local)
            assert node.manager._links[peer.key].dialler_key == min(node.key, peer.key)

        for node in nodes:
            assert node.manager.broadcast(b"from " + node.key) == 2
        for node in nodes:
            got = sorted(await node.receive(2))
            assert got == sorted((o.key, b"from " + o.key) for o in nodes if o is not node)
        await asyncio.sleep(0.1)
        assert all(node.messages.empty() for node in nodes)  # Exactly one copy each.

        first = nodes[0]
        assert first.manager.broadcast(b"not to 1", exclude=nodes[1].key) == 1
        assert await nodes[2].receive(1) == [(first.key, b"not to 1")]
        await asyncio.sleep(0.1)
        assert nodes[1].messages.empty()


async def test_messages_arrive_in_order_and_large_ones_fit() -> None:
    async with _network(2) as (a, b):
        messages = [i.to_bytes(4, "big") * (i % 7 + 1) for i in range(300)]
        messages.append(bytes(FAST.message_bytes_max))
        for message in messages:
            assert a.manager.send(b.key, message)
            await asyncio.sleep(0)  # Let the writer keep up with a queue of 1024 messages.
        assert await b.receive(len(messages)) == [(a.key, m) for m in messages]


async def test_peer_that_goes_down_is_redialled_and_messages_flow_again() -> None:
    async with _network(3) as (a, b, c):
        mark = len(a.events)
        await b.manager.stop()
        await _until(lambda: b.key not in a.manager.connected_peers() | c.manager.connected_peers())
        assert ("down", b.key) in a.events[mark:] and ("down", b.key) in c.events
        assert a.manager.send(b.key, b"lost") is False

        await asyncio.sleep(0.3)  # A and C keep redialling, with backoff, while B is away.
        assert a.manager.stats.dial_failures + a.manager.stats.handshake_failures >= 1

        await b.restart([a, c])
        await _until(lambda: _full_mesh([a, b, c]))
        assert a.events[mark:][-1] == ("up", b.key)

        assert a.manager.send(b.key, b"welcome back")
        assert await b.receive(1) == [(a.key, b"welcome back")]
        assert b.manager.broadcast(b"hello again") == 2
        assert await a.receive(1) == [(b.key, b"hello again")]
        assert await c.receive(1) == [(b.key, b"hello again")]


async def test_cut_link_is_redialled_by_either_side() -> None:
    async with _network(2) as (a, b):
        for cutter in (a, b, a):
            other = b if cutter is a else a
            ups = other.events.count(("up", cutter.key))
            assert cutter.manager.disconnect(other.key, "test")
            await _until(lambda: other.events.count(("up", cutter.key)) == ups + 1)  # noqa: B023
            await _until(lambda: _full_mesh([a, b]))
            assert cutter.manager.send(other.key, b"again")
            assert await other.receive(1) == [(cutter.key, b"again")]


async def test_observer_that_only_one_side_dials_connects() -> None:
    validator, observer = _Node(), _Node()
    try:
        await validator.listen()
        validator.manager.set_allowed_keys({observer.key})  # In the genesis as an observer, never dialled.
        observer.manager.add_persistent_peer(validator.address())
        await validator.manager.start()
        await observer.manager.start()
        await _until(lambda: validator.manager.connected_peers() == {observer.key})
        assert validator.manager.send(observer.key, b"block 1")
        assert await observer.receive(1) == [(validator.key, b"block 1")]

        # Taken off the allow-list: cut now, and its redials are refused from then on.
        validator.manager.set_allowed_keys(set())
        await _until(lambda: validator.manager.stats.refused_unknown >= 1)
        assert validator.manager.connected_peers() == frozenset()
        assert validator.events == [("up", observer.key), ("down", observer.key)]
    finally:
        await observer.manager.stop()
        await validator.manager.stop()


async def test_a_persistent_peer_taken_off_the_list_is_cut_and_not_redialled_until_it_is_back() -> None:
    """A validator the chain removed may still be in a node's config as a persistent peer: the
    chain's list decides (docs/GOVERNANCE.md, section 13), on both ends."""
    async with _network(3) as (a, b, c):
        for node in (a, b, c):  # b leaves the set: the others drop it, it drops them
            others = {n.key for n in (a, b, c) if n is not node and (node is b or n is not b)}
            node.manager.set_allowed_keys(set() if node is b else others)
        await _until(
            lambda: a.manager.connected_peers() == {c.key} and c.manager.connected_peers() == {a.key}
        )
        await asyncio.sleep(FAST.handshake_timeout_ms / 1000)  # dials begun before the cut end by then
        refused = b.manager.stats.refused_unknown
        for _ in range(50):  # several backoffs: nobody dials b while it is off the list
            await asyncio.sleep(0.01)
            assert b.key not in a.manager.connected_peers() | c.manager.connected_peers()
        assert b.manager.stats.refused_unknown == refused  # a dial would have reached b and been refused
        for node in (a, b, c):  # back in the set
            node.manager.set_allowed_keys({n.key for n in (a, b, c) if n is not node})
        await _until(lambda: _full_mesh([a, b, c]))


async def test_stop_closes_every_link_and_leaves_no_task_running() -> None:
    before = asyncio.all_tasks()
    async with _network(3) as nodes:
        for node in nodes:
            node.manager.broadcast(b"in flight at stop")
        sockets = [link.conn._writer.transport for node in nodes for link in node.manager._links.values()]
    # Left the context: every manager is stopped.
    assert asyncio.all_tasks() == before
    assert all(transport.is_closing() for transport in sockets)
    for node in nodes:
        assert node.manager.connected_peers() == frozenset()
        assert node.events.count(("up", nodes[0].key)) == node.events.count(("down", nodes[0].key))
    # The ports are free again.
    for node in nodes:
        server = await asyncio.start_server(lambda r, w: None, HOST, node.port)
        server.close()
        await server.wait_closed()


async def test_up_and_down_alternate_per_peer_through_churn() -> None:
    async with _network(3) as nodes:
        for _ in range(5):
            victim = random.choice(nodes)
            peer = random.choice([n for n in nodes if n is not victim])
            victim.manager.disconnect(peer.key, "churn")
            await asyncio.sleep(0.05)
        await _until(lambda: _full_mesh(nodes))
    for node in nodes:
        for peer in nodes:
            sequence = [kind for kind, key in node.events if key == peer.key]
            assert sequence == ["up", "down"] * (len(sequence) // 2)


async def _hold_silent_sockets(port: int, source: str, stop: asyncio.Event) -> None:
    """One attacker's socket: connect from `source`, say nothing, reconnect as soon as it is cut."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            await reader.read()
        except OSError:
            pass
        finally:
            writer.close()


async def test_two_nodes_whose_link_drops_during_a_flood_reconnect_while_it_goes_on() -> None:
    """The review's case: 64 silent sockets on each node's port (from another address, as from
    another host) kept two nodes apart until the attack stopped. Now they reconnect within the
    redial back-off, every time, with the attack still running."""
    async with _network(2) as (a, b):
        stop = asyncio.Event()
        attackers = [
            asyncio.create_task(_hold_silent_sockets(node.port, "127.0.0.2", stop))
            for node in (a, b)
            for _ in range(64)
        ]
        try:
            await asyncio.sleep(0.3)
            for cutter in (a, b, a):
                other = b if cutter is a else a
                ups = other.events.count(("up", cutter.key))
                assert cutter.manager.disconnect(other.key, "cut during the flood")
                await _until(lambda: other.events.count(("up", cutter.key)) == ups + 1)  # noqa: B023
                await _until(lambda: _full_mesh([a, b]))
                assert cutter.manager.send(other.key, b"still here")
                assert await other.receive(1) == [(cutter.key, b"still here")]
            assert all(n.manager.stats.inbound_refused["rate_limited"] > 0 for n in (a, b))  # it went on
        finally:
            stop.set()
            for task in attackers:
                task.cancel()
            await asyncio.gather(*attackers, return_exceptions=True)
