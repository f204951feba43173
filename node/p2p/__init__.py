"""Peer links of a secledger node: authenticated encrypted TCP links and the manager that keeps them.

`secret_connection` is one link (handshake, sealed frames); `peers` is the `PeerManager` that
listens, dials, deduplicates and carries the node's opaque messages; `admission` decides which
inbound connections may start a handshake and how refusals are logged. docs/P2P.md has the protocol.
"""

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
from node.p2p.peers import PeerAddress, PeerConfig, PeerManager, PeerStats
from node.p2p.secret_connection import NETWORK_ID_BYTES, SecretConnection, connect, handshake

__all__ = [
    "NETWORK_ID_BYTES",
    "ConnectionClosed",
    "FrameAuthenticationError",
    "FrameTooLarge",
    "HandshakeError",
    "HandshakeTimeout",
    "NetworkMismatch",
    "P2PError",
    "PeerAddress",
    "PeerConfig",
    "PeerManager",
    "PeerStats",
    "ReadTimeout",
    "RefusedByPeer",
    "SecretConnection",
    "SelfConnection",
    "UnknownPeer",
    "connect",
    "handshake",
]
