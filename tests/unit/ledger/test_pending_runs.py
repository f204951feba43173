"""Running a transaction on a pending state, as the mempool does (`execute_if_accepted`) and as
`compliance_check`-like dry runs do (`dry_run`): the same handler with the given time, height and
signer; an accepted transaction is applied with its nonce, a refused or dry-run one leaves the
state exactly as it was.
"""

from __future__ import annotations

import pytest

from ledger import layout
from ledger.errors import NonceMismatch
from ledger.execution import dry_run, execute_if_accepted
from ledger.testing import CHAIN_ID, address_of
from ledger.tx import decode_transaction

A, B = address_of("alice"), address_of("bob")


def tx(raw: bytes):
    return decode_transaction(raw, chain_id=CHAIN_ID)


def ballot(chain, closes_at_height: int):
    """A ballot whose window must close after the height it is created at."""
    tip = chain.ledger.tip.height
    return tx(chain.signer("issuer").create_ballot("b1", "ACME", "Merge?", ["yes", "no"], record_height=tip,
                                                   opens_at_height=tip + 1, closes_at_height=closes_at_height))


@pytest.fixture
def kyc_market(market):
    """`market` with ACME requiring a valid KYC claim, and 10 ACME held by alice."""
    assert market.run(market.signer("issuer").set_rules("ACME", {"required_claims": ["kyc"]})).ok
    assert market.run(market.signer("agent").issue("ACME", A, 10)).ok
    return market


def test_an_accepted_transaction_is_applied_with_its_nonce(kyc_market):
    chain = kyc_market
    nonce = chain.ledger.next_nonce(A)
    with chain.ledger.store.read() as txn:
        state = chain.ledger.store.state_over(txn)
        now = chain.now_s + 7
        assert execute_if_accepted(state, tx(chain.signer("alice").transfer("ACME", B, 4)), time_s=now,
                                   height=chain.ledger.tip.height + 1).ok
        assert state.get(layout.nonce(A)) == nonce + 1
        assert state.get(layout.balance("ACME", A)) == (6, 0, False)
        assert state.get(layout.holding("ACME", "bob")) == (4, (now, 4))  # acquired at the time given


def test_a_refused_transaction_leaves_the_pending_state_nonce_included(kyc_market):
    chain = kyc_market
    nonce = chain.ledger.next_nonce(A)
    with chain.ledger.store.read() as txn:
        state = chain.ledger.store.state_over(txn)
        outcome = execute_if_accepted(state, tx(chain.signer("alice").transfer("ACME", B, 11)), time_s=chain.now_s,
                                      height=chain.ledger.tip.height + 1)
        assert str(outcome) == "0x52 insufficient_balance"
        assert state.get(layout.nonce(A), 0) == nonce
        assert state.get(layout.balance("ACME", A)) == (10, 0, False)


def test_a_transaction_out_of_nonce_order_is_not_run(kyc_market):
    chain = kyc_market
    chain.signer("alice").transfer("ACME", B, 1)  # signed, never sent: the next one skips a nonce
    with chain.ledger.store.read() as txn:
        state = chain.ledger.store.state_over(txn)
        nonce = chain.ledger.next_nonce(A)
        with pytest.raises(NonceMismatch) as refused:
            execute_if_accepted(state, tx(chain.signer("alice").transfer("ACME", B, 1)), time_s=chain.now_s,
                                height=chain.ledger.tip.height + 1)
        assert (refused.value.expected, refused.value.got) == (nonce, nonce + 1)
        assert state.get(layout.balance("ACME", A)) == (10, 0, False)


def test_the_height_given_is_the_height_the_transaction_runs_at(market):
    height = market.ledger.tip.height + 1
    with market.ledger.store.read() as txn:
        state = market.ledger.store.state_over(txn)
        assert execute_if_accepted(state, ballot(market, height + 1), time_s=market.now_s, height=height).ok
        late = ballot(market, height + 1)
        assert str(execute_if_accepted(state, late, time_s=market.now_s, height=height + 1)) == (
            "0x50 bad_voting_window")


def test_a_dry_run_gives_the_outcome_and_changes_nothing(kyc_market):
    chain = kyc_market
    nonce = chain.ledger.next_nonce(A)
    with chain.ledger.store.read() as txn:
        state = chain.ledger.store.state_over(txn)
        transfer = tx(chain.signer("alice").transfer("ACME", B, 4))
        assert dry_run(state, transfer, time_s=chain.now_s, height=chain.ledger.tip.height + 1).ok
        assert str(dry_run(state, tx(chain.signer("bob").transfer("ACME", A, 1)), time_s=chain.now_s,
                           height=chain.ledger.tip.height + 1)) == "0x52 insufficient_balance"
        assert state.get(layout.nonce(A), 0) == nonce
        assert state.get(layout.balance("ACME", A)) == (10, 0, False)
        assert state.get(layout.balance("ACME", B)) is None


def test_a_dry_run_runs_at_the_time_height_and_signer_given(kyc_market):
    chain = kyc_market
    expiry = chain.now_s + 100
    assert chain.run(chain.signer("kyc").grant_claim("bob", "kyc", expiry)).ok
    height = chain.ledger.tip.height + 1
    with chain.ledger.store.read() as txn:
        state = chain.ledger.store.state_over(txn)
        transfer = tx(chain.signer("alice").transfer("ACME", B, 1))
        assert dry_run(state, transfer, time_s=expiry - 1, height=height).ok
        assert str(dry_run(state, transfer, time_s=expiry, height=height)) == "0x57 receiver_missing_claim:kyc"
        create = ballot(chain, height + 1)
        assert dry_run(state, create, time_s=chain.now_s, height=height).ok
        assert str(dry_run(state, create, time_s=chain.now_s, height=height + 1)) == "0x50 bad_voting_window"
