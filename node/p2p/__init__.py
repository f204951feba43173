"""Peer links of a secledger node: authenticated encrypted TCP links and the manager that keeps them.

`secret_connection` is one link (handshake, sealed frames); `peers` is the `PeerManager` that
listens, dials, deduplicates and carries the node's opaque messages. docs/P2P.md has the protocol.
"""

from node.p2p.errors import (
    ConnectionClosed,
    FrameAuthenticationError,
    FrameTooLarge,
    HandshakeError,
    P2PError,
    ReadTimeout,
    UnknownPeer,
)
from node.p2p.peers import PeerAddress, PeerConfig, PeerManager, PeerStats
from node.p2p.secret_connection import SecretConnection, connect, handshake

__all__ = [
    "ConnectionClosed",
    "FrameAuthenticationError",
    "FrameTooLarge",
    "HandshakeError",
    "P2PError",
    "PeerAddress",
    "PeerConfig",
    "PeerManager",
    "PeerStats",
    "ReadTimeout",
    "SecretConnection",
    "UnknownPeer",
    "connect",
    "handshake",
]
