"""The ledger's expected errors, one tree.

Anything that is the sender's fault (bytes that are not a valid transaction, a block that breaks
the chain's rules) is a `LedgerError`. A transaction that is well formed but breaks a securities
rule is *not* an exception: it is recorded with a receipt and a reason code (see `reasons`).
An impossible internal state is an `AssertionError`, never part of this tree.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every expected ledger error."""


# --- transactions: refused before they can enter a block -------------------------------------


class InvalidTransaction(LedgerError):
    """A transaction that can never be included in a block."""


class MalformedTransaction(InvalidTransaction):
    """Bytes that do not decode to a transaction envelope of the right shape."""


class TransactionTooLarge(InvalidTransaction):
    """More bytes than `TX_BYTES_MAX`."""


class NonCanonicalEncoding(InvalidTransaction):
    """Decodes, but re-encoding gives other bytes: a second spelling of some transaction."""


class IntegerOutOfBounds(InvalidTransaction):
    """An integer field outside its stated bounds."""


class UnknownKind(InvalidTransaction):
    """A transaction kind this ledger does not know."""


class InvalidBody(InvalidTransaction):
    """The body does not match its kind's schema (missing, extra or mistyped fields)."""


class WrongChain(InvalidTransaction):
    """Signed for another chain id."""


class BadSignature(InvalidTransaction):
    """The Ed25519 signature does not verify for the signer's key."""


class NonceMismatch(InvalidTransaction):
    """The nonce is not the signer's next one: replayed (stale) or from the future."""

    def __init__(self, message: str, *, expected: int, got: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got

    @property
    def stale(self) -> bool:
        return self.got < self.expected


# --- blocks: refused as a whole -----------------------------------------------------------------


class InvalidBlock(LedgerError):
    """A block that breaks the chain's rules; nothing of it is applied."""


class StateRootMismatch(LedgerError):
    """This node computed another state root than the one the chain certified. Stop and say so."""


# --- genesis and store --------------------------------------------------------------------------


class InvalidGenesis(LedgerError):
    """A genesis document that cannot start a chain."""


class StoreError(LedgerError):
    """The store is not the one expected (other chain, not initialised, corrupted)."""


class NotFound(LedgerError):
    """A query for something that does not exist."""
