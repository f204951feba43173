"""The node's memory of admitted transactions, for the "replaced" status (docs/RPC.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.mempool.seen_txs import Replacement, SeenTransactions

S, T = b"\x01" * 32, b"\x02" * 32


@dataclass(frozen=True)
class Committed:
    tx_hash: bytes
    signer: bytes
    nonce: int


def h(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_a_committed_nonce_replaces_every_other_hash_of_that_signer_and_nonce() -> None:
    seen = SeenTransactions()
    for tx_hash, signer, nonce in ((h(1), S, 5), (h(2), S, 5), (h(3), S, 6), (h(4), T, 5)):
        seen.note(tx_hash, signer, nonce)
    seen.note(h(1), S, 5)  # again: no change
    assert len(seen) == 4
    assert seen.on_commit(9, [Committed(h(1), S, 5)]) == [h(2)]
    assert seen.replaced(h(2)) == Replacement(h(2), S, 5, h(1), 9)
    assert seen.replaced(h(1)) is None  # the winner is in the ledger
    assert seen.replaced(h(3)) is None and seen.replaced(h(4)) is None  # other nonce, other signer
    assert len(seen) == 2
    # a commit of a transaction this node never saw settles the nonce just the same
    assert seen.on_commit(10, [Committed(h(9), S, 6), Committed(h(8), T, 5)]) == [h(3), h(4)]
    assert seen.replaced(h(4)).replaced_by == h(8) and len(seen) == 0


def test_both_memories_are_bounded_oldest_out() -> None:
    seen = SeenTransactions(seen_max=3, replaced_max=2)
    for n in range(5):
        seen.note(h(n), S, n)
    assert len(seen) == 3  # 0 and 1 forgotten
    assert seen.on_commit(1, [Committed(h(100), S, 0)]) == []  # forgotten: not known as replaced
    replaced = seen.on_commit(2, [Committed(h(100 + n), S, n) for n in (2, 3, 4)])
    assert replaced == [h(2), h(3), h(4)]
    assert seen.replaced(h(2)) is None and seen.replaced(h(3)) and seen.replaced(h(4))
    with pytest.raises(ValueError):
        SeenTransactions(seen_max=0)
