"""Mempool admission: every refusal names its reason, bounds hold, commits prune it."""

from __future__ import annotations

import pytest

from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.mempool.pool import Mempool, MempoolRefusal


def refusal(mempool: Mempool, raw: bytes, **kwargs) -> MempoolRefusal:
    with pytest.raises(MempoolRefusal) as caught:
        mempool.add(raw, **kwargs)
    return caught.value


def test_admits_in_nonce_order_and_reports_pending_nonce(chain):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first, second = alice.transfer("ACME", chain.address("bob"), 1), alice.transfer("ACME", chain.address("bob"), 2)
    mempool.add(first)
    mempool.add(second)
    assert len(mempool) == 2 and mempool.pending_nonce(alice.address) == 2
    assert mempool.reap(txs_max=10, bytes_max=1 << 20) == (first, second)
    assert mempool.reap(txs_max=1, bytes_max=1 << 20) == (first,)
    assert mempool.reap(txs_max=10, bytes_max=len(first)) == (first,)


def test_each_refusal_has_its_reason(chain):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    good = alice.transfer("ACME", chain.address("bob"), 1)
    assert refusal(mempool, good[:-3]).reason == "malformed"
    assert refusal(mempool, b"\x00" * 20_000).reason == "too_large"
    forged = bytearray(good)
    forged[-1] ^= 1
    assert refusal(mempool, bytes(forged)).reason == "bad_signature"
    wrong_chain = Signer(key_for("alice"), "another-chain").transfer("ACME", chain.address("bob"), 1)
    assert refusal(mempool, wrong_chain).reason == "wrong_chain"
    ahead = Signer(key_for("alice"), chain.genesis.chain_id, alice.nonce + 5).transfer("ACME", chain.address("bob"), 1)
    assert refusal(mempool, ahead).reason == "nonce_gap"
    mempool.add(good)
    assert refusal(mempool, good).reason == "duplicate"
    too_much = alice.transfer("ACME", chain.address("bob"), 10_000)
    refused = refusal(mempool, too_much)
    assert refused.reason == "rule" and str(refused.outcome) == "0x52 insufficient_balance"
    # the refused transaction did not take the nonce: the next one reuses it
    alice.nonce -= 1
    assert mempool.add(alice.transfer("ACME", chain.address("bob"), 2))


def test_gossiped_transactions_skip_the_rule_dry_run(chain):
    mempool = Mempool(chain.ledger)
    doomed = chain.signer("alice").transfer("ACME", chain.address("bob"), 10_000)
    assert mempool.add(doomed, check_rules=False)  # recorded as rejected on chain, not lost
    assert mempool.pending_nonce(chain.address("alice")) == 1  # its nonce is taken in the pending state
    result = chain.commit(doomed)
    assert str(result.receipts[0].outcome) == "0x52 insufficient_balance"
    mempool.update(r.tx_hash for r in result.receipts)
    assert len(mempool) == 0 and mempool.pending_nonce(chain.address("alice")) == 1


def test_bounds_in_count_and_bytes(chain):
    alice = chain.signer("alice")
    raws = [alice.transfer("ACME", chain.address("bob"), 1) for _ in range(3)]
    by_count = Mempool(chain.ledger, txs_max=2)
    by_count.add(raws[0])
    by_count.add(raws[1])
    assert refusal(by_count, raws[2]).reason == "full"
    by_bytes = Mempool(chain.ledger, bytes_max=len(raws[0]) + 10)
    by_bytes.add(raws[0])
    assert refusal(by_bytes, raws[1]).reason == "full"


def test_commit_prunes_and_pending_state_follows_the_chain(chain):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first = alice.transfer("ACME", chain.address("bob"), 60)
    second = alice.transfer("ACME", chain.address("bob"), 30)
    mempool.add(first)
    mempool.add(second)
    # A third that only fits if both pending transfers are counted: 100 - 60 - 30 = 10.
    assert refusal(mempool, alice.transfer("ACME", chain.address("bob"), 11)).outcome.reason == "insufficient_balance"
    alice.nonce -= 1
    result = chain.commit(first)
    mempool.update(r.tx_hash for r in result.receipts)
    assert len(mempool) == 1 and mempool.pending_nonce(alice.address) == 2
    assert refusal(mempool, first).reason == "already_committed"
    stale = chain.signer("kyc")
    kyc_tx = stale.grant_claim("alice", "accredited", FAR_FUTURE_S)
    chain.commit(kyc_tx)
    mempool.update([])
    assert refusal(mempool, kyc_tx).reason == "already_committed"


def test_a_validated_proposal_takes_its_senders_nonces_so_their_next_gossip_fits(chain):
    """A proposer's own client transactions reach the other validators in its proposal before
    their gossip. The next ones from the same sender, gossiped before that block commits, must
    still be admitted (not refused as a nonce gap and checked again in the next proposal)."""
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first = alice.transfer("ACME", chain.address("bob"), 1)
    second = alice.transfer("ACME", chain.address("bob"), 2)
    assert refusal(mempool, second, check_rules=False).reason == "nonce_gap"  # without the proposal
    block = chain.block([first])
    mempool.note_proposed(chain.ledger.validate_block(block))
    assert first in (tx.raw for tx in mempool.transactions.values())
    assert mempool.add(second, check_rules=False)
    assert refusal(mempool, first, check_rules=False).reason == "duplicate"  # its late gossip
    assert mempool.reap(txs_max=10, bytes_max=1 << 20) == (first, second)
    result = chain.ledger.apply_block(block, b"certificate")
    mempool.update(r.tx_hash for r in result.receipts)
    assert mempool.reap(txs_max=10, bytes_max=1 << 20) == (second,)
    assert mempool.pending_nonce(alice.address) == 2


def test_a_proposal_that_is_not_decided_leaves_its_transactions_pending(chain):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first = alice.transfer("ACME", chain.address("bob"), 1)
    mempool.note_proposed(chain.ledger.validate_block(chain.block([first])))
    chain.time_ms -= 1000  # the harness moved its clock for the block that was not decided
    result = chain.commit()  # another, empty block is decided at that height instead
    mempool.update(r.tx_hash for r in result.receipts)
    # this node may propose it itself now: it was decoded and checked, and its nonce still fits
    assert mempool.reap(txs_max=10, bytes_max=1 << 20) == (first,)


# --- a duplicate is told from a stale nonce ---------------------------------------------------------
# The very same bytes again are a duplicate while pending and `already_committed` once in a block
# (the client's transaction went through: resubmitting is pointless, not wrong); a *different*
# transaction that reuses a nonce is `stale_nonce` (the client must re-sign with the next nonce).


def test_the_same_transaction_while_pending_is_a_duplicate_and_another_with_its_nonce_is_stale(chain):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first = alice.transfer("ACME", chain.address("bob"), 1)
    mempool.add(first)
    for check_rules in (True, False):  # a client's resubmission, and the same bytes gossiped back
        assert refusal(mempool, first, check_rules=check_rules).reason == "duplicate"
    alice.nonce -= 1
    same_nonce = alice.transfer("ACME", chain.address("bob"), 2)  # nonce 0 again, other bytes
    assert refusal(mempool, same_nonce).reason == "stale_nonce"
    assert refusal(mempool, same_nonce, check_rules=False).reason == "stale_nonce"
    assert len(mempool) == 1 and mempool.pending_nonce(alice.address) == 1
    assert mempool.reap(txs_max=10, bytes_max=1 << 20) == (first,)


def test_a_duplicate_is_named_as_such_even_when_the_mempool_is_full(chain):
    """Resubmitting a pending transaction to a full mempool is a duplicate: waiting for room and
    trying again would not help."""
    mempool = Mempool(chain.ledger, txs_max=1)
    first = chain.signer("alice").transfer("ACME", chain.address("bob"), 1)
    mempool.add(first)
    assert refusal(mempool, first).reason == "duplicate"
    assert refusal(mempool, chain.signer("bob").transfer("ACME", chain.address("alice"), 1)).reason == "full"


def test_each_half_of_admission_refuses_a_pending_duplicate(chain):
    """`decode` refuses bytes already pending before decoding them; and two copies decoded before
    either was admitted (a client's submission racing its own gossip) are told apart at `admit`."""
    mempool = Mempool(chain.ledger)
    raw = chain.signer("alice").transfer("ACME", chain.address("bob"), 1)
    copy_a = mempool.decode(raw, verify_signature=True)
    copy_b = mempool.decode(raw, verify_signature=False)
    mempool.admit(copy_a)
    with pytest.raises(MempoolRefusal) as caught:
        mempool.admit(copy_b, check_rules=False)
    assert caught.value.reason == "duplicate"
    with pytest.raises(MempoolRefusal) as caught:
        mempool.decode(raw, verify_signature=False)
    assert caught.value.reason == "duplicate"
    assert len(mempool) == 1


def test_after_commit_the_same_bytes_are_already_committed_and_another_with_its_nonce_is_stale(chain):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first = alice.transfer("ACME", chain.address("bob"), 1)
    late_copy = mempool.decode(first, verify_signature=True)  # e.g. its gossip, decoded before the commit
    mempool.add(first)
    result = chain.commit(first)
    mempool.update(r.tx_hash for r in result.receipts)
    assert len(mempool) == 0
    for check_rules in (True, False):
        assert refusal(mempool, first, check_rules=check_rules).reason == "already_committed"
    with pytest.raises(MempoolRefusal) as caught:
        mempool.admit(late_copy, check_rules=False)
    assert caught.value.reason == "already_committed"
    alice.nonce -= 1
    same_nonce = alice.transfer("ACME", chain.address("bob"), 2)
    assert refusal(mempool, same_nonce).reason == "stale_nonce"
    assert refusal(mempool, same_nonce, check_rules=False).reason == "stale_nonce"
    assert len(mempool) == 0 and mempool.pending_nonce(alice.address) == 1


def test_a_transaction_the_rules_refused_in_its_block_is_still_already_committed(chain):
    """A refused transaction is recorded and consumes its nonce: the same bytes again are the
    committed transaction (its receipt says why it failed), not a stale nonce."""
    mempool = Mempool(chain.ledger)
    doomed = chain.signer("alice").transfer("ACME", chain.address("bob"), 10_000)
    result = chain.commit(doomed)
    assert str(result.receipts[0].outcome) == "0x52 insufficient_balance"
    mempool.update(r.tx_hash for r in result.receipts)
    assert refusal(mempool, doomed).reason == "already_committed"


@pytest.mark.parametrize("projected", ["before the update", "after the update", "never"])
def test_a_committed_transaction_is_known_whether_its_block_is_projected_or_not(chain, projected):
    """The tx index is a projection written after the block (ledger/projections.py): the mempool
    still refuses a committed transaction's bytes as `already_committed` while its block waits
    for the projector, and once the projector ran after the mempool renewed its pending state."""
    chain.project = False
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    first = alice.transfer("ACME", chain.address("bob"), 1)
    late_copy = mempool.decode(first, verify_signature=True)
    mempool.add(first)
    result = chain.commit(first)
    if projected == "before the update":
        chain.ledger.catch_up()
    mempool.update(r.tx_hash for r in result.receipts)
    if projected == "after the update":
        chain.ledger.catch_up()
    assert (chain.ledger.projected_height == chain.ledger.tip.height) == (projected != "never")
    for check_rules in (True, False):
        assert refusal(mempool, first, check_rules=check_rules).reason == "already_committed"
    with pytest.raises(MempoolRefusal) as caught:
        mempool.admit(late_copy, check_rules=False)
    assert caught.value.reason == "already_committed"
