"""An authenticated, encrypted, framed link over asyncio streams (after CometBFT's SecretConnection).

`handshake()` turns a raw TCP stream pair into a `SecretConnection`, or raises and closes it.
Both ends run the same code at the same time; neither needs to know whether it dialled.

    1. hello     each side sends MAGIC (4 bytes) | ephemeral X25519 public key (32 bytes), and
                 must receive the peer's within the hello deadline (well under the handshake's)
    2. keys      shared = X25519(own ephemeral secret, peer ephemeral public);
                 lo, hi = the two ephemeral publics sorted bytewise;
                 HKDF-SHA256(ikm=shared, salt=KDF_SALT, info=lo|hi) -> 96 bytes:
                 key of the frames the lo side sends | key of the frames the hi side sends | challenge
    3. auth      each side sends one frame: Ed25519 node public key (32) | network id (32) |
                 signature (64) over AUTH_DOMAIN | network id | the signer's OWN ephemeral public |
                 challenge. The peer refuses its own node key (SelfConnection), checks the signature
                 against the ephemeral key the signer sent it, refuses another network id
                 (NetworkMismatch), and then asks `accept(key)` (UnknownPeer when it says no)
    4. verdict   each side sends one frame of one byte: 0x01 accepted, 0x00 refused
    then         frames of opaque payloads, in both directions, until one side closes

Frame on the wire: length (4 bytes, big-endian, of what follows) | ChaCha20-Poly1305 IETF sealed
payload (ciphertext | 16-byte tag). The nonce is a per-direction counter (12 bytes, big-endian,
starting at 0 with the auth frame) that both ends keep without sending it, and the length prefix
is the associated data. A replayed, reordered, dropped or altered frame therefore fails
authentication, and the first failure cuts the connection: there is no resync.

Every read has a timeout; the hello and the whole handshake have their own. Before
authentication a peer can make us read at most HANDSHAKE_READ_BYTES_MAX bytes, so an
unauthenticated socket costs almost nothing. docs/P2P.md has the byte-by-byte layout and the
reasons behind each choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

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

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Wire constants. Changing any of them changes the protocol: bump MAGIC with it.

MAGIC: Final[bytes] = b"SLP2"
"""First 4 bytes on every link: "secledger link protocol", version 2. A mismatch fails fast.

Version 2 signs the signer's own ephemeral key and the network id (version 1 signed only the
challenge, which both sides share, so a signature did not say which side made it)."""

EPHEMERAL_KEY_BYTES: Final[int] = 32
"""Size of an X25519 public key."""

HELLO_BYTES: Final[int] = len(MAGIC) + EPHEMERAL_KEY_BYTES
"""Size of the cleartext hello each side sends first."""

LENGTH_PREFIX_BYTES: Final[int] = 4
"""Size of the big-endian length that precedes every sealed frame."""

TAG_BYTES: Final[int] = 16
"""Size of the Poly1305 tag that sealing appends to every payload."""

NONCE_BYTES: Final[int] = 12
"""Size of a ChaCha20-Poly1305 IETF nonce; ours is a big-endian per-direction counter."""

NONCE_COUNTER_MAX: Final[int] = 2**64 - 1
"""Last nonce counter we use in one direction; past it the link closes rather than reuse a nonce."""

NODE_KEY_BYTES: Final[int] = 32
"""Size of an Ed25519 public key (the long-term node key)."""

SIGNATURE_BYTES: Final[int] = 64
"""Size of an Ed25519 signature."""

NETWORK_ID_BYTES: Final[int] = 32
"""Size of the network id each side states in its auth frame: the genesis hash (SHA-256)."""

NO_NETWORK: Final[bytes] = bytes(NETWORK_ID_BYTES)
"""The network id of a link that names none (tests, tools); it matches only itself."""

AUTH_BYTES: Final[int] = NODE_KEY_BYTES + NETWORK_ID_BYTES + SIGNATURE_BYTES
"""Plaintext size of the auth frame: node public key | network id | signature."""

VERDICT_ACCEPT: Final[bytes] = b"\x01"
"""Plaintext of the verdict frame that accepts the peer."""

VERDICT_REFUSE: Final[bytes] = b"\x00"
"""Plaintext of the verdict frame that refuses the peer (its key, its network, or our own key)."""

KDF_SALT: Final[bytes] = b"secledger/p2p/v2/kdf"
"""HKDF salt: separates our keys from any other use of the same X25519 secret."""

AUTH_DOMAIN: Final[bytes] = b"secledger/p2p/v2/auth"
"""Prefix of what a node key signs, so a handshake signature can never pass for anything else."""

HANDSHAKE_READ_BYTES_MAX: Final[int] = (
    HELLO_BYTES
    + LENGTH_PREFIX_BYTES
    + AUTH_BYTES
    + TAG_BYTES
    + LENGTH_PREFIX_BYTES
    + len(VERDICT_ACCEPT)
    + TAG_BYTES
)
"""Most bytes a peer can make us read before it has authenticated (205)."""

# ---------------------------------------------------------------------------------------------
# Defaults of the configurable bounds.

frame_bytes_max_default: Final[int] = 1 << 20
"""Largest payload (plaintext) of one frame, 1 MiB; the length prefix may then say up to this + TAG_BYTES."""

handshake_timeout_ms_default: Final[int] = 5_000
"""Time allowed for the whole handshake, from the first byte sent to the verdict read."""

hello_timeout_ms_default: Final[int] = 1_000
"""Time allowed for the peer's cleartext hello to arrive. An honest peer sends it as soon as the
TCP connection is up, so one network round trip (plus one lost-segment retransmission) is enough;
a silent connector loses its socket after this, not after the whole handshake timeout."""

read_timeout_ms_default: Final[int] = 20_000
"""Time allowed for each read after the handshake; the peer manager's keepalives stay well under it."""

write_timeout_ms_default: Final[int] = 10_000
"""Time allowed for the kernel to take a frame (drain); a peer that stops reading is cut after it."""

dial_timeout_ms_default: Final[int] = 3_000
"""Time allowed for a TCP connect in `connect()`."""

Accept = Callable[[bytes], bool]
"""Decides, given a peer's authenticated node public key, whether to keep the connection."""


class _Direction:
    """One direction of a link: its key and the counter that gives the next nonce."""

    __slots__ = ("key", "counter")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.counter = 0

    def next_nonce(self) -> bytes:
        if self.counter > NONCE_COUNTER_MAX:
            # Unreachable in practice (2^64 frames); a reused nonce would leak plaintext, so stop.
            raise ConnectionClosed("nonce counter exhausted")
        nonce = self.counter.to_bytes(NONCE_BYTES, "big")
        self.counter += 1
        return nonce


class SecretConnection:
    """An established link: send and receive opaque payloads, each in one sealed frame.

    Build one with `handshake()` or `connect()`; the constructor takes already derived keys and
    exists for them and for tests. One task may receive at a time; sends may come from several
    tasks, since each frame is sealed and written in one synchronous step.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        local_key: bytes,
        remote_key: bytes,
        send_key: bytes,
        receive_key: bytes,
        frame_bytes_max: int = frame_bytes_max_default,
        read_timeout_ms: int = read_timeout_ms_default,
        write_timeout_ms: int = write_timeout_ms_default,
    ) -> None:
        if frame_bytes_max <= 0 or read_timeout_ms <= 0 or write_timeout_ms <= 0:
            raise ValueError("frame_bytes_max, read_timeout_ms and write_timeout_ms must be positive")
        self._reader = reader
        self._writer = writer
        self._send = _Direction(send_key)
        self._receive = _Direction(receive_key)
        self._local_key = local_key
        self._remote_key = remote_key
        self.frame_bytes_max = frame_bytes_max
        self.read_timeout_ms = read_timeout_ms
        self.write_timeout_ms = write_timeout_ms
        self._closed = False
        self._close_reason = ""
        self._receiving = False
        self.peername: object = writer.get_extra_info("peername")

    @property
    def local_key(self) -> bytes:
        """Our Ed25519 node public key (32 bytes)."""
        return self._local_key

    @property
    def remote_key(self) -> bytes:
        """The peer's Ed25519 node public key (32 bytes), proven during the handshake."""
        return self._remote_key

    @property
    def closed(self) -> bool:
        """True once either side has closed the link or an error has cut it."""
        return self._closed

    # -- sending --------------------------------------------------------------------------------

    async def send(self, payload: bytes) -> None:
        """Seal `payload` into one frame and write it; returns once the kernel has taken it.

        Raises FrameTooLarge (nothing written, link still usable) or ConnectionClosed (link cut,
        including when the peer does not read within the write timeout).
        """
        self._write_frame(payload)
        await self._drain()

    def _write_frame(self, payload: bytes) -> None:
        if self._closed or self._writer.is_closing():
            raise ConnectionClosed(self._close_reason or "connection is closed")
        if len(payload) > self.frame_bytes_max:
            raise FrameTooLarge(len(payload), self.frame_bytes_max)
        header = (len(payload) + TAG_BYTES).to_bytes(LENGTH_PREFIX_BYTES, "big")
        try:
            nonce = self._send.next_nonce()
        except ConnectionClosed:
            self.close()
            raise
        sealed = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
            payload, header, nonce, self._send.key
        )
        # One write per frame, with no await between the nonce and the write: frames from
        # several tasks can never interleave or go out of nonce order.
        self._writer.write(header + sealed)

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self.write_timeout_ms / 1000):
                await self._writer.drain()
        except TimeoutError:
            reason = f"peer did not read for {self.write_timeout_ms} ms"
            self.close(reason)
            raise ConnectionClosed(reason) from None
        except (ConnectionError, OSError, RuntimeError) as exc:
            # RuntimeError: drain() on a transport that another task just aborted.
            reason = f"write failed: {exc!r}"
            self.close(reason)
            raise ConnectionClosed(reason) from exc

    # -- receiving ------------------------------------------------------------------------------

    async def receive(self) -> bytes:
        """Read, authenticate and open the next frame; returns its payload.

        Raises ReadTimeout or ConnectionClosed (EOF, reset, closed here), FrameTooLarge or
        FrameAuthenticationError; after any of them the link is closed.
        """
        if self._receiving:
            raise AssertionError("two tasks are receiving on one SecretConnection")
        self._receiving = True
        try:
            return await self._receive_frame(self.frame_bytes_max + TAG_BYTES, exact=False)
        finally:
            self._receiving = False

    async def _receive_frame(self, sealed_bytes_max: int, *, exact: bool) -> bytes:
        if self._closed:
            raise ConnectionClosed(self._close_reason)
        header_consumed = False
        try:
            header = await self._read_exactly(LENGTH_PREFIX_BYTES)
            header_consumed = True
            sealed_bytes = int.from_bytes(header, "big")
            if sealed_bytes > sealed_bytes_max:
                raise FrameTooLarge(sealed_bytes - TAG_BYTES, sealed_bytes_max - TAG_BYTES)
            if sealed_bytes < TAG_BYTES or (exact and sealed_bytes != sealed_bytes_max):
                raise FrameAuthenticationError(f"frame of {sealed_bytes} sealed bytes cannot be valid here")
            sealed = await self._read_exactly(sealed_bytes)
            try:
                payload = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
                    sealed, header, self._receive.next_nonce(), self._receive.key
                )
            except nacl.exceptions.CryptoError:
                raise FrameAuthenticationError(
                    "frame failed authentication (tampered, replayed or reordered)"
                ) from None
        except P2PError as exc:
            self.close(str(exc))
            raise
        except asyncio.CancelledError:
            # Cancelled between the length and the body: the stream position is lost for good.
            if header_consumed:
                self.close()
            raise
        if self._closed:
            # Closed locally while we waited: buffered frames must not surface after a close.
            raise ConnectionClosed(self._close_reason)
        return payload

    async def _read_exactly(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(self.read_timeout_ms / 1000):
                return await self._reader.readexactly(size)
        except TimeoutError:
            raise ReadTimeout(f"nothing read for {self.read_timeout_ms} ms") from None
        except asyncio.IncompleteReadError:
            # EOF also follows our own close(): then its reason is the one worth reporting.
            raise ConnectionClosed(self._close_reason or "peer closed the connection") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(f"read failed: {exc!r}") from exc

    # -- closing --------------------------------------------------------------------------------

    def close(self, reason: str = "closed locally") -> None:
        """Cut the link now: unsent bytes are dropped, a pending receive ends with ConnectionClosed(reason).

        Abort rather than a graceful close, because a graceful close waits for a peer that may
        never read, and we close mostly because the peer misbehaved or we are shutting down.
        """
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        transport = self._writer.transport
        if transport is not None:
            transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the transport has let go of the socket (call after close())."""
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass  # The reset that made us close; nothing left to report.

    def __repr__(self) -> str:
        return f"SecretConnection(remote={self._remote_key.hex()[:16]}, peer={self.peername}, closed={self._closed})"


# ---------------------------------------------------------------------------------------------
# Handshake.


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length_bytes: int) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length_bytes`."""
    if length_bytes > 255 * 32:
        raise ValueError("HKDF-SHA256 gives at most 8160 bytes")
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length_bytes:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length_bytes]


def derive_secrets(
    local_ephemeral_public: bytes, remote_ephemeral_public: bytes, shared_secret: bytes
) -> tuple[bytes, bytes, bytes]:
    """Return (send key, receive key, challenge) for the side whose ephemeral key is `local_...`.

    Both ends feed the same sorted pair into HKDF, so they derive the same three values and
    assign the two keys crosswise: what one side sends with, the other receives with.
    """
    lo, hi = sorted((local_ephemeral_public, remote_ephemeral_public))
    okm = hkdf_sha256(shared_secret, salt=KDF_SALT, info=lo + hi, length_bytes=96)
    key_of_lo, key_of_hi, challenge = okm[:32], okm[32:64], okm[64:]
    if local_ephemeral_public == lo:
        return key_of_lo, key_of_hi, challenge
    return key_of_hi, key_of_lo, challenge


def auth_payload(network_id: bytes, signer_ephemeral_public: bytes, challenge: bytes) -> bytes:
    """What a node key signs in the handshake: the domain, the network, ITS OWN side, the challenge.

    The challenge alone is the same on both sides, so a signature over it says nothing about who
    made it; with the signer's own ephemeral key in, a signature made on one side of a handshake
    never verifies as the other side's (a reflection fails), and with the network id in, a
    signature made for one chain never verifies for another.
    """
    return AUTH_DOMAIN + network_id + signer_ephemeral_public + challenge


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_key: nacl.signing.SigningKey,
    accept: Accept,
    *,
    network_id: bytes = NO_NETWORK,
    frame_bytes_max: int = frame_bytes_max_default,
    hello_timeout_ms: int = hello_timeout_ms_default,
    handshake_timeout_ms: int = handshake_timeout_ms_default,
    read_timeout_ms: int = read_timeout_ms_default,
    write_timeout_ms: int = write_timeout_ms_default,
) -> SecretConnection:
    """Authenticate both ends over a fresh stream pair and return the encrypted link.

    `accept(remote_key)` runs once the peer has proven its node key for our `network_id` (the
    genesis hash; 32 bytes); False refuses it. On any failure the stream is closed and a
    HandshakeError is raised: HandshakeTimeout when the hello or the rest came late,
    SelfConnection when the peer presented our own key, NetworkMismatch when it is on another
    network, UnknownPeer when we refused its key, RefusedByPeer when it refused ours, a plain
    HandshakeError for everything else.
    """
    if min(frame_bytes_max, hello_timeout_ms, handshake_timeout_ms, read_timeout_ms, write_timeout_ms) <= 0:
        raise ValueError("frame_bytes_max and the timeouts must be positive")
    if len(network_id) != NETWORK_ID_BYTES:
        raise ValueError(f"network_id must be {NETWORK_ID_BYTES} bytes, got {len(network_id)}")
    hello_timeout_ms = min(hello_timeout_ms, handshake_timeout_ms)
    ephemeral = nacl.public.PrivateKey.generate()
    local_ephemeral_public = bytes(ephemeral.public_key)
    local_key = bytes(node_key.verify_key)
    # Reads inside the handshake are bounded by the handshake deadline, not the idle timeout.
    conn: SecretConnection | None = None
    try:
        async with asyncio.timeout(handshake_timeout_ms / 1000):
            writer.write(MAGIC + local_ephemeral_public)
            await writer.drain()
            try:
                async with asyncio.timeout(hello_timeout_ms / 1000):
                    hello = await reader.readexactly(HELLO_BYTES)
            except TimeoutError:
                raise HandshakeTimeout("hello", hello_timeout_ms) from None
            if hello[: len(MAGIC)] != MAGIC:
                raise HandshakeError(f"not a secledger link (got {hello[: len(MAGIC)]!r})")
            remote_ephemeral_public = hello[len(MAGIC) :]
            if remote_ephemeral_public == local_ephemeral_public:
                raise HandshakeError("peer reflected our ephemeral key")
            shared_secret = _x25519(bytes(ephemeral), remote_ephemeral_public)
            send_key, receive_key, challenge = derive_secrets(
                local_ephemeral_public, remote_ephemeral_public, shared_secret
            )
            conn = SecretConnection(
                reader,
                writer,
                local_key=local_key,
                remote_key=b"",
                send_key=send_key,
                receive_key=receive_key,
                frame_bytes_max=AUTH_BYTES,
                read_timeout_ms=handshake_timeout_ms,
                write_timeout_ms=handshake_timeout_ms,
            )
            signature = node_key.sign(auth_payload(network_id, local_ephemeral_public, challenge)).signature
            await conn.send(local_key + network_id + signature)
            auth = await conn._receive_frame(AUTH_BYTES + TAG_BYTES, exact=True)
            remote_key = auth[:NODE_KEY_BYTES]
            remote_network = auth[NODE_KEY_BYTES : NODE_KEY_BYTES + NETWORK_ID_BYTES]
            remote_signature = auth[NODE_KEY_BYTES + NETWORK_ID_BYTES :]
            refusal: HandshakeError | None = None
            if remote_key == local_key:
                # Our own key back: a reflection of our auth frame (its signature could not verify
                # over the peer's ephemeral key anyway), or a relay that looped us to ourselves.
                refusal = SelfConnection(remote_key)
            else:
                try:
                    nacl.signing.VerifyKey(remote_key).verify(
                        auth_payload(remote_network, remote_ephemeral_public, challenge), remote_signature
                    )
                except (nacl.exceptions.BadSignatureError, ValueError) as exc:
                    raise HandshakeError(f"bad handshake signature from {remote_key.hex()}") from exc
                if remote_network != network_id:
                    refusal = NetworkMismatch(remote_key, network_id, remote_network)
                elif not accept(remote_key):
                    refusal = UnknownPeer(remote_key)
            conn._remote_key = remote_key
            # A refusal is sent too, so the peer logs a refusal rather than a reset.
            await conn.send(VERDICT_REFUSE if refusal is not None else VERDICT_ACCEPT)
            if refusal is not None:
                # Read the peer's verdict before closing: closing a socket with unread bytes
                # sends a reset, which may destroy our refusal before the peer reads it.
                with contextlib.suppress(P2PError):
                    await conn._receive_frame(len(VERDICT_ACCEPT) + TAG_BYTES, exact=True)
                raise refusal
            verdict = await conn._receive_frame(len(VERDICT_ACCEPT) + TAG_BYTES, exact=True)
            if verdict == VERDICT_REFUSE:
                raise RefusedByPeer(remote_key, local_key)
            if verdict != VERDICT_ACCEPT:
                raise HandshakeError(f"peer {remote_key.hex()} sent an unknown verdict {verdict!r}")
    except HandshakeError:
        _abort(writer, conn)
        raise
    except TimeoutError:
        _abort(writer, conn)
        raise HandshakeTimeout("handshake", handshake_timeout_ms) from None
    except asyncio.IncompleteReadError:
        _abort(writer, conn)
        raise HandshakeError("peer closed the connection during the handshake") from None
    except (P2PError, ConnectionError, OSError, RuntimeError) as exc:
        # P2PError: a frame error inside the handshake; RuntimeError: drain on an aborted transport.
        _abort(writer, conn)
        raise HandshakeError(f"handshake failed: {exc}") from exc
    except BaseException:
        _abort(writer, conn)  # Cancelled: leave no half-open socket behind, then propagate.
        raise
    conn.frame_bytes_max = frame_bytes_max
    conn.read_timeout_ms = read_timeout_ms
    conn.write_timeout_ms = write_timeout_ms
    return conn


async def connect(
    host: str,
    port: int,
    node_key: nacl.signing.SigningKey,
    accept: Accept,
    *,
    network_id: bytes = NO_NETWORK,
    dial_timeout_ms: int = dial_timeout_ms_default,
    frame_bytes_max: int = frame_bytes_max_default,
    hello_timeout_ms: int = hello_timeout_ms_default,
    handshake_timeout_ms: int = handshake_timeout_ms_default,
    read_timeout_ms: int = read_timeout_ms_default,
    write_timeout_ms: int = write_timeout_ms_default,
) -> SecretConnection:
    """Dial `host:port` over TCP and run the handshake; raises HandshakeError or ConnectionClosed."""
    try:
        async with asyncio.timeout(dial_timeout_ms / 1000):
            reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise ConnectionClosed(f"connect to {host}:{port} not done within {dial_timeout_ms} ms") from None
    except OSError as exc:
        raise ConnectionClosed(f"connect to {host}:{port} failed: {exc}") from exc
    return await handshake(
        reader,
        writer,
        node_key,
        accept,
        network_id=network_id,
        frame_bytes_max=frame_bytes_max,
        hello_timeout_ms=hello_timeout_ms,
        handshake_timeout_ms=handshake_timeout_ms,
        read_timeout_ms=read_timeout_ms,
        write_timeout_ms=write_timeout_ms,
    )


def _x25519(secret: bytes, public: bytes) -> bytes:
    try:
        shared = nacl.bindings.crypto_scalarmult(secret, public)
    except (RuntimeError, nacl.exceptions.RuntimeError) as exc:
        # libsodium refuses low-order points, whose product is all zeros and secret to nobody.
        raise HandshakeError("peer sent a low-order ephemeral key") from exc
    if shared == bytes(len(shared)):
        raise HandshakeError("peer sent a low-order ephemeral key")
    return shared


def _abort(writer: asyncio.StreamWriter, conn: SecretConnection | None) -> None:
    if conn is not None:
        conn.close()
        return
    transport = writer.transport
    if transport is not None:
        transport.abort()
