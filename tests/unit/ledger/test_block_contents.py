"""What a block may carry and what applying it writes besides the state: each transaction once,
each signer's nonces in sequence within the block, a block time strictly after the tip's; receipts
looked up by hash; every event findable by its kind, its token and each address it names.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger import Block, InvalidBlock, queries
from ledger.testing import address_of

A, B = address_of("alice"), address_of("bob")


def test_a_transaction_twice_in_one_block_is_refused(market):
    tx = market.signer("agent").issue("ACME", A, 1)
    with pytest.raises(InvalidBlock, match="twice"):
        market.ledger.validate_block(market.block([tx, tx]))


def test_one_signers_nonces_run_in_sequence_within_a_block(market):
    agent = market.signer("agent")
    first, second, third = (agent.issue("ACME", A, n) for n in (1, 2, 3))
    with pytest.raises(InvalidBlock, match="nonce"):
        market.ledger.validate_block(market.block([first, third]))
    with pytest.raises(InvalidBlock, match="nonce"):
        market.ledger.validate_block(market.block([second, first]))
    block = market.block([first, second, third])
    market.ledger.validate_block(block)
    result = market.ledger.apply_block(block, b"certificate")
    nonces = [r.nonce for r in result.receipts]
    assert nonces == [nonces[0], nonces[0] + 1, nonces[0] + 2]
    assert all(r.outcome.ok for r in result.receipts)


def test_a_block_at_the_tips_own_time_is_refused_and_one_millisecond_later_taken(market):
    tip = market.ledger.tip
    block = market.block([])
    same = Block(dataclasses.replace(block.header, time_ms=tip.time_ms), block.txs)
    with pytest.raises(InvalidBlock, match="not after"):
        market.ledger.validate_block(same)
    later = Block(dataclasses.replace(block.header, time_ms=tip.time_ms + 1), block.txs)
    market.ledger.validate_block(later)


def test_receipts_are_found_by_transaction_hash_with_their_events(market):
    ok = market.signer("agent").issue("ACME", A, 5)
    refused = market.signer("bob").transfer("ACME", A, 1)
    result = market.commit(ok, refused)
    first, second = (queries.transaction(market.ledger, r.tx_hash) for r in result.receipts)
    assert (first["height"], first["index"], first["status"], first["code"]) == (result.height, 0, "committed", 0x51)
    assert [e["kind"] for e in first["events"]] == ["token.issued"]
    assert (second["index"], second["status"], second["reason"], second["signer"]) == (
        1, "rejected", "insufficient_balance", B)
    assert second["nonce"] == result.receipts[1].nonce and second["kind"] == "token.transfer"


def test_every_event_is_indexed_under_its_kind_its_token_and_each_of_its_addresses(market):
    market.commit(market.signer("agent").issue("ACME", A, 5))
    height = market.commit(market.signer("alice").transfer("ACME", B, 2)).height

    def kinds(**filters) -> list[str]:
        return [e["kind"] for e in queries.events(market.ledger, from_height=height, **filters)["events"]]

    assert kinds(kind="token.transferred") == ["token.transferred"]
    assert kinds(token="ACME") == ["token.transferred"]
    assert kinds(address=A) == ["token.transferred"] == kinds(address=B)
    assert kinds(address=address_of("carol")) == []
    assert kinds(token="NOPE") == []
    identity_events = queries.events(market.ledger, kind="identity.registered")["events"]
    assert identity_events and all(e["token"] is None for e in identity_events)
    assert [e["kind"] for e in queries.events(market.ledger, token="ACME")["events"]][0] == "token.created"


def test_a_dry_run_and_a_compliance_check_use_the_tip_and_change_nothing(market):
    from ledger.testing import CHAIN_ID
    from ledger.tx import decode_transaction

    market.commit(market.signer("agent").issue("ACME", A, 5))
    before = market.ledger.tip
    ok = decode_transaction(market.signer("alice").transfer("ACME", B, 5), chain_id=CHAIN_ID)
    too_much = decode_transaction(market.signer("alice").transfer("ACME", B, 6), chain_id=CHAIN_ID)
    assert market.ledger.dry_run(ok).ok
    assert str(market.ledger.dry_run(too_much)) == "0x52 insufficient_balance"
    assert str(market.ledger.compliance_check("ACME", A, B, 6)) == "0x52 insufficient_balance"
    assert market.ledger.compliance_check("ACME", A, B, 5).ok
    assert market.ledger.tip == before and market.ledger.next_nonce(A) == 0


def test_a_dry_run_on_a_pending_state_runs_at_the_tips_time_and_the_next_height(market):
    from ledger.testing import CHAIN_ID
    from ledger.tx import decode_transaction

    ledger = market.ledger
    assert market.run(market.signer("issuer").set_rules("ACME", {"required_claims": ["kyc"]})).ok
    assert market.run(market.signer("agent").issue("ACME", A, 5)).ok
    tip_s = ledger.tip.time_ms // 1000
    assert market.run(market.signer("kyc").grant_claim("bob", "kyc", tip_s + 2), advance_ms=1000).ok
    tip_s = ledger.tip.time_ms // 1000  # bob's claim expires one second after this tip
    transfer = decode_transaction(market.signer("alice").transfer("ACME", B, 1), chain_id=CHAIN_ID)
    tip = ledger.tip.height
    ballot = decode_transaction(market.signer("issuer").create_ballot(
        "b1", "ACME", "Merge?", ["yes", "no"], record_height=tip, opens_at_height=tip + 1,
        closes_at_height=tip + 2), chain_id=CHAIN_ID)
    with ledger.store.read() as txn:
        pending = ledger.store.state_over(txn)
        assert ledger.dry_run(transfer, state=pending).ok
        assert ledger.dry_run(ballot, state=pending).ok  # closes after the next height
    assert ledger.dry_run(transfer).ok and ledger.dry_run(ballot).ok
    assert ledger.compliance_check("ACME", A, B, 1).ok
    market.commit(advance_ms=3000)  # bob's claim has expired at the new tip
    assert str(ledger.compliance_check("ACME", A, B, 1)) == "0x57 receiver_missing_claim:kyc"
    assert str(ledger.dry_run(transfer)) == "0x57 receiver_missing_claim:kyc"
    assert ledger.compliance_check("ACME", A, B, 1, time_s=tip_s).ok
