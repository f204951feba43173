"""The errors of the peer-link layer: one root, split by what went wrong on the wire.

Every failure that a peer (or the network) can cause comes out as a `P2PError`. Anything else
escaping `node.p2p` is a bug in this package, and the tests treat it as one.

    P2PError
    ├── HandshakeError          the handshake failed (bad bytes, bad signature, timeout, refused by peer)
    │   ├── HandshakeTimeout    the hello, or the whole handshake, did not arrive in time
    │   ├── UnknownPeer         the peer authenticated, but its node key is not one we accept
    │   ├── RefusedByPeer       the peer refused our node key (its verdict was 0x00)
    │   ├── SelfConnection      the peer presented our own node key (a reflection, or a loop to ourselves)
    │   └── NetworkMismatch     the peer authenticated, but for another network (another genesis)
    ├── FrameTooLarge           a frame (or message) over the configured limit, sent or received
    ├── FrameAuthenticationError a frame failed AEAD authentication: tampered, replayed, reordered, dropped
    └── ConnectionClosed        the connection is closed (EOF, reset, local close, write timeout)
        └── ReadTimeout         nothing arrived within the read timeout
"""

from __future__ import annotations


class P2PError(Exception):
    """Root of every error the peer-link layer raises on purpose."""


class HandshakeError(P2PError):
    """The SecretConnection handshake failed; the connection is already closed."""


class HandshakeTimeout(HandshakeError):
    """The peer's hello (`stage` "hello") or the rest of the handshake (`stage` "handshake") was late."""

    def __init__(self, stage: str, timeout_ms: int) -> None:
        self.stage = stage
        self.timeout_ms = timeout_ms
        what = "no hello" if stage == "hello" else "handshake not done"
        super().__init__(f"{what} within {timeout_ms} ms")


class UnknownPeer(HandshakeError):
    """The peer proved it holds `key_hex`'s private key, but that key is not accepted here."""

    def __init__(self, key: bytes, reason: str = "node key not on the allow-list") -> None:
        self.key = key
        self.key_hex = key.hex()
        super().__init__(f"{reason}: {self.key_hex}")


class RefusedByPeer(HandshakeError):
    """The peer authenticated and then refused us: our key is not on its list (or we are its own)."""

    def __init__(self, key: bytes, local_key: bytes) -> None:
        self.key = key
        self.key_hex = key.hex()
        super().__init__(f"peer {self.key_hex} refused our node key {local_key.hex()}")


class SelfConnection(HandshakeError):
    """The peer proved (or replayed) our own node key: a reflection, or a link looped back to us."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.key_hex = key.hex()
        super().__init__(f"peer presented our own node key {self.key_hex}")


class NetworkMismatch(HandshakeError):
    """The peer authenticated for another network: its network id (the genesis hash) is not ours."""

    def __init__(self, key: bytes, local_network: bytes, remote_network: bytes) -> None:
        self.key = key
        self.key_hex = key.hex()
        self.local_network = local_network
        self.remote_network = remote_network
        super().__init__(
            f"peer {self.key_hex} is on network {remote_network.hex()}, we are on {local_network.hex()}"
        )


class FrameTooLarge(P2PError):
    """A frame or message is over the limit.

    Raised by a send before anything is written (the connection stays usable) and by a receive
    after reading only the 4-byte length (the connection is cut: the stream cannot be resynced).
    """

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"frame of {size_bytes} bytes is over the limit of {limit_bytes} bytes")


class FrameAuthenticationError(P2PError):
    """A received frame did not authenticate under the expected key and nonce; the connection is cut."""


class ConnectionClosed(P2PError):
    """The connection is closed, by the peer, by the network or by us."""


class ReadTimeout(ConnectionClosed):
    """No bytes arrived within the read timeout; the connection is cut."""
