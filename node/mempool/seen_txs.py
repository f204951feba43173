"""Transactions this node admitted, remembered by (signer, nonce) until a block settles that nonce.

A nonce is used once: when a block commits a transaction of signer S with nonce n, every other
transaction of S with nonce n can never commit. A client that submitted one of those (to this node,
or to another validator while a different one won) would otherwise wait for it until its timeout
and then hear "not found". The node remembers what it admitted (its clients' transactions and its
peers' gossip) by hash, signer and nonce; at each commit, a remembered hash whose (signer, nonce)
the block used for another hash becomes *replaced*, by that hash. `tx_get` and `tx_wait` answer it.

Both memories are bounded by count, oldest out (docs/RPC.md, "Replaced transactions"), and live in
memory only: after a restart, a transaction admitted before it is not known as replaced.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

#: Admitted transactions whose nonce no block has used yet, remembered at most.
SEEN_MAX: int = 50_000
#: Replaced transactions remembered at most (for tx_get after the fact).
REPLACED_MAX: int = 50_000


class Settled(Protocol):
    """A committed transaction, as a block's receipt gives it."""

    tx_hash: bytes
    signer: bytes
    nonce: int


@dataclass(frozen=True, slots=True)
class Replacement:
    """`tx_hash` can never commit: `replaced_by`, of the same signer and nonce, committed at `height`."""

    tx_hash: bytes
    signer: bytes
    nonce: int
    replaced_by: bytes
    height: int


class SeenTransactions:
    def __init__(self, *, seen_max: int = SEEN_MAX, replaced_max: int = REPLACED_MAX) -> None:
        if seen_max < 1 or replaced_max < 1:
            raise ValueError("bounds must be positive")
        self.seen_max = seen_max
        self.replaced_max = replaced_max
        self._seen: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self._by_slot: dict[tuple[bytes, int], set[bytes]] = {}
        self._replaced: OrderedDict[bytes, Replacement] = OrderedDict()

    def __len__(self) -> int:
        """Transactions remembered as admitted and not yet settled."""
        return len(self._seen)

    def note(self, tx_hash: bytes, signer: bytes, nonce: int) -> None:
        """Remember an admitted transaction (again: no change)."""
        if tx_hash in self._seen:
            return
        self._seen[tx_hash] = (signer, nonce)
        self._by_slot.setdefault((signer, nonce), set()).add(tx_hash)
        while len(self._seen) > self.seen_max:
            old_hash, slot = self._seen.popitem(last=False)
            self._forget_slot(slot, old_hash)

    def on_commit(self, height: int, committed: Iterable[Settled]) -> list[bytes]:
        """Settle the nonces a block used; returns the hashes it made replaced."""
        replaced: list[bytes] = []
        if not self._by_slot:
            return replaced
        for tx in committed:
            hashes = self._by_slot.pop((tx.signer, tx.nonce), None)
            if hashes is None:
                continue
            for tx_hash in hashes:
                del self._seen[tx_hash]
                if tx_hash == tx.tx_hash:
                    continue  # the winner itself: the ledger answers for it now
                self._replaced[tx_hash] = Replacement(tx_hash, tx.signer, tx.nonce, tx.tx_hash, height)
                replaced.append(tx_hash)
        while len(self._replaced) > self.replaced_max:
            self._replaced.popitem(last=False)
        return replaced

    def replaced(self, tx_hash: bytes) -> Replacement | None:
        return self._replaced.get(tx_hash)

    def _forget_slot(self, slot: tuple[bytes, int], tx_hash: bytes) -> None:
        hashes = self._by_slot.get(slot)
        if hashes is not None:
            hashes.discard(tx_hash)
            if not hashes:
                del self._by_slot[slot]
