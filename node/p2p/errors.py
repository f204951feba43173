"""The errors of the peer-link layer: one root, split by what went wrong on the wire.

Every failure that a peer (or the network) can cause comes out as a `P2PError`. Anything else
escaping `node.p2p` is a bug in this package, and the tests treat it as one.

    P2PError
    ├── HandshakeError          the handshake failed (bad bytes, bad signature, timeout, refused by peer)
    │   └── UnknownPeer         the peer authenticated, but its node key is not one we accept
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


class UnknownPeer(HandshakeError):
    """The peer proved it holds `key_hex`'s private key, but that key is not accepted here."""

    def __init__(self, key: bytes, reason: str = "node key not on the allow-list") -> None:
        self.key = key
        self.key_hex = key.hex()
        super().__init__(f"{reason}: {self.key_hex}")


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
