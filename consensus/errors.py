"""The consensus package's exceptions, split by blame as h11 does.

``PeerError``: something another party sent us is wrong (malformed bytes, a bad signature, a signer
outside the validator set, a certificate or evidence that does not verify). The core counts and drops
these; decoders and verifiers raise them for the node to do the same.

``LocalError``: we (the caller of this package) did something wrong, or a guard refused to act for
us (the double-sign guard). Any other exception escaping the package is a bug: tests treat it so.
"""

from __future__ import annotations


class ConsensusError(Exception):
    """Root of every expected error in ``consensus``."""


class PeerError(ConsensusError):
    """Input from another party is wrong; drop it and count it, never trust it."""


class MalformedMessage(PeerError, ValueError):
    """Bytes or fields that are not a canonical, in-bounds consensus message."""


class InvalidSignature(PeerError):
    """A signature that does not verify against the claimed signer's key."""


class UnknownValidator(PeerError):
    """A signer that is not in the validator set."""


class InvalidCertificate(PeerError):
    """A commit certificate that does not prove a +2/3 precommit quorum."""


class InvalidEvidence(PeerError):
    """Evidence that does not show two conflicting, validly signed messages."""


class LocalError(ConsensusError):
    """We asked for something wrong; the fault is on this side of the wire."""


class UsageError(LocalError):
    """The caller broke the core's interface contract (wrong type, call out of order)."""


class DoubleSignRefused(LocalError):
    """The signer refused: signing this would conflict with what it signed before."""


class InternalError(AssertionError):
    """An impossible state inside the core: a bug, never part of the expected error tree."""
