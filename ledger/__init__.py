"""secledger's deterministic application: transactions, identities, tokens, rules, events, store.

It never sees a socket, a clock or a thread: time arrives as the block's timestamp. The node drives
it through `Ledger` (validate, apply, rebuild) and reads it through `queries`.
"""

from .block import Block, BlockHeader
from .chain import BlockResult, Ledger, Receipt
from .client import Signer
from .errors import (
    BadSignature,
    IntegerOutOfBounds,
    InvalidBlock,
    InvalidBody,
    InvalidGenesis,
    InvalidTransaction,
    LedgerError,
    MalformedTransaction,
    NonCanonicalEncoding,
    NonceMismatch,
    NotFound,
    StateRootMismatch,
    StoreError,
    TransactionTooLarge,
    UnknownKind,
    WrongChain,
)
from .genesis import Genesis, GenesisMember, GenesisObserver, GenesisValidator, Thresholds
from .reasons import Outcome
from .tx import Transaction, decode_transaction, sign_transaction

__all__ = [
    "BadSignature", "Block", "BlockHeader", "BlockResult", "Genesis", "GenesisMember", "GenesisObserver",
    "GenesisValidator", "Thresholds",
    "IntegerOutOfBounds", "InvalidBlock", "InvalidBody", "InvalidGenesis", "InvalidTransaction", "Ledger",
    "LedgerError", "MalformedTransaction", "NonCanonicalEncoding", "NonceMismatch", "NotFound", "Outcome",
    "Receipt", "Signer", "StateRootMismatch", "StoreError", "Transaction", "TransactionTooLarge",
    "UnknownKind", "WrongChain", "decode_transaction", "sign_transaction",
]
