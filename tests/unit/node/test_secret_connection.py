"""Tests of node.p2p.secret_connection: the handshake, sealed frames, and every way they fail.

Real sockets on 127.0.0.1 (port 0) where the wire is the point, with a frame-aware proxy in the
middle to tamper with, replay, drop or reorder frames; in-memory streams for the fuzz tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from node.p2p.errors import (
    ConnectionClosed,
    FrameAuthenticationError,
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
    AUTH_DOMAIN,
    HANDSHAKE_READ_BYTES_MAX,
    HELLO_BYTES,
    LENGTH_PREFIX_BYTES,
    MAGIC,
    NO_NETWORK,
    TAG_BYTES,
    SecretConnection,
    auth_payload,
    connect,
    derive_secrets,
    handshake,
    hkdf_sha256,
)

HOST = "127.0.0.1"
TIMEOUT_MS = 2_000  # Generous for slow CI; every test still ends within a few seconds.

Mutate = Callable[[int, bytes], list[bytes]]
"""Given the index of a client-to-server frame (0 auth, 1 verdict, 2.. data) and its bytes, what to forward."""


def _key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def _pub(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


@contextlib.asynccontextmanager
async def _server(
    node_key: nacl.signing.SigningKey,
    accept: Callable[[bytes], bool],
    **limits: int,
) -> AsyncIterator[tuple[int, asyncio.Future[SecretConnection]]]:
    """Listen on a free port; the future gets the first inbound link or its handshake error."""
    result: asyncio.Future[SecretConnection] = asyncio.get_running_loop().create_future()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await handshake(reader, writer, node_key, accept, **limits)
        except Exception as exc:  # noqa: BLE001 - handed to the test through the future
            if not result.done():
                result.set_exception(exc)
            return
        if not result.done():
            result.set_result(conn)

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(on_connect, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1], result
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if result.done() and not result.cancelled() and result.exception() is None:
            result.result().close()
        await server.wait_closed()


async def _pair(**limits: int) -> tuple[SecretConnection, SecretConnection, contextlib.AsyncExitStack]:
    """A connected (client, server) pair; close the stack to tear everything down."""
    stack = contextlib.AsyncExitStack()
    client_key, server_key = _key(), _key()
    port, accepted = await stack.enter_async_context(_server(server_key, lambda k: True, **limits))
    client = await connect(HOST, port, client_key, lambda k: True, **limits)
    stack.callback(client.close)
    server = await asyncio.wait_for(accepted, 5)
    return client, server, stack


class _FrameProxy:
    """A TCP relay that understands our framing in the client-to-server direction.

    It forwards the hello as is, then hands each frame to `mutate`, which returns the frames to
    forward instead: [] drops it, [f, f] replays it, [f'] alters it.
    """

    def __init__(self, upstream_port: int, mutate: Mutate) -> None:
        self._upstream_port = upstream_port
        self._mutate = mutate
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> _FrameProxy:
        self._server = await asyncio.start_server(self._on_connect, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self._upstream_port)
        self._writers += [client_writer, upstream_writer]

        async def downstream() -> None:
            while data := await upstream_reader.read(65536):
                client_writer.write(data)
            client_writer.transport.abort()

        down = asyncio.create_task(downstream())
        try:
            upstream_writer.write(await client_reader.readexactly(HELLO_BYTES))
            index = 0
            while True:
                header = await client_reader.readexactly(LENGTH_PREFIX_BYTES)
                body = await client_reader.readexactly(int.from_bytes(header, "big"))
                for frame in self._mutate(index, header + body):
                    upstream_writer.write(frame)
                index += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            upstream_writer.transport.abort()
        finally:
            down.cancel()
            await asyncio.wait([down])


def _data_frame(mutation: Callable[[bytes], list[bytes]], at: int = 2) -> Mutate:
    return lambda index, frame: mutation(frame) if index == at else [frame]


def _flip_last_byte(frame: bytes) -> list[bytes]:
    return [frame[:-1] + bytes([frame[-1] ^ 0x01])]


# -- key derivation -------------------------------------------------------------------------------


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    okm = hkdf_sha256(
        bytes([0x0B] * 22),
        salt=bytes(range(0x0D)),
        info=bytes(range(0xF0, 0xFA)),
        length_bytes=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_both_ends_derive_crosswise_keys_and_one_challenge() -> None:
    a, b = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    a_pub, b_pub = bytes(a.public_key), bytes(b.public_key)
    shared = nacl.bindings.crypto_scalarmult(bytes(a), b_pub)
    assert shared == nacl.bindings.crypto_scalarmult(bytes(b), a_pub)
    a_send, a_receive, a_challenge = derive_secrets(a_pub, b_pub, shared)
    b_send, b_receive, b_challenge = derive_secrets(b_pub, a_pub, shared)
    assert (a_send, a_receive, a_challenge) == (b_receive, b_send, b_challenge)
    assert len({a_send, a_receive, a_challenge}) == 3


# -- handshake ------------------------------------------------------------------------------------


async def test_handshake_succeeds_and_each_end_learns_the_other_key() -> None:
    client_key, server_key = _key(), _key()
    seen: list[bytes] = []

    def accept(key: bytes) -> bool:
        seen.append(key)
        return key == _pub(client_key)

    async with _server(server_key, accept) as (port, accepted):
        client = await connect(HOST, port, client_key, lambda k: k == _pub(server_key))
        server = await asyncio.wait_for(accepted, 5)
        try:
            assert client.remote_key == _pub(server_key)
            assert client.local_key == _pub(client_key)
            assert server.remote_key == _pub(client_key)
            assert seen == [_pub(client_key)]
            await client.send(b"ping")
            assert await server.receive() == b"ping"
            await server.send(b"")
            assert await client.receive() == b""
            for size in (1, 1000, 200_000):
                await server.send(bytes(size))
                assert await client.receive() == bytes(size)
        finally:
            client.close()


async def test_unknown_key_is_refused_on_both_sides() -> None:
    client_key, server_key = _key(), _key()
    async with _server(server_key, lambda k: False) as (port, accepted):
        with pytest.raises(RefusedByPeer, match="refused our node key") as refused:
            await connect(HOST, port, client_key, lambda k: True)
        assert not isinstance(refused.value, UnknownPeer)
        assert refused.value.key == _pub(server_key)
        with pytest.raises(UnknownPeer) as unknown:
            await asyncio.wait_for(accepted, 5)
        assert unknown.value.key_hex == _pub(client_key).hex()
        assert _pub(client_key).hex() in str(unknown.value)


async def test_dialler_refuses_a_server_with_an_unexpected_key() -> None:
    client_key, server_key, expected_key = _key(), _key(), _key()
    async with _server(server_key, lambda k: True) as (port, accepted):
        with pytest.raises(UnknownPeer) as unknown:
            await connect(HOST, port, client_key, lambda k: k == _pub(expected_key))
        assert unknown.value.key == _pub(server_key)
        with pytest.raises(HandshakeError, match="refused"):
            await asyncio.wait_for(accepted, 5)


async def test_silent_connector_is_cut_after_the_handshake_timeout() -> None:
    loop = asyncio.get_running_loop()
    async with _server(_key(), lambda k: True, handshake_timeout_ms=200) as (port, accepted):
        reader, writer = await asyncio.open_connection(HOST, port)
        started = loop.time()
        try:
            with pytest.raises(HandshakeTimeout, match="within 200 ms"):
                await asyncio.wait_for(accepted, 5)
            elapsed = loop.time() - started
            assert 0.15 <= elapsed < 2
            # The server cut us: we read its hello and then EOF, never more.
            assert len(await asyncio.wait_for(reader.read(), 5)) == HELLO_BYTES
        finally:
            writer.close()


async def test_a_silent_connector_is_cut_at_the_hello_deadline_not_the_handshake_timeout() -> None:
    loop = asyncio.get_running_loop()
    limits = {"hello_timeout_ms": 150, "handshake_timeout_ms": 3_000}
    async with _server(_key(), lambda k: True, **limits) as (port, accepted):
        reader, writer = await asyncio.open_connection(HOST, port)
        started = loop.time()
        try:
            with pytest.raises(HandshakeTimeout, match="no hello within 150 ms") as late:
                await asyncio.wait_for(accepted, 5)
            assert late.value.stage == "hello"
            assert 0.1 <= loop.time() - started < 1.5  # far from the 3 s of the whole handshake
            assert len(await asyncio.wait_for(reader.read(), 5)) == HELLO_BYTES
        finally:
            writer.close()


async def test_a_peer_that_sends_its_hello_then_stalls_is_cut_at_the_handshake_timeout() -> None:
    limits = {"hello_timeout_ms": 100, "handshake_timeout_ms": 400}
    async with _server(_key(), lambda k: True, **limits) as (port, accepted):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(MAGIC + bytes(nacl.public.PrivateKey.generate().public_key))
            with pytest.raises(HandshakeTimeout, match="handshake not done within 400 ms") as late:
                await asyncio.wait_for(accepted, 5)
            assert late.value.stage == "handshake"
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("hello", "message"),
    [
        (b"HTTP" + bytes(32), "not a secledger link"),
        (MAGIC + bytes(32), "low-order"),
    ],
)
async def test_bad_hello_fails_the_handshake(hello: bytes, message: str) -> None:
    async with _server(_key(), lambda k: True) as (port, accepted):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(hello)
            with pytest.raises(HandshakeError, match=message):
                await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()


async def test_reflected_ephemeral_key_fails_the_handshake() -> None:
    async with _server(_key(), lambda k: True) as (port, accepted):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(await reader.readexactly(HELLO_BYTES))
            with pytest.raises(HandshakeError, match="reflected"):
                await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()


class _Transcript:
    """What the manual client knows once the hellos are exchanged: both ephemerals and the challenge."""

    def __init__(self, own_ephemeral: bytes, peer_ephemeral: bytes, challenge: bytes) -> None:
        self.own_ephemeral = own_ephemeral
        self.peer_ephemeral = peer_ephemeral
        self.challenge = challenge


def _spec_auth_payload(network_id: bytes, signer_ephemeral: bytes, challenge: bytes) -> bytes:
    """What a node key signs, written from docs/P2P.md rather than taken from the code."""
    return b"secledger/p2p/v2/auth" + network_id + signer_ephemeral + challenge


async def _manual_client(
    port: int, auth: Callable[[_Transcript], bytes]
) -> tuple[SecretConnection, _Transcript]:
    """Run our half of the handshake by hand up to the auth frame, whose plaintext `auth` makes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    ephemeral = nacl.public.PrivateKey.generate()
    writer.write(MAGIC + bytes(ephemeral.public_key))
    remote_ephemeral = (await reader.readexactly(HELLO_BYTES))[len(MAGIC) :]
    shared = nacl.bindings.crypto_scalarmult(bytes(ephemeral), remote_ephemeral)
    send_key, receive_key, challenge = derive_secrets(bytes(ephemeral.public_key), remote_ephemeral, shared)
    transcript = _Transcript(bytes(ephemeral.public_key), remote_ephemeral, challenge)
    conn = SecretConnection(
        reader, writer, local_key=b"", remote_key=b"", send_key=send_key, receive_key=receive_key
    )
    await conn.send(auth(transcript))
    return conn, transcript


def _signed_auth(
    key: nacl.signing.SigningKey, message: Callable[[_Transcript], bytes]
) -> Callable[[_Transcript], bytes]:
    """The auth frame of `key` with the signature over `message(transcript)`, for no network."""
    return lambda t: _pub(key) + NO_NETWORK + key.sign(message(t)).signature


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(lambda t: t.challenge, id="no-domain-tag"),
        pytest.param(lambda t: AUTH_DOMAIN + t.challenge, id="v1-challenge-only"),
        pytest.param(
            lambda t: _spec_auth_payload(NO_NETWORK, t.own_ephemeral, bytes(32)), id="other-challenge"
        ),
        pytest.param(
            lambda t: _spec_auth_payload(NO_NETWORK, t.peer_ephemeral, t.challenge), id="the-peer-side"
        ),
        pytest.param(
            lambda t: _spec_auth_payload(b"\x01" * 32, t.own_ephemeral, t.challenge), id="other-network"
        ),
    ],
)
async def test_forged_auth_signature_fails_the_handshake(message: Callable[[_Transcript], bytes]) -> None:
    client_key = _key()
    async with _server(_key(), lambda k: True) as (port, accepted):
        conn, _ = await _manual_client(port, _signed_auth(client_key, message))
        try:
            with pytest.raises(HandshakeError, match="bad handshake signature"):
                await asyncio.wait_for(accepted, 5)
        finally:
            conn.close()


async def test_a_signature_by_another_key_fails_the_handshake() -> None:
    client_key, other = _key(), _key()
    async with _server(_key(), lambda k: True) as (port, accepted):
        conn, _ = await _manual_client(
            port,
            lambda t: (
                _pub(client_key)
                + NO_NETWORK
                + other.sign(_spec_auth_payload(NO_NETWORK, t.own_ephemeral, t.challenge)).signature
            ),
        )
        try:
            with pytest.raises(HandshakeError, match="bad handshake signature"):
                await asyncio.wait_for(accepted, 5)
        finally:
            conn.close()


async def test_honest_manual_client_passes_so_the_forgery_tests_mean_something() -> None:
    client_key = _key()
    async with _server(_key(), lambda k: True) as (port, accepted):
        conn, transcript = await _manual_client(
            port,
            _signed_auth(client_key, lambda t: _spec_auth_payload(NO_NETWORK, t.own_ephemeral, t.challenge)),
        )
        try:
            assert auth_payload(
                NO_NETWORK, transcript.own_ephemeral, transcript.challenge
            ) == _spec_auth_payload(NO_NETWORK, transcript.own_ephemeral, transcript.challenge)
            await conn.send(b"\x01")  # Our verdict: accept.
            server = await asyncio.wait_for(accepted, 5)
            assert server.remote_key == _pub(client_key)
        finally:
            conn.close()


async def test_the_servers_own_auth_reflected_back_is_refused_by_the_handshake() -> None:
    """A man in the middle (here: a client with no key) runs the key exchange with the server,
    opens the server's auth frame and sends it straight back as its own. Under v1 this passed the
    signature check (both sides signed the same challenge); now the handshake itself refuses it."""
    server_key = _key()
    held: list[bytes] = []

    async def reflect() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        ephemeral = nacl.public.PrivateKey.generate()
        writer.write(MAGIC + bytes(ephemeral.public_key))
        remote_ephemeral = (await reader.readexactly(HELLO_BYTES))[len(MAGIC) :]
        shared = nacl.bindings.crypto_scalarmult(bytes(ephemeral), remote_ephemeral)
        send_key, receive_key, challenge = derive_secrets(
            bytes(ephemeral.public_key), remote_ephemeral, shared
        )
        conn = SecretConnection(
            reader, writer, local_key=b"", remote_key=b"", send_key=send_key, receive_key=receive_key
        )
        server_auth = await conn._receive_frame(128 + TAG_BYTES, exact=True)
        held.append(server_auth)
        await conn.send(server_auth)  # "I am the server", with the server's own valid signature
        assert await conn._receive_frame(1 + TAG_BYTES, exact=True) == b"\x00"  # refused
        # The signature binds the server's own ephemeral key: it cannot pass as ours anyway.
        with pytest.raises(nacl.exceptions.BadSignatureError):
            nacl.signing.VerifyKey(server_auth[:32]).verify(
                _spec_auth_payload(NO_NETWORK, bytes(ephemeral.public_key), challenge), server_auth[64:]
            )
        conn.close()

    async with _server(server_key, lambda k: True) as (port, accepted):
        await asyncio.wait_for(reflect(), 5)
        with pytest.raises(SelfConnection) as refused:
            await asyncio.wait_for(accepted, 5)
        assert refused.value.key == _pub(server_key)
        assert held[0][:32] == _pub(server_key)


async def test_a_node_relayed_to_itself_refuses_the_link_on_both_ends() -> None:
    """A relay joins a node's outbound connection to its own listener: two genuine handshakes by
    one key. Each end sees its own key and refuses it with SelfConnection."""
    key = _key()
    async with _server(key, lambda k: True) as (port, accepted):
        with pytest.raises(SelfConnection):
            await connect(HOST, port, key, lambda k: True)
        with pytest.raises(SelfConnection):
            await asyncio.wait_for(accepted, 5)


async def test_a_key_on_another_network_fails_at_once_on_both_ends() -> None:
    client_key, server_key = _key(), _key()
    ours, theirs = b"\x11" * 32, b"\x22" * 32
    async with _server(server_key, lambda k: True, network_id=ours) as (port, accepted):
        with pytest.raises(NetworkMismatch) as dialler:
            await connect(HOST, port, client_key, lambda k: True, network_id=theirs)
        with pytest.raises(NetworkMismatch) as listener:
            await asyncio.wait_for(accepted, 5)
    assert (dialler.value.local_network, dialler.value.remote_network) == (theirs, ours)
    assert (listener.value.local_network, listener.value.remote_network) == (ours, theirs)
    assert listener.value.key == _pub(client_key) and dialler.value.key == _pub(server_key)
    assert ours.hex() in str(listener.value) and theirs.hex() in str(listener.value)


async def test_the_same_network_id_on_both_ends_connects() -> None:
    network = bytes(range(32))
    async with _server(_key(), lambda k: True, network_id=network) as (port, accepted):
        client = await connect(HOST, port, _key(), lambda k: True, network_id=network)
        try:
            server = await asyncio.wait_for(accepted, 5)
            await client.send(b"same chain")
            assert await server.receive() == b"same chain"
        finally:
            client.close()


async def test_a_network_id_of_the_wrong_size_is_the_callers_mistake() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        await handshake(_reader_of(b""), _SinkWriter(), _key(), lambda k: True, network_id=b"short")  # type: ignore[arg-type]


# -- frames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "delivered"),
    [
        pytest.param(_data_frame(_flip_last_byte), [], id="tampered-tag"),
        pytest.param(_data_frame(lambda f: [f[:8] + bytes([f[8] ^ 0x80]) + f[9:]]), [], id="tampered-body"),
        pytest.param(_data_frame(lambda f: [f, f]), [b"m0"], id="replayed"),
        pytest.param(_data_frame(lambda f: []), [], id="dropped"),
        pytest.param(_data_frame(lambda f: [f, f], at=3), [b"m0", b"m1"], id="replayed-later"),
    ],
)
async def test_altered_frame_cuts_the_link_with_an_authentication_error(
    mutate: Mutate, delivered: list[bytes]
) -> None:
    client_key, server_key = _key(), _key()
    async with (
        _server(server_key, lambda k: True) as (port, accepted),
        _FrameProxy(port, mutate) as proxy,
    ):
        client = await connect(HOST, proxy.port, client_key, lambda k: True)
        server = await asyncio.wait_for(accepted, 5)
        try:
            for i in range(3):
                await client.send(b"m%d" % i)
            got = []
            with pytest.raises(FrameAuthenticationError):
                while True:
                    got.append(await asyncio.wait_for(server.receive(), 5))
            assert got == delivered
            assert server.closed
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.receive(), 5)
        finally:
            client.close()


async def test_reordered_frames_cut_the_link() -> None:
    held: list[bytes] = []

    def swap_second_and_third(index: int, frame: bytes) -> list[bytes]:
        if index == 2:
            held.append(frame)
            return []
        if index == 3:
            return [frame, *held]
        return [frame]

    async with (
        _server(_key(), lambda k: True) as (port, accepted),
        _FrameProxy(port, swap_second_and_third) as proxy,
    ):
        client = await connect(HOST, proxy.port, _key(), lambda k: True)
        server = await asyncio.wait_for(accepted, 5)
        try:
            await client.send(b"first")
            await client.send(b"second")
            with pytest.raises(FrameAuthenticationError):
                await asyncio.wait_for(server.receive(), 5)
        finally:
            client.close()


async def test_frame_over_the_limit_is_refused_on_send_and_cuts_on_receive() -> None:
    client, server, stack = await _pair(frame_bytes_max=1024)
    async with stack:
        await client.send(bytes(1024))  # Exactly at the limit is fine.
        assert await server.receive() == bytes(1024)
        with pytest.raises(FrameTooLarge) as too_large:
            await client.send(bytes(1025))
        assert (too_large.value.size_bytes, too_large.value.limit_bytes) == (1025, 1024)
        assert not client.closed  # Refused before writing: the link is intact.
        await client.send(b"still fine")
        assert await server.receive() == b"still fine"

        # A sender that believes in a larger limit: the receiver cuts after reading the length.
        client.frame_bytes_max = 4096
        await client.send(bytes(1025))
        with pytest.raises(FrameTooLarge):
            await server.receive()
        assert server.closed
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.receive(), 5)


async def test_receive_times_out_when_the_peer_is_silent() -> None:
    client, server, stack = await _pair(read_timeout_ms=150)
    async with stack:
        with pytest.raises(ReadTimeout):
            await server.receive()
        assert server.closed
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.receive(), 5)


async def test_close_ends_a_pending_receive_and_later_sends() -> None:
    client, server, stack = await _pair()
    async with stack:
        pending = asyncio.create_task(server.receive())
        await asyncio.sleep(0.01)
        server.close()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(ConnectionClosed):
            await server.send(b"x")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.receive(), 5)
        await server.wait_closed()


async def test_frames_from_concurrent_senders_all_arrive() -> None:
    client, server, stack = await _pair()
    async with stack:
        payloads = {b"%d" % i * 100 for i in range(50)}
        await asyncio.gather(*(client.send(p) for p in payloads))
        got = {await asyncio.wait_for(server.receive(), 5) for _ in payloads}
        assert got == payloads


# -- fuzz: only our errors come out -----------------------------------------------------------------

NAMED_ERRORS = (HandshakeError, FrameTooLarge, FrameAuthenticationError, ConnectionClosed)


class _SinkTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


class _SinkWriter:
    """Enough of a StreamWriter for SecretConnection: keeps what is written."""

    def __init__(self) -> None:
        self.transport = _SinkTransport()
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.transport.aborted

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    async def wait_closed(self) -> None:
        return None


def _reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


valid_ephemeral = st.builds(lambda: bytes(nacl.public.PrivateKey.generate().public_key))
handshake_inputs = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=HELLO_BYTES, max_size=300),
    st.tuples(valid_ephemeral, st.binary(max_size=300)).map(lambda t: MAGIC + t[0] + t[1]),
    st.tuples(valid_ephemeral, st.integers(0, 2**32 - 1), st.binary(max_size=200)).map(
        lambda t: MAGIC + t[0] + t[1].to_bytes(4, "big") + t[2]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=handshake_inputs)
def test_handshake_reader_raises_only_handshake_errors(data: bytes) -> None:
    async def run() -> None:
        writer = _SinkWriter()
        reader = _reader_of(data)
        with pytest.raises(HandshakeError) as error:
            await handshake(reader, writer, _key(), lambda k: True, handshake_timeout_ms=1_000)  # type: ignore[arg-type]
        assert writer.transport.aborted
        # An unauthenticated peer cannot make us read more than the documented bound.
        assert len(data) - len(reader._buffer) <= HANDSHAKE_READ_BYTES_MAX == 205
        event(f"{str(error.value)[:24]} ({type(error.value.__cause__).__name__})")

    asyncio.run(run())


FRAME_KEYS = (bytes(range(32)), bytes(range(32, 64)))


def _sealed_stream(payloads: list[bytes]) -> bytes:
    """The wire bytes of `payloads` sent under FRAME_KEYS[0], built from the spec, not from our code."""
    stream = b""
    for counter, payload in enumerate(payloads):
        header = (len(payload) + TAG_BYTES).to_bytes(LENGTH_PREFIX_BYTES, "big")
        nonce = counter.to_bytes(12, "big")
        stream += header + nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
            payload, header, nonce, FRAME_KEYS[0]
        )
    return stream


async def test_sender_writes_exactly_the_specified_wire_bytes() -> None:
    payloads = [b"", b"abc", bytes(512)]
    writer = _SinkWriter()
    sender = SecretConnection(
        _reader_of(b""),
        writer,  # type: ignore[arg-type]
        local_key=b"",
        remote_key=b"",
        send_key=FRAME_KEYS[0],
        receive_key=FRAME_KEYS[1],
    )
    for payload in payloads:
        await sender.send(payload)
    assert bytes(writer.data) == _sealed_stream(payloads)


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    payloads = draw(st.lists(st.binary(max_size=600), max_size=5).map(lambda ps: [p[:512] for p in ps]))
    stream = _sealed_stream(payloads)
    kind = draw(st.sampled_from(["intact", "truncate", "flip", "insert", "delete", "random"]))
    if kind == "random":
        return payloads, draw(st.binary(max_size=2000))
    at = draw(st.integers(0, len(stream)))
    if kind == "truncate":
        stream = stream[:at]
    elif kind == "flip" and at < len(stream):
        stream = stream[:at] + bytes([stream[at] ^ draw(st.integers(1, 255))]) + stream[at + 1 :]
    elif kind == "insert":
        stream = stream[:at] + draw(st.binary(min_size=1, max_size=40)) + stream[at:]
    elif kind == "delete":
        stream = stream[:at] + stream[at + draw(st.integers(1, 40)) :]
    return payloads, stream


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_streams())
def test_frame_reader_yields_a_prefix_of_what_was_sent_then_only_named_errors(
    case: tuple[list[bytes], bytes],
) -> None:
    payloads, stream = case

    async def run() -> None:
        writer = _SinkWriter()
        receiver = SecretConnection(
            _reader_of(stream),
            writer,  # type: ignore[arg-type]
            local_key=b"",
            remote_key=b"",
            send_key=FRAME_KEYS[1],
            receive_key=FRAME_KEYS[0],
            frame_bytes_max=512,
        )
        got: list[bytes] = []
        with pytest.raises(NAMED_ERRORS) as error:
            for _ in range(len(payloads) + 100):
                got.append(await receiver.receive())
        assert isinstance(error.value, P2PError)
        event(f"{len(got)}/{len(payloads)} delivered, then {type(error.value).__name__}")
        # Authenticity: whatever the damage, nothing comes out that was not sent, in order.
        assert got == payloads[: len(got)]
        assert receiver.closed and writer.transport.aborted

    asyncio.run(run())


async def test_a_frame_reader_fed_byte_by_byte_gets_every_frame() -> None:
    payloads = [b"", b"a", bytes(300)]
    stream = _sealed_stream(payloads)
    reader = asyncio.StreamReader()
    receiver = SecretConnection(
        reader,
        _SinkWriter(),  # type: ignore[arg-type]
        local_key=b"",
        remote_key=b"",
        send_key=FRAME_KEYS[1],
        receive_key=FRAME_KEYS[0],
    )

    async def feed() -> None:
        for i in range(len(stream)):
            reader.feed_data(stream[i : i + 1])
            await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    assert [await receiver.receive() for _ in payloads] == payloads
    with pytest.raises(ConnectionClosed):
        await receiver.receive()
    await feeder


async def test_a_frame_limit_below_the_auth_frame_still_handshakes() -> None:
    client, server, stack = await _pair(frame_bytes_max=8)
    async with stack:
        await client.send(bytes(8))
        assert await server.receive() == bytes(8)
        with pytest.raises(FrameTooLarge):
            await client.send(bytes(9))
