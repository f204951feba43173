"""Dividends and coupons: record dates, funding, claims, pushed payments, held payments, reclaim."""

from __future__ import annotations

from ledger import layout, queries
from ledger.corporate.distributions import escrow_key
from ledger.testing import FAR_FUTURE_S


def declare(h, action_id="DIV-1", rate=(3, 2), expires_at=FAR_FUTURE_S, signer="issuer", **kw):
    return h.run(h.signer(signer).declare_distribution(
        action_id, kw.get("token", "ACME"), "USD", record_height=kw.get("record_height", h.record_height),
        rate_num=rate[0], rate_den=rate[1], expires_at=expires_at))


def usd(h, name):
    return queries.balance(h.ledger, "USD", h.address(name))["balance"]


def test_entitlements_come_from_the_record_height_not_from_later_balances(market):
    h = market
    assert declare(h).ok
    assert queries.distribution(h.ledger, "DIV-1")["funded"] == 225  # 150 units x 1.5
    assert usd(h, "issuer") == 1_000_000 - 225
    # alice sells everything to carol after the record height
    assert h.run(h.signer("alice").transfer("ACME", h.address("carol"), 100)).ok
    assert h.run(h.signer("alice").claim_distribution("DIV-1")).ok
    assert usd(h, "alice") == 150
    assert str(h.run(h.signer("carol").claim_distribution("DIV-1"))) == "0x57 not_entitled"
    assert str(h.run(h.signer("alice").claim_distribution("DIV-1"))) == "0x50 already_paid"
    assert queries.distribution(h.ledger, "DIV-1", "bob")["identity"] == {
        "identity": "bob", "entitlement": 75, "paid": None}


def test_pushed_payments_hold_a_frozen_holder_until_unfrozen(market):
    h = market
    assert declare(h).ok
    assert h.run(h.signer("agent").freeze("ACME", h.address("bob"))).ok
    agent = h.signer("agent")
    h.run(h.signer("issuer").set_agent("ACME", agent.address, ["corporate_actions", "force_transfer", "freeze",
                                                              "pause", "recovery", "supply"]))
    result = h.commit(agent.pay_distribution("DIV-1", [("alice", h.address("alice")), ("bob", h.address("bob")),
                                                       ("carol", h.address("alice"))]))
    assert result.receipts[0].outcome.ok
    kinds = [(e.kind, e.data.get("identity"), e.data.get("reason")) for e in result.receipts[0].events]
    assert kinds == [("distribution.paid", "alice", None),
                     ("distribution.payment_held", "bob", "payment_held:wallet_frozen"),
                     ("distribution.payment_skipped", "carol", "wallet_not_of_identity")]
    assert usd(h, "bob") == 0
    assert h.run(agent.unfreeze("ACME", h.address("bob"))).ok
    assert h.run(h.signer("bob").claim_distribution("DIV-1")).ok
    assert usd(h, "bob") == 75


def test_rounding_never_pays_more_than_funded_and_reclaim_returns_the_rest(market):
    h = market
    expires = h.now_s + 10
    assert declare(h, rate=(1, 3), expires_at=expires).ok  # 150 / 3 = 50 funded
    assert queries.distribution(h.ledger, "DIV-1")["funded"] == 50
    assert h.run(h.signer("alice").claim_distribution("DIV-1")).ok  # floor(100 / 3) = 33
    assert h.run(h.signer("bob").claim_distribution("DIV-1")).ok  # floor(50 / 3) = 16
    record = queries.distribution(h.ledger, "DIV-1")
    assert record["paid"] == 49 and record["remaining"] == 1
    assert str(h.run(h.signer("issuer").reclaim_distribution("DIV-1"))) == "0x55 distribution_not_expired"
    assert str(h.run(h.signer("alice").reclaim_distribution("DIV-1"), advance_ms=20_000)) == \
        "0x58 not_authorized:declarer"
    assert h.run(h.signer("issuer").reclaim_distribution("DIV-1")).ok
    assert usd(h, "issuer") == 1_000_000 - 49
    assert str(h.run(h.signer("alice").claim_distribution("DIV-1"))) == "0x50 distribution_closed"


def test_who_may_declare_and_what_is_refused(market):
    h = market
    assert str(declare(h, signer="alice")) == "0x58 not_authorized:agent.corporate_actions"
    assert str(declare(h, record_height=h.ledger.tip.height + 1)) == "0x50 record_height_not_committed"
    assert str(declare(h, rate=(10_000_000, 1))) == "0x52 insufficient_funding_balance"
    assert str(declare(h, expires_at=h.now_s - 1)) == "0x50 expiry_in_the_past"
    assert str(declare(h, record_height=1)) == "0x50 nothing_to_distribute"  # ACME did not exist yet
    assert declare(h).ok
    assert str(declare(h)) == "0x50 distribution_exists"


def test_escrow_keeps_the_payment_token_supply_whole(market):
    h = market
    assert declare(h).ok
    assert h.run(h.signer("alice").claim_distribution("DIV-1")).ok
    info = queries.token_info(h.ledger, "USD")
    wallets = sum(queries.balance(h.ledger, "USD", h.address(n))["balance"] for n in ("issuer", "alice", "bob"))
    with h.ledger.store.read() as txn:
        escrow = h.ledger.store.state_over(txn).get(escrow_key("USD"))
    assert escrow == 75 and wallets + escrow == info["total_supply"] == 1_000_000
    assert layout.token("USD")  # the payment token is an ordinary token
