"""The mempool: transactions admitted but not yet in a block, bounded in count and bytes.

Admission decodes the transaction (canonical form, size, chain id, signature), checks its nonce
against the committed state plus everything already pending, and dry-runs the rules on that same
pending state, so a client hears at once why a transfer would fail. Each admitted transaction is
executed onto a pending overlay of the state; after every commit the overlay is rebuilt from the
new state and the transactions that remain. Every refusal names its reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping

import lmdb

from ledger import Ledger, Transaction, decode_transaction, layout
from ledger import errors as ledger_errors
from ledger.execution import execute_if_accepted, execute_transaction
from ledger.reasons import Outcome
from ledger.state import State

#: Default bounds; the node's config overrides them.
TXS_MAX: int = 20_000
BYTES_MAX: int = 64 * 1024 * 1024

_DECODE_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (ledger_errors.TransactionTooLarge, "too_large"),
    (ledger_errors.NonCanonicalEncoding, "non_canonical"),
    (ledger_errors.IntegerOutOfBounds, "integer_out_of_bounds"),
    (ledger_errors.UnknownKind, "unknown_kind"),
    (ledger_errors.InvalidBody, "invalid_body"),
    (ledger_errors.WrongChain, "wrong_chain"),
    (ledger_errors.BadSignature, "bad_signature"),
    (ledger_errors.MalformedTransaction, "malformed"),
)

REFUSAL_REASONS: tuple[str, ...] = tuple(name for _, name in _DECODE_REASONS) + (
    "stale_nonce", "nonce_gap", "already_committed", "duplicate", "full", "rule",
)


class MempoolRefusal(Exception):
    """Why a transaction was not admitted. `reason` is one of `REFUSAL_REASONS`; a refusal by the
    rules carries the `outcome` (reason code) that execution would give."""

    def __init__(self, reason: str, message: str, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.outcome = outcome


class Mempool:
    def __init__(self, ledger: Ledger, *, txs_max: int = TXS_MAX, bytes_max: int = BYTES_MAX) -> None:
        self.ledger = ledger
        self.txs_max = txs_max
        self.bytes_max = bytes_max
        self._pending: OrderedDict[bytes, Transaction] = OrderedDict()
        self._bytes = 0
        self._gossiped: set[bytes] = set()  # pending transactions that came from peers
        self._in_proposal: set[bytes] = set()  # in a proposed block this node judged valid
        self._txn: lmdb.Transaction | None = None
        self._overlay = self._fresh_overlay()
        # For metrics (node/ops/metrics.py), by source ("client" or "peer"); they only go up.
        self.admissions: Counter[str] = Counter()
        self.refusals: Counter[tuple[str, str]] = Counter()  # (source, reason)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._pending

    @property
    def transactions(self) -> Mapping[bytes, Transaction]:
        """Pending transactions by hash, decoded and checked: the ledger need not decode them again."""
        return self._pending

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        if self._txn is not None:
            self._txn.abort()
            self._txn = None

    def add(self, raw: bytes, *, check_rules: bool = True) -> Transaction:
        """Admit `raw` or raise `MempoolRefusal`. Transactions gossiped by peers are admitted with
        `check_rules=False`: a rule refusal is still recorded on chain, and the peer's view decides."""
        source = "client" if check_rules else "peer"
        try:
            tx = self.admit(self.decode(raw, verify_signature=True), check_rules=check_rules)
        except MempoolRefusal as refusal:
            self.refusals[source, refusal.reason] += 1
            raise
        self.admissions[source] += 1
        return tx

    def decode(self, raw: bytes, *, verify_signature: bool) -> Transaction:
        """The first half of admission: bounds, duplicates, and the transaction's own form. A node
        may decode without the signature, check it on a worker thread, then `admit`."""
        digest = hashlib.sha256(raw).digest()
        if digest in self._pending:
            raise MempoolRefusal("duplicate", "already in the mempool")
        if self._committed(digest):
            # Typically gossip that arrives after the block that holds it: skip the signature check.
            raise MempoolRefusal("already_committed", "this transaction is already in a block")
        if digest in self._in_proposal:
            # Gossip that arrives after a proposal that holds it, which this node already checked.
            raise MempoolRefusal("duplicate", "already in a proposed block")
        self._check_room(len(raw))
        try:
            return decode_transaction(raw, chain_id=self.ledger.chain_id, verify_signature=verify_signature)
        except ledger_errors.InvalidTransaction as exc:
            raise MempoolRefusal(_decode_reason(exc), str(exc)) from None

    def admit(self, tx: Transaction, *, check_rules: bool = True) -> Transaction:
        """The second half: a decoded transaction whose signature was checked."""
        if tx.hash in self._pending:
            raise MempoolRefusal("duplicate", "already in the mempool")
        self._check_room(len(tx.raw))
        expected = self._overlay.get(layout.nonce(tx.signer), 0)
        if tx.nonce < expected:
            if self._committed(tx.hash):
                raise MempoolRefusal("already_committed", "this transaction is already in a block")
            raise MempoolRefusal("stale_nonce", f"nonce {tx.nonce} already used; next is {expected}")
        if tx.nonce > expected:
            raise MempoolRefusal("nonce_gap", f"nonce {tx.nonce} skips ahead; next is {expected}")
        if check_rules:
            outcome = execute_if_accepted(self._overlay, tx, time_s=self._time_s(), height=self.ledger.tip.height + 1)
            if not outcome.ok:
                raise MempoolRefusal("rule", f"the rules refuse it: {outcome}", outcome)
        else:
            self._overlay_nonce(tx)
            self._gossiped.add(tx.hash)
        self._pending[tx.hash] = tx
        self._bytes += len(tx.raw)
        return tx

    def _check_room(self, size: int) -> None:
        if len(self._pending) >= self.txs_max or self._bytes + size > self.bytes_max:
            raise MempoolRefusal("full", f"mempool full ({len(self._pending)} transactions, {self._bytes} bytes)")

    def reap(self, *, txs_max: int, bytes_max: int) -> tuple[bytes, ...]:
        """Transactions for the next block, in admission order (so each signer's nonces ascend)."""
        out: list[bytes] = []
        size = 0
        for tx in self._pending.values():
            if len(out) >= txs_max or size + len(tx.raw) > bytes_max:
                break
            out.append(tx.raw)
            size += len(tx.raw)
        return tuple(out)

    def update(self, committed: Iterable[bytes]) -> None:
        """After a block: drop what it included, then rebuild the pending state over the new tip;
        a remaining transaction whose nonce no longer fits is dropped."""
        self._in_proposal.clear()
        for tx_hash in committed:
            tx = self._pending.pop(tx_hash, None)
            if tx is not None:
                self._bytes -= len(tx.raw)
                self._gossiped.discard(tx_hash)
        self._overlay = self._fresh_overlay()
        for tx_hash, tx in list(self._pending.items()):
            if self._overlay.get(layout.nonce(tx.signer), 0) != tx.nonce:
                del self._pending[tx_hash]
                self._bytes -= len(tx.raw)
                self._gossiped.discard(tx_hash)
                continue
            if tx_hash in self._gossiped:
                self._overlay_nonce(tx)
            else:
                self._execute(tx)

    def note_proposed(self, txs: Iterable[Transaction]) -> None:
        """Transactions of a proposal this node validated (decoded, signatures checked). Those not
        pending here are admitted as if gossiped: their nonces enter the pending state, so the same
        senders' next transactions, gossiped before this block commits, fit instead of being refused
        as a nonce gap (and then checked again, on the critical path, in the next proposal). Their
        own gossip, arriving late, is not decoded and checked a second time."""
        for tx in txs:
            if tx.hash in self._pending:
                continue
            try:
                self.admit(tx, check_rules=False)
            except MempoolRefusal:
                self._in_proposal.add(tx.hash)

    def pending_nonce(self, address: bytes) -> int:
        """The nonce `address` should sign with next: committed ones plus those pending here."""
        return self._overlay.get(layout.nonce(address), 0)

    # --- private --------------------------------------------------------------------------------

    def _fresh_overlay(self) -> State:
        self.close()
        self._txn = self.ledger.store.read()
        return self.ledger.store.state_over(self._txn)

    def _time_s(self) -> int:
        return self.ledger.tip.time_ms // 1000

    def _overlay_nonce(self, tx: Transaction) -> None:
        # A peer's transaction: only its nonce enters the pending state. Executing it too would
        # cost every validator a third run of each transaction; the price is that a dry run here
        # does not see the effects of other nodes' pending transactions (docs/NODE.md).
        self._overlay.begin_transaction()
        self._overlay.set(layout.nonce(tx.signer), tx.nonce + 1)
        self._overlay.commit_transaction()

    def _execute(self, tx: Transaction) -> None:
        execute_transaction(self._overlay, tx, time_s=self._time_s(), height=self.ledger.tip.height + 1)

    def _committed(self, tx_hash: bytes) -> bool:
        # Not through the pending state's snapshot: the tx index is a projection, written after the
        # block; the ledger finds a committed transaction whether it is projected yet or not.
        return self.ledger.tx_location(tx_hash) is not None


def _decode_reason(exc: Exception) -> str:
    for kind, name in _DECODE_REASONS:
        if isinstance(exc, kind):
            return name
    return "malformed"
