"""The peer manager (CometBFT's switch): keeps one authenticated link to each known peer.

It listens for inbound links, dials the persistent peers and redials them after a drop, refuses
every node key that is not on the allow-list, and hands each received message to the node. What
the messages mean is not its business: it carries opaque bytes.

Rules this file keeps:
- At most one live link per peer key. When two exist (both ends dialled at once, or a peer
  redialled while we still held its old link), both ends keep the link dialled by the lower node
  key, and of two links dialled by the same key, the newer. Both ends see both links, so they
  agree without talking about it. The replaced link is closed without a peer-down/peer-up pair,
  and the messages still queued for it move to the survivor. The higher key waits a little
  before each dial, so that the race is rare.
- `on_peer_up(key)` and `on_peer_down(key)` alternate strictly per key, up first, and are called
  synchronously from inside the manager; `on_message` is awaited from the link's reader task, so
  a slow handler holds back that one peer (TCP backpressure) and no other.
- Every queue and wait is bounded. A send queue over its bound means the peer is not keeping up:
  the link is cut (logged, counted) rather than dropping messages silently, and a persistent peer
  is redialled, so the node sees a peer-down and a peer-up it can resync on.
- A link over which nothing arrives for `idle_timeout_ms` is cut; each side sends a keepalive
  when it has sent nothing for `keepalive_interval_ms`, so only a dead or stuck peer goes silent.
- Strangers are bounded before they cost anything: every inbound connection passes the
  `InboundGate` (node/p2p/admission.py: per-address rate and handshake caps, a global cap with
  slots reserved for known addresses, eviction of the oldest), the peer's hello has its own short
  deadline, and refusals are counted in `stats` and logged at most once per interval.
- The allow-list is checked when the peer's key is proven (inside the handshake) and again when
  the link is admitted, inbound and outbound: a key taken off the list while its handshake was in
  flight is not admitted.
- A persistent peer that cannot be dialled is reported at WARNING, naming its address: at once
  when it refused us or is not who we meant to dial, after `dial_warning_after_ms` of failing
  otherwise, then again at most once per interval, the interval doubling up to a cap.
- stop() closes every socket and cancels every task it started, and never eats the caller's
  cancellation.

Each frame's payload is an envelope: KIND (1 byte) | body. KIND_MESSAGE carries one node message,
KIND_KEEPALIVE has an empty body. Anything else is a protocol error that cuts the link.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, NamedTuple

import nacl.signing

from node.p2p.admission import REFUSAL_REASONS, InboundGate, RefusalLog, Ticket, source_of
from node.p2p.errors import (
    ConnectionClosed,
    FrameTooLarge,
    HandshakeError,
    HandshakeTimeout,
    NetworkMismatch,
    P2PError,
    ReadTimeout,
    RefusedByPeer,
    SelfConnection,
    UnknownPeer,
)
from node.p2p.secret_connection import (
    NETWORK_ID_BYTES,
    NO_NETWORK,
    NODE_KEY_BYTES,
    SecretConnection,
    connect,
    handshake,
)

log = logging.getLogger(__name__)

KIND_MESSAGE: Final[bytes] = b"\x00"
"""Envelope kind of a frame that carries one node message."""

KIND_KEEPALIVE: Final[bytes] = b"\x01"
"""Envelope kind of a frame sent only to show we are alive; it has no body."""

ENVELOPE_BYTES: Final[int] = 1
"""Bytes the envelope adds to each message inside a frame."""

OnMessage = Callable[[bytes, bytes], Awaitable[None]]
"""`await on_message(peer_key, message)`, called for each message in the order the peer sent them."""

OnPeerEvent = Callable[[bytes], None]
"""`on_peer_up(peer_key)` / `on_peer_down(peer_key)`; plain functions, start a task for async work."""


class PeerAddress(NamedTuple):
    """A peer to dial: its Ed25519 node public key and where it listens."""

    node_key: bytes
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Bounds and timings of the peer manager; the defaults suit a consortium on a LAN."""

    message_bytes_max: int = 1 << 20
    """Largest message accepted by send() and from a peer (1 MiB); a frame adds ENVELOPE_BYTES."""

    handshake_timeout_ms: int = 5_000
    """Time an inbound or outbound handshake may take, from connect to verdict."""

    hello_timeout_ms: int = 1_000
    """Time the peer's cleartext hello may take to arrive (the whole handshake's timeout bounds it
    too). An honest peer sends it the moment TCP is up, so a round trip and one retransmission
    fit; a silent connector is cut after this rather than after the whole handshake timeout."""

    dial_timeout_ms: int = 3_000
    """Time a TCP connect may take."""

    keepalive_interval_ms: int = 5_000
    """Idle time after which we send a keepalive; must be well under the peer's idle timeout."""

    idle_timeout_ms: int = 20_000
    """Time without any frame from a peer after which its link is cut (the read timeout)."""

    write_timeout_ms: int = 10_000
    """Time a frame may wait for the kernel to take it; a peer that stops reading is cut after it."""

    send_queue_messages_max: int = 1_024
    """Messages waiting to go to one peer; one more cuts the link."""

    send_queue_bytes_max: int = 32 << 20
    """Bytes of messages waiting to go to one peer (32 MiB); more cuts the link."""

    dial_backoff_min_ms: int = 250
    """First delay before redialling; doubles with each failure in a row. Also the head start the
    higher of two keys gives the lower before dialling it."""

    dial_backoff_max_ms: int = 10_000
    """Cap of the redial delay; a link that lived this long resets the doubling."""

    handshakes_inbound_max: int = 64
    """Inbound handshakes in flight at once from unknown addresses; when full, the oldest handshake
    of the address holding the most is cut to make room."""

    handshakes_reserved_max: int = 16
    """Inbound handshakes in flight at once from known addresses (an allow-listed peer authenticated
    from there before, or a persistent peer's literal address): strangers cannot take these."""

    handshakes_per_address_max: int = 4
    """Inbound handshakes in flight at once from one address (an IPv4 address or an IPv6 /64); the
    oldest is cut when a new one comes. An honest node has one in flight, two in a dial race."""

    connections_per_address_burst: int = 20
    """New inbound connections one address may open at once before the rate applies."""

    connections_per_address_per_s: int = 10
    """New inbound connections per second one address may keep opening; more are closed on accept.
    A redialling peer needs at most 4 per second (250 ms back-off), and fewer as it doubles."""

    addresses_tracked_max: int = 4_096
    """Addresses whose rate and handshakes are tracked; idle ones are forgotten first."""

    refusal_log_interval_ms: int = 10_000
    """At most one log line per this interval about refused inbound connections: the first refusal
    is told at once, the rest in one summary at the end of the interval."""

    dial_warning_after_ms: int = 5_000
    """A persistent peer failing to answer (refused TCP, timeout, reset) is reported at WARNING once
    it has failed this long; one that refused us or has another key, at its first failure."""

    dial_warning_interval_ms: int = 30_000
    """Least time between two warnings about the same unreachable peer; doubles with each warning."""

    dial_warning_interval_max_ms: int = 600_000
    """Cap of the doubling interval between warnings about the same peer (10 minutes)."""

    def __post_init__(self) -> None:
        for name in (
            "message_bytes_max",
            "handshake_timeout_ms",
            "dial_timeout_ms",
            "keepalive_interval_ms",
            "idle_timeout_ms",
            "write_timeout_ms",
            "send_queue_messages_max",
            "send_queue_bytes_max",
            "dial_backoff_min_ms",
            "dial_backoff_max_ms",
            "handshakes_inbound_max",
            "hello_timeout_ms",
            "handshakes_reserved_max",
            "handshakes_per_address_max",
            "connections_per_address_burst",
            "connections_per_address_per_s",
            "addresses_tracked_max",
            "refusal_log_interval_ms",
            "dial_warning_after_ms",
            "dial_warning_interval_ms",
            "dial_warning_interval_max_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"PeerConfig.{name} must be positive")
        if self.keepalive_interval_ms >= self.idle_timeout_ms:
            raise ValueError("keepalive_interval_ms must be below idle_timeout_ms, or idle peers get cut")
        if self.dial_backoff_min_ms > self.dial_backoff_max_ms:
            raise ValueError("dial_backoff_min_ms must not exceed dial_backoff_max_ms")
        if self.send_queue_bytes_max < self.message_bytes_max:
            raise ValueError("send_queue_bytes_max must hold at least one message of message_bytes_max")
        if self.dial_warning_interval_ms > self.dial_warning_interval_max_ms:
            raise ValueError("dial_warning_interval_ms must not exceed dial_warning_interval_max_ms")


@dataclass(slots=True)
class PeerStats:
    """Counters for operators, metrics and tests; they only go up.

    `inbound_refused` counts refused inbound connections by reason (the keys of
    admission.REFUSAL_REASONS: a metric label of low cardinality); the other fields count by kind,
    in both directions where it applies.
    """

    dials: int = 0
    dial_failures: int = 0
    dial_warnings: int = 0
    handshake_failures: int = 0
    handshake_timeouts: int = 0
    refused_unknown: int = 0
    refused_by_peer: int = 0
    network_mismatches: int = 0
    self_connections: int = 0
    admission_refused: int = 0
    inbound_accepted: int = 0
    inbound_over_limit: int = 0
    inbound_rate_limited: int = 0
    handshakes_evicted: int = 0
    inbound_refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSAL_REASONS, 0))
    refusal_log_lines: int = 0
    duplicates_closed: int = 0
    links_replaced: int = 0
    overflow_disconnects: int = 0
    idle_disconnects: int = 0
    protocol_errors: int = 0
    handler_errors: int = 0
    messages_received: int = 0
    messages_sent: int = 0


class _SendQueue:
    """Messages waiting for one peer, bounded in count and bytes; one consumer at a time."""

    __slots__ = ("_items", "_ready", "_messages_max", "_bytes_max", "queued_bytes")

    def __init__(self, messages_max: int, bytes_max: int) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()
        self._messages_max = messages_max
        self._bytes_max = bytes_max
        self.queued_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, message: bytes) -> bool:
        if len(self._items) >= self._messages_max or self.queued_bytes + len(message) > self._bytes_max:
            return False
        self._items.append(message)
        self.queued_bytes += len(message)
        self._ready.set()
        return True

    async def take(self) -> bytes:
        # Cancel-safe: a cancelled wait takes nothing, so a replaced link's writer loses no message.
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        message = self._items.popleft()
        self.queued_bytes -= len(message)
        return message


@dataclass(eq=False, slots=True)
class _Link:
    """One authenticated connection serving one peer key."""

    key: bytes
    conn: SecretConnection
    outbound: bool
    dialler_key: bytes
    queue: _SendQueue
    opened_s: float
    writer_task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Unreachable:
    """A persistent peer's current run of failed dials, and when it was last reported."""

    since_s: float
    failures: int = 0
    warnings: int = 0
    warned_s: float = 0.0


class PeerManager:
    """Listens, dials and keeps one encrypted link per allowed peer; see the module docstring."""

    def __init__(
        self,
        node_key: nacl.signing.SigningKey,
        *,
        allowed_keys: Iterable[bytes],
        on_message: OnMessage,
        persistent_peers: Iterable[PeerAddress | tuple[bytes, str, int]] = (),
        on_peer_up: OnPeerEvent | None = None,
        on_peer_down: OnPeerEvent | None = None,
        config: PeerConfig | None = None,
        rng: random.Random | None = None,
        network_id: bytes | None = None,
    ) -> None:
        """Persistent peers are allowed implicitly: naming a peer to dial is naming it trusted.

        `network_id` (32 bytes; the node passes its genesis hash) is stated and checked in every
        handshake, so a peer key reused on another chain fails at once with NetworkMismatch. None
        is the all-zero id, which matches only itself.
        """
        network_id = NO_NETWORK if network_id is None else bytes(network_id)
        if len(network_id) != NETWORK_ID_BYTES:
            raise ValueError(f"network_id must be {NETWORK_ID_BYTES} bytes, got {len(network_id)}")
        self._network_id = network_id
        self._node_key = node_key
        self._public_key = bytes(node_key.verify_key)
        self._config = config if config is not None else PeerConfig()
        self._allowed: set[bytes] = set(allowed_keys)
        self._persistent: dict[bytes, PeerAddress] = {}
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        self._on_message = on_message
        self._on_peer_up = on_peer_up
        self._on_peer_down = on_peer_down
        self._rng = rng if rng is not None else random.Random()
        self.stats = PeerStats()
        self._links: dict[bytes, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._listen_port: int | None = None
        self._gate = InboundGate(
            clock=time.monotonic,
            handshakes_max=self._config.handshakes_inbound_max,
            handshakes_reserved_max=self._config.handshakes_reserved_max,
            handshakes_per_source_max=self._config.handshakes_per_address_max,
            connections_per_s=self._config.connections_per_address_per_s,
            connections_burst=self._config.connections_per_address_burst,
            sources_max=self._config.addresses_tracked_max,
        )
        self._refusals = RefusalLog(
            interval_s=self._config.refusal_log_interval_ms / 1000,
            clock=time.monotonic,
            emit=self._log_refusals,
            schedule=lambda delay_s, callback: asyncio.get_running_loop().call_later(delay_s, callback),
        )
        self._unreachable: dict[bytes, _Unreachable] = {}
        self._started = False
        self._stopping = False
        for peer in persistent_peers:
            self.add_persistent_peer(peer)

    @property
    def node_key(self) -> bytes:
        """Our Ed25519 node public key."""
        return self._public_key

    @property
    def config(self) -> PeerConfig:
        return self._config

    @property
    def network_id(self) -> bytes:
        """The network id stated and required in every handshake (the genesis hash, or all zeros)."""
        return self._network_id

    @property
    def listen_port(self) -> int | None:
        """The TCP port we listen on, once listen() has bound it (useful with port 0)."""
        return self._listen_port

    # -- start / stop ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dialling the persistent peers; call listen() too to accept inbound links."""
        if self._stopping:
            raise RuntimeError("a stopped PeerManager cannot be started again")
        if self._started:
            return
        self._started = True
        for peer in self._persistent.values():
            self._start_dialling(peer)

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Accept inbound links on host:port (0 picks a free port); returns the bound port."""
        if self._stopping:
            raise RuntimeError("a stopped PeerManager cannot listen")
        if self._server is not None:
            raise RuntimeError("already listening")
        # A plain callback, not a coroutine: our own task then runs the link, so stop() can
        # cancel it without asyncio's server logging the cancellation as an error.
        self._server = await asyncio.start_server(self._on_inbound, host, port)
        self._listen_port = int(self._server.sockets[0].getsockname()[1])
        log.info("p2p %s listening on %s:%d", self._public_key.hex()[:16], host, self._listen_port)
        return self._listen_port

    async def stop(self) -> None:
        """Stop accepting, close every link, cancel and await every task; safe to call twice."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        links = list(self._links.values())
        for link in links:
            link.conn.close("stopping")
        # Loop: a connection accepted just before the server closed may add one more task.
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # Our own cancellation propagates from here untouched.
        # A link whose task was cancelled before its first step never ran its own teardown.
        for link in list(self._links.values()):
            self._cut(link, "stopping")
        self._refusals.close()
        if self._server is not None:
            await self._server.wait_closed()
        for link in links:
            await link.conn.wait_closed()

    async def __aenter__(self) -> PeerManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- public ---------------------------------------------------------------------------------

    def add_persistent_peer(self, peer: PeerAddress | tuple[bytes, str, int]) -> None:
        """Allow `peer`'s key and keep a link to it from start() on; a known key gets the new address.

        Our own key is ignored, since configs often list every validator, us included.
        """
        address = PeerAddress(*peer)
        if len(address.node_key) != NODE_KEY_BYTES:
            raise ValueError(f"peer node key must be {NODE_KEY_BYTES} bytes, got {len(address.node_key)}")
        if address.node_key == self._public_key or self._persistent.get(address.node_key) == address:
            return
        self._allowed.add(address.node_key)
        self._persistent[address.node_key] = address
        if _is_ip_address(address.host):
            self._gate.remember(address.host)  # its inbound handshakes get the reserved slots
        old = self._dialers.pop(address.node_key, None)
        if old is not None:
            old.cancel()  # Its link, if any, survives: the new loop follows it until it drops.
        if self._started and not self._stopping:
            self._start_dialling(address)

    def set_allowed_keys(self, keys: Iterable[bytes]) -> None:
        """Replace the allow-list (say, on a validator-set change); links to keys now refused are cut.

        A persistent peer off the list is neither dialled nor admitted until it is on it again: the
        list says who may talk to us, the persistent peers only where to find them.
        """
        self._allowed = set(keys)
        for key, link in list(self._links.items()):
            if key not in self._allowed and not link.conn.closed:
                log.info("p2p cutting %s: no longer on the allow-list", key.hex())
                self._close_link(link, "no longer on the allow-list")

    def connected_peers(self) -> frozenset[bytes]:
        """Node keys of the peers with a live link now."""
        return frozenset(key for key, link in self._links.items() if not link.conn.closed)

    def send(self, peer_key: bytes, message: bytes) -> bool:
        """Queue `message` for `peer_key`; False if not connected or the link was just cut.

        Raises FrameTooLarge for a message over message_bytes_max (the caller's mistake). A full
        send queue cuts the link (the peer is too slow) and returns False.
        """
        if len(message) > self._config.message_bytes_max:
            raise FrameTooLarge(len(message), self._config.message_bytes_max)
        link = self._links.get(peer_key)
        if link is None or link.conn.closed:
            return False
        if link.queue.offer(message):
            return True
        self.stats.overflow_disconnects += 1
        log.warning(
            "p2p send queue to %s is full (%d messages, %d bytes): cutting the slow peer",
            peer_key.hex(),
            len(link.queue),
            link.queue.queued_bytes,
        )
        # Close only: the link's reader task then reports the peer down, so on_peer_down never
        # runs inside the caller's send().
        self._close_link(link, "send queue overflow")
        return False

    def broadcast(
        self,
        message: bytes,
        exclude: bytes | Collection[bytes] | None = None,
        *,
        only: Collection[bytes] | None = None,
    ) -> int:
        """Queue `message` for every connected peer in `only` (all, if None) but `exclude` (a key or
        keys); returns how many. Say who by inclusion (`only=` the validators' node keys) wherever
        a role is meant: a peer the node did not expect is then left out, not let in."""
        if len(message) > self._config.message_bytes_max:
            raise FrameTooLarge(len(message), self._config.message_bytes_max)
        excluded: Collection[bytes] = {exclude} if isinstance(exclude, bytes) else (exclude or ())
        sent = 0
        for key in list(self._links):
            if (only is None or key in only) and key not in excluded and self.send(key, message):
                sent += 1
        return sent

    def disconnect(self, peer_key: bytes, reason: str = "disconnected by the node") -> bool:
        """Cut the link to `peer_key` (e.g. it sent garbage); a persistent peer is redialled later."""
        link = self._links.get(peer_key)
        if link is None or link.conn.closed:
            return False
        log.info("p2p cutting %s: %s", peer_key.hex(), reason)
        self._close_link(link, reason)  # As in send(): the reader task reports the peer down.
        return True

    # -- private: links -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_dialling(self, peer: PeerAddress) -> None:
        self._dialers[peer.node_key] = self._spawn(
            self._dial_loop(peer), name=f"p2p-dial-{peer.node_key.hex()[:8]}"
        )

    def _frame_bytes_max(self) -> int:
        return self._config.message_bytes_max + ENVELOPE_BYTES

    def _accept_inbound(self, key: bytes) -> bool:
        return key in self._allowed and key != self._public_key

    def _admit(self, conn: SecretConnection, *, outbound: bool) -> _Link | None:
        """Register a fresh link, replace the peer's current one, or close it as a duplicate.

        The allow-list is checked again here: it may have changed while the handshake ran.
        """
        key = conn.remote_key
        if not self._accept_inbound(key):
            self.stats.admission_refused += 1
            conn.close("not on the allow-list")
            if outbound:
                log.info("p2p not admitting %s: taken off the allow-list during the handshake", key.hex())
            else:
                self._note_refused(
                    "off_the_list",
                    source_of(_host_of(conn.peername)),
                    f"peer {key.hex()} from {_address_of(conn.peername)} taken off the allow-list "
                    "during the handshake",
                )
            return None
        if isinstance(conn.peername, tuple) and conn.peername:
            self._gate.remember(str(conn.peername[0]))  # an allowed peer authenticated from there
        dialler_key = self._public_key if outbound else key
        existing = self._links.get(key)
        if existing is not None and existing.conn.closed:
            # Dead but not yet torn down: finish it, so the node sees a down and then an up, and
            # the new link does not inherit the queue that may have killed the old one.
            self._cut(existing, "closed")
            existing = None
        if existing is not None and dialler_key > existing.dialler_key:
            # Lower dialler wins; on a tie (the same side redialled) the newer link wins.
            self.stats.duplicates_closed += 1
            log.debug("p2p closing duplicate link to %s (dialled by %s)", key.hex(), dialler_key.hex()[:16])
            conn.close("duplicate")
            return None
        queue = (
            existing.queue
            if existing is not None
            else _SendQueue(self._config.send_queue_messages_max, self._config.send_queue_bytes_max)
        )
        link = _Link(
            key=key,
            conn=conn,
            outbound=outbound,
            dialler_key=dialler_key,
            queue=queue,
            opened_s=asyncio.get_running_loop().time(),
        )
        self._links[key] = link
        if existing is not None:
            self.stats.links_replaced += 1
            log.debug("p2p link to %s replaced by one dialled by %s", key.hex(), dialler_key.hex()[:16])
            self._close_link(existing, "replaced")  # Its reader sees it is not current: no peer-down.
            return link
        log.info("p2p peer up %s (%s, %s)", key.hex(), "outbound" if outbound else "inbound", conn.peername)
        self._notify(self._on_peer_up, key)
        return link

    async def _serve(self, link: _Link) -> None:
        """Run one link until it fails or is cut: read here, write in a companion task."""
        writer_task = self._spawn(self._write_loop(link), name=f"p2p-write-{link.key.hex()[:8]}")
        link.writer_task = writer_task
        reason = "closed"
        try:
            await self._read_loop(link)
        except ReadTimeout:
            self.stats.idle_disconnects += 1
            reason = f"silent for {self._config.idle_timeout_ms} ms"
        except P2PError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._cut(link, reason)
            await asyncio.wait([writer_task])

    async def _read_loop(self, link: _Link) -> None:
        while True:
            frame = await link.conn.receive()
            kind = frame[:ENVELOPE_BYTES]
            if kind == KIND_MESSAGE:
                self.stats.messages_received += 1
                try:
                    await self._on_message(link.key, frame[ENVELOPE_BYTES:])
                except Exception:
                    # The node's bug, not the peer's: keep the link. To punish a peer for a bad
                    # message, the node calls disconnect().
                    self.stats.handler_errors += 1
                    log.exception("p2p on_message failed for a message from %s", link.key.hex())
            elif kind == KIND_KEEPALIVE and len(frame) == ENVELOPE_BYTES:
                continue
            else:
                self.stats.protocol_errors += 1
                raise ConnectionClosed(f"bad envelope {frame[:1].hex() or 'empty'} of {len(frame)} bytes")

    async def _write_loop(self, link: _Link) -> None:
        keepalive_s = self._config.keepalive_interval_ms / 1000
        try:
            while True:
                try:
                    async with asyncio.timeout(keepalive_s):
                        message = await link.queue.take()
                except TimeoutError:
                    await link.conn.send(KIND_KEEPALIVE)
                    continue
                await link.conn.send(KIND_MESSAGE + message)
                self.stats.messages_sent += 1
        except P2PError as exc:
            log.info("p2p write to %s failed: %s", link.key.hex(), exc)
        finally:
            link.conn.close("writer stopped")  # Wakes the reader, which then tears the link down.

    def _close_link(self, link: _Link, reason: str) -> None:
        link.conn.close(reason)
        if link.writer_task is not None:
            link.writer_task.cancel()

    def _cut(self, link: _Link, reason: str = "cut") -> None:
        """Close the link now; if it is the peer's current link, the peer goes down now."""
        self._close_link(link, reason)
        if self._links.get(link.key) is link:
            del self._links[link.key]
            log.info("p2p peer down %s: %s", link.key.hex(), reason)
            self._notify(self._on_peer_down, link.key)
        link.done.set()

    def _notify(self, callback: OnPeerEvent | None, key: bytes) -> None:
        if callback is None:
            return
        try:
            callback(key)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("p2p peer callback %r failed for %s", callback, key.hex())

    # -- private: inbound -----------------------------------------------------------------------

    def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.transport.abort()
            return
        host = _host_of(writer.get_extra_info("peername"))
        peername = _address_of(writer.get_extra_info("peername"))
        verdict = self._gate.admit(host)
        for victim in verdict.evicted:
            self.stats.handshakes_evicted += 1
            task, transport = victim.handle  # type: ignore[misc]
            transport.abort()  # first: a task cancelled before its first step never closes it
            task.cancel()
            self._note_refused("evicted", victim.source, f"handshake from {victim.source} cut to make room")
        if verdict.ticket is None:
            writer.transport.abort()  # before a single byte: an over-the-rate connection costs an accept
            if verdict.refused == "rate_limited":
                self.stats.inbound_rate_limited += 1
                detail = (
                    f"connection from {peername} over the rate of "
                    f"{self._config.connections_per_address_per_s}/s for its address"
                )
            else:
                self.stats.inbound_over_limit += 1
                detail = f"connection from {peername}: too many handshakes in flight"
            self._note_refused(verdict.refused or "over_limit", source_of(host), detail)
            return
        self.stats.inbound_accepted += 1
        task = self._spawn(
            self._inbound(reader, writer, peername, verdict.ticket), name=f"p2p-inbound-{peername}"
        )
        verdict.ticket.handle = (task, writer.transport)

    async def _inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peername: str, ticket: Ticket
    ) -> None:
        try:
            conn = await handshake(
                reader,
                writer,
                self._node_key,
                self._accept_inbound,
                network_id=self._network_id,
                frame_bytes_max=self._frame_bytes_max(),
                hello_timeout_ms=self._config.hello_timeout_ms,
                handshake_timeout_ms=self._config.handshake_timeout_ms,
                read_timeout_ms=self._config.idle_timeout_ms,
                write_timeout_ms=self._config.write_timeout_ms,
            )
        except UnknownPeer as exc:
            self.stats.refused_unknown += 1
            self._note_refused(
                "unknown_key", ticket.source, f"refused unknown peer {exc.key_hex} connecting from {peername}"
            )
            return
        except NetworkMismatch as exc:
            self.stats.network_mismatches += 1
            self._note_refused("other_network", ticket.source, f"from {peername}: {exc}")
            return
        except SelfConnection as exc:
            self.stats.self_connections += 1
            self._note_refused("self_connection", ticket.source, f"from {peername}: {exc}")
            return
        except HandshakeError as exc:
            self.stats.handshake_failures += 1
            reason = "failed"
            if isinstance(exc, HandshakeTimeout):
                self.stats.handshake_timeouts += 1
                reason = "timed_out"
            self._note_refused(reason, ticket.source, f"inbound handshake from {peername} failed: {exc}")
            return
        finally:
            self._gate.done(ticket)
        link = self._admit(conn, outbound=False)
        if link is not None:
            await self._serve(link)

    def _note_refused(self, reason: str, source: str, detail: str) -> None:
        """Count one refused inbound connection from `source`; the log hears of it at most once per interval."""
        self.stats.inbound_refused[reason] += 1
        self._refusals.note(reason, source, detail)

    def _log_refusals(self, message: str, fields: dict[str, object]) -> None:
        self.stats.refusal_log_lines += 1
        log.warning(message, extra=fields)

    # -- private: outbound ----------------------------------------------------------------------

    async def _dial_loop(self, peer: PeerAddress) -> None:
        """Keep a link to one persistent peer for as long as the manager runs."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            link = self._links.get(peer.node_key)
            if link is None and peer.node_key not in self._allowed:
                await asyncio.sleep(self._config.dial_backoff_max_ms / 1000)  # off the list for now
                continue
            if link is None and peer.node_key < self._public_key:
                # The link the lower key dials wins a simultaneous dial anyway: give it a head
                # start, so that both ends rarely handshake twice only to drop one link.
                await asyncio.sleep(self._config.dial_backoff_min_ms / 1000)
                link = self._links.get(peer.node_key)
                if link is None and peer.node_key not in self._allowed:
                    continue  # taken off the list during the head start
            if link is None:
                link = await self._dial(peer)
                if link is None:
                    failures += 1
                    await asyncio.sleep(self._backoff_ms(failures) / 1000)
                    continue
                # The link runs in its own task, so replacing this loop (a new address) or the
                # link (a duplicate) never cuts the other.
                self._spawn(self._serve(link), name=f"p2p-link-{peer.node_key.hex()[:8]}")
            await link.done.wait()
            if self._links.get(peer.node_key) is not None:
                continue  # Replaced by a newer link: follow that one, the peer never went down.
            # A link that lived long resets the doubling; one that dies at once counts as a failure,
            # so a peer that accepts and drops us straight away is not hammered.
            lived_ms = (loop.time() - link.opened_s) * 1000
            failures = 0 if lived_ms >= self._config.dial_backoff_max_ms else failures + 1
            await asyncio.sleep(self._backoff_ms(failures) / 1000)

    async def _dial(self, peer: PeerAddress) -> _Link | None:
        self.stats.dials += 1
        try:
            conn = await connect(
                peer.host,
                peer.port,
                self._node_key,
                lambda key: key == peer.node_key,
                network_id=self._network_id,
                dial_timeout_ms=self._config.dial_timeout_ms,
                frame_bytes_max=self._frame_bytes_max(),
                hello_timeout_ms=self._config.hello_timeout_ms,
                handshake_timeout_ms=self._config.handshake_timeout_ms,
                read_timeout_ms=self._config.idle_timeout_ms,
                write_timeout_ms=self._config.write_timeout_ms,
            )
        except UnknownPeer as exc:
            self.stats.refused_unknown += 1
            self._dial_failed(
                peer, f"it answered with node key {exc.key_hex}, not the one configured", at_once=True
            )
            return None
        except NetworkMismatch as exc:
            self.stats.network_mismatches += 1
            self._dial_failed(peer, f"it is on another network: {exc}", at_once=True)
            return None
        except SelfConnection:
            self.stats.self_connections += 1
            self._dial_failed(peer, "the address leads back to this node", at_once=True)
            return None
        except RefusedByPeer:
            self.stats.refused_by_peer += 1
            self._dial_failed(peer, "it refused our node key (are we on its allow-list?)", at_once=True)
            return None
        except HandshakeError as exc:
            self.stats.handshake_failures += 1
            if isinstance(exc, HandshakeTimeout):
                self.stats.handshake_timeouts += 1
            self._dial_failed(peer, f"handshake failed: {exc}", at_once=False)
            return None
        except ConnectionClosed as exc:
            self.stats.dial_failures += 1
            self._dial_failed(peer, str(exc), at_once=False)
            return None
        self._dial_succeeded(peer)
        return self._admit(conn, outbound=True)

    def _dial_failed(self, peer: PeerAddress, reason: str, *, at_once: bool) -> None:
        """Count a failed dial; warn about the peer, naming its address, when a report is due.

        `at_once`: the failure will not go away by waiting (a refusal, a wrong key or network), so
        its first report is not held back by `dial_warning_after_ms`.
        """
        now = time.monotonic()
        state = self._unreachable.get(peer.node_key)
        if state is None:
            state = self._unreachable[peer.node_key] = _Unreachable(since_s=now)
        state.failures += 1
        log.debug("p2p dial %s at %s:%d failed: %s", peer.node_key.hex()[:16], peer.host, peer.port, reason)
        if state.warnings == 0:
            due = at_once or (now - state.since_s) * 1000 >= self._config.dial_warning_after_ms
        else:
            interval_ms = min(
                self._config.dial_warning_interval_max_ms,
                self._config.dial_warning_interval_ms << min(state.warnings - 1, 30),
            )
            due = (now - state.warned_s) * 1000 >= interval_ms
        if not due:
            return
        state.warnings += 1
        state.warned_s = now
        self.stats.dial_warnings += 1
        next_ms = min(
            self._config.dial_warning_interval_max_ms,
            self._config.dial_warning_interval_ms << min(state.warnings - 1, 30),
        )
        log.warning(
            "p2p peer unreachable",
            extra={
                "peer": peer.node_key.hex(),
                "address": f"{peer.host}:{peer.port}",
                "reason": reason,
                "failed_dials": state.failures,
                "for_s": round(now - state.since_s),
                "next_report_s": next_ms // 1000,
            },
        )

    def _dial_succeeded(self, peer: PeerAddress) -> None:
        state = self._unreachable.pop(peer.node_key, None)
        if state is not None and state.warnings:
            log.info(
                "p2p peer reachable again",
                extra={
                    "peer": peer.node_key.hex(),
                    "address": f"{peer.host}:{peer.port}",
                    "failed_dials": state.failures,
                    "for_s": round(time.monotonic() - state.since_s),
                },
            )

    def _backoff_ms(self, failures: int) -> int:
        """Delay before the next dial: doubling from the minimum, capped, with half of it random."""
        ceiling_ms = min(
            self._config.dial_backoff_max_ms,
            self._config.dial_backoff_min_ms << min(max(failures - 1, 0), 30),
        )
        # Jitter keeps peers that lost each other at the same moment from redialling in lockstep.
        return ceiling_ms // 2 + self._rng.randint(0, ceiling_ms - ceiling_ms // 2)


def _address_of(peername: object) -> str:
    """A socket's peer name as `host:port` (`[host]:port` for IPv6), for log lines."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    return str(peername)


def _host_of(peername: object) -> str:
    """The host part of a socket's peer name (a (host, port, ...) tuple), or the name itself."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
