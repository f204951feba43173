"""Primary offerings (ledger/settlement/offerings.py; docs/SETTLEMENT.md, "Primary offerings"):
who may open one and on what terms, eligibility up front with the codes of a transfer, escrow by
reservation, the window to the second, withdrawal, and the close: re-check and exclusion, the
minimum raise, pro-rata allocation rounded down, caps, cancellation, and every event."""

from __future__ import annotations

import pytest

from ledger import layout
from ledger.events import EVENT_KINDS
from ledger.settlement import offerings
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of

A = address_of
#: $25.00 a share (ACME has 0 decimals, USD 2): cash base units per whole unit.
PRICE = 2_500
#: Terms of the offering "OFF" every test opens (cash amounts in cents).
TERMS = {"price": PRICE, "raise_min": 2_000_000, "raise_max": 5_000_000, "investor_min": 250_000,
         "investor_max": 4_000_000}
WINDOW_S = 1_000


class Primary:
    """An issuer with an accredited-only share (ACME, Reg D 506(c) style), a cash token (USD), a
    founder holding shares, and investors holding cash; helpers to act at a given second."""

    def __init__(self, h: LedgerHarness) -> None:
        self.h = h
        self.opens_at = h.now_s + 100
        self.closes_at = self.opens_at + WINDOW_S

    def at(self, t: int, *txs: bytes):
        """The receipts of `txs` in one block whose time is the second `t`."""
        assert t > self.h.now_s, "blocks go forward"
        return self.h.commit(*txs, advance_ms=(t - self.h.now_s) * 1000).receipts

    def outcomes(self, t: int, *txs: bytes) -> list[str]:
        return [str(r.outcome) for r in self.at(t, *txs)]

    def open(self, offering: str = "OFF", signer: str = "agent", token: str = "ACME", **terms) -> str:
        body = {**TERMS, "opens_at": self.opens_at, "closes_at": self.closes_at, "cash_wallet": A("treasury"),
                "cash_token": "USD", **terms}
        cash_token = body.pop("cash_token")
        return str(self.h.run(self.h.signer(signer).open_offering(offering, token, cash_token, **body)))

    def subscribe(self, name: str, amount: int, offering: str = "OFF") -> bytes:
        return self.h.signer(name).subscribe(offering, amount)

    def close(self, signer: str = "agent", offering: str = "OFF") -> bytes:
        return self.h.signer(signer).close_offering(offering)

    def read(self, key: bytes, default=None):
        with self.h.ledger.store.read() as txn:
            return self.h.ledger.store.state_over(txn).get(key, default)

    def record(self, offering: str = "OFF"):
        return self.read(layout.offering(offering))

    def subscription(self, identity: str, offering: str = "OFF"):
        return self.read(layout.offering_subscription(offering, identity))

    def balance(self, token: str, wallet: str) -> int:
        return self.read(layout.balance(token, A(wallet)), (0, 0, False))[0]

    def reserved(self, token: str, wallet: str) -> int:
        return self.read(layout.reserved(token, A(wallet)), 0)

    def supply(self, token: str) -> int:
        return self.read(layout.supply(token))[0]


@pytest.fixture
def primary(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("issuer-co", wallets=("treasury",))
    h.investor("founder", accredited=True)
    for name in ("ann", "ben", "cat", "eve"):
        h.investor(name, accredited=True)
    h.investor("dan")  # KYC'd, not accredited
    h.investor("fay", wallets=("fay", "fay-2"), accredited=True)
    h.token("ACME", rules={"required_claims": ["accredited", "kyc"], "supply_cap": 1_000_000})
    h.token("USD", rules={"required_claims": ["kyc"]}, decimals=2)
    agent = h.signer("agent")
    result = h.commit(agent.issue("ACME", A("founder"), 10_000),
                      *(agent.issue("USD", A(n), 10_000_000) for n in ("ann", "ben", "cat", "dan", "eve", "fay")))
    assert all(r.outcome.ok for r in result.receipts)
    yield Primary(h)
    h.close()


# --- opening ------------------------------------------------------------------------------------------


def test_open_records_the_terms_and_announces_them(primary):
    receipt = primary.h.commit(primary.h.signer("agent").open_offering(
        "OFF", "ACME", "USD", **TERMS, opens_at=primary.opens_at, closes_at=primary.closes_at,
        cash_wallet=A("treasury"))).receipts[0]
    assert receipt.outcome.ok
    terms = {"cash_token": "USD", **TERMS, "opens_at": primary.opens_at, "closes_at": primary.closes_at,
             "cash_wallet": A("treasury")}
    [event] = receipt.events
    assert (event.kind, event.token, event.addresses) == ("offering.opened", "ACME", (A("agent"), A("treasury")))
    assert event.data == {"id": "OFF", "agent": A("agent"), **terms}
    assert primary.record() == {"token": "ACME", **terms, "opened_by": A("agent"), "opened_at_s": primary.h.now_s,
                                "status": "open", "subscribers": 0, "subscribed": 0, "closed_at_s": 0,
                                "excluded": 0, "raised": 0, "units": 0}


def test_the_owner_or_a_supply_agent_opens_and_nobody_else(primary):
    assert primary.open("BY-OWNER", signer="issuer") == "0x51 success"  # the owner holds no agent role
    assert primary.open("BY-ANN", signer="ann") == "0x58 not_authorized:agent.supply"
    assert primary.h.run(primary.h.signer("issuer").set_agent("ACME", A("freezer"), ["freeze"])).ok
    assert primary.open("BY-FREEZER", signer="freezer") == "0x58 not_authorized:agent.supply"
    assert primary.h.run(primary.h.signer("issuer").set_agent("ACME", A("seller"), ["supply"])).ok
    assert primary.open("BY-SELLER", signer="seller") == "0x51 success"


@pytest.mark.parametrize(("change", "expected"), [
    ({"token": "NOPE"}, "0x50 unknown_token"),
    ({"cash_token": "NOPE"}, "0x50 unknown_cash_token"),
    ({"cash_token": "ACME"}, "0x50 cash_token_is_offered_token"),
    ({"opens_at": 2_000_000_000, "closes_at": 2_000_000_000}, "0x50 bad_window"),
    ({"opens_at": 1_000, "closes_at": 1_001}, "0x50 bad_window"),  # ended before it is opened
    ({"raise_min": 5_000_001}, "0x50 bad_raise_limits"),
    ({"investor_min": 4_000_001}, "0x50 bad_investor_limits"),
    ({"investor_min": 5_000_001, "investor_max": 6_000_000}, "0x50 bad_investor_limits"),  # over the raise
    ({"investor_min": PRICE - 1}, "0x50 bad_investor_limits"),  # buys no whole unit
    ({"raise_max": 400 * PRICE * 10_000}, "0x50 supply_cap_exceeded"),  # 4,000,000 shares over the cap
    ({"cash_wallet": A("stranger")}, "0x57 receiver_not_registered"),
])
def test_terms_refused_at_opening(primary, change, expected):
    token = change.pop("token", "ACME")
    assert primary.open(token=token, **change) == expected
    assert primary.record() is None


def test_an_offering_id_is_used_once_and_the_cash_wallet_must_be_able_to_receive(primary):
    assert primary.open() == "0x51 success"
    assert primary.open() == "0x50 offering_exists"
    assert primary.open("ALT", cash_wallet=A("dan")) == "0x51 success"  # any registered wallet with KYC
    assert primary.h.run(primary.h.signer("kyc").revoke_claim("issuer-co", "kyc")).ok
    assert primary.open("NO-KYC") == "0x57 receiver_missing_claim:kyc"
    assert primary.h.run(primary.h.signer("agent").freeze("USD", A("dan"))).ok
    assert primary.open("FROZEN", cash_wallet=A("dan")) == "0x57 receiver_frozen"


# --- subscribing: eligibility up front ----------------------------------------------------------------


def test_a_non_accredited_subscriber_is_refused_up_front_with_the_code_of_compliance_check(primary):
    assert primary.open() == "0x51 success"
    units = 500_000 // PRICE
    promised = primary.h.ledger.compliance_check("ACME", A("founder"), A("dan"), units,
                                                 time_s=primary.opens_at)
    assert str(promised) == "0x57 receiver_missing_claim:accredited"
    assert primary.outcomes(primary.opens_at, primary.subscribe("dan", 500_000)) == [str(promised)]
    assert primary.subscription("dan") is None and primary.reserved("USD", "dan") == 0
    # a country rule, the same way
    assert primary.h.run(primary.h.signer("issuer").set_rules(
        "ACME", {"required_claims": ["accredited", "kyc"], "country_block": ["US"]})).ok
    promised = primary.h.ledger.compliance_check("ACME", A("founder"), A("ann"), units)
    assert str(promised) == "0x57 receiver_country_blocked:US"
    assert str(primary.h.run(primary.subscribe("ann", 500_000))) == str(promised)


def test_the_caps_of_the_offered_token_are_checked_up_front(primary):
    assert primary.h.run(primary.h.signer("issuer").set_rules(
        "ACME", {"required_claims": ["accredited", "kyc"], "balance_max_per_identity": 100, "holders_max": 2,
                 "supply_cap": 1_000_000})).ok
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 101 * PRICE)) == ["0x57 balance_max_exceeded"]
    assert str(primary.h.run(primary.subscribe("ann", 100 * PRICE))) == "0x51 success"
    assert primary.h.run(primary.h.signer("agent").issue("ACME", A("cat"), 1)).ok  # founder and cat: 2 holders
    assert str(primary.h.run(primary.subscribe("ben", 100 * PRICE))) == "0x57 holders_max_reached"


def test_the_cash_side_is_checked_as_the_investor_s_payment_to_the_issuer(primary):
    assert primary.open() == "0x51 success"
    agent = primary.h.signer("agent")
    assert primary.h.run(agent.freeze("USD", A("ann"))).ok
    promised = primary.h.ledger.compliance_check("USD", A("ann"), A("treasury"), 500_000, time_s=primary.opens_at)
    assert str(promised) == "0x56 sender_frozen"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 500_000)) == [str(promised)]
    assert primary.h.run(agent.pause("USD")).ok
    assert str(primary.h.run(primary.subscribe("ben", 500_000))) == "0x54 token_paused"
    assert primary.h.run(agent.unpause("USD")).ok
    assert primary.h.run(agent.pause("ACME")).ok  # a pause of the offered token stops holders, not issuance
    assert str(primary.h.run(primary.subscribe("ben", 500_000))) == "0x51 success"


def test_escrow_is_a_reservation_and_beyond_the_unreserved_free_cash_is_refused_0x52(primary):
    assert primary.open() == "0x51 success"
    assert primary.open("OFF-2") == "0x51 success"
    supply_before = primary.supply("USD")
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 4_000_000)) == ["0x51 success"]
    # the cash stays in the investor's wallet, no total changes; it is only set aside
    assert primary.balance("USD", "ann") == 10_000_000 and primary.supply("USD") == supply_before
    assert primary.reserved("USD", "ann") == 4_000_000 and primary.balance("USD", "treasury") == 0
    assert primary.h.run(primary.h.signer("agent").freeze_partial("USD", A("ann"), 3_000_000)).ok
    # free 7,000,000, of which 4,000,000 reserved: 3,000,000 left
    assert str(primary.h.run(primary.subscribe("ann", 3_000_001, "OFF-2"))) == "0x52 insufficient_unreserved_balance"
    assert str(primary.h.run(primary.h.signer("ann").transfer("USD", A("ben"), 3_000_001))) \
        == "0x52 insufficient_unreserved_balance"
    assert str(primary.h.run(primary.subscribe("ann", 3_000_000, "OFF-2"))) == "0x51 success"
    assert primary.reserved("USD", "ann") == 7_000_000


def test_investor_limits_one_subscription_per_identity_and_the_bound(primary, monkeypatch):
    assert primary.open() == "0x51 success"
    t = primary.opens_at
    assert primary.outcomes(t, primary.subscribe("ann", 249_999), primary.subscribe("ann", 4_000_001),
                            primary.subscribe("fay", 250_000), primary.subscribe("fay-2", 250_000),
                            primary.subscribe("stranger", 250_000)) == [
        "0x50 below_investor_min", "0x50 above_investor_max", "0x51 success", "0x50 already_subscribed",
        "0x57 receiver_not_registered"]
    monkeypatch.setattr(offerings, "SUBSCRIBERS_MAX", 2)
    assert primary.outcomes(t + 1, primary.subscribe("ann", 250_000), primary.subscribe("ben", 250_000)) == [
        "0x51 success", "0x50 offering_full"]
    assert primary.record()["subscribers"] == 2 and primary.record()["subscribed"] == 500_000


def test_unknown_offering(primary):
    assert str(primary.h.run(primary.subscribe("ann", 250_000, "NOPE"))) == "0x50 unknown_offering"
    for verb in ("withdraw_subscription", "close_offering", "cancel_offering"):
        assert str(primary.h.run(getattr(primary.h.signer("agent"), verb)("NOPE"))) == "0x50 unknown_offering"


# --- the window, to the second ----------------------------------------------------------------------------


def test_subscriptions_are_taken_from_opens_at_to_the_second_before_closes_at(primary):
    assert primary.open() == "0x51 success"
    o, c = primary.opens_at, primary.closes_at
    assert primary.outcomes(o - 1, primary.subscribe("ann", 250_000)) == ["0x50 offering_not_open"]
    assert primary.outcomes(o, primary.subscribe("ann", 250_000)) == ["0x51 success"]
    assert primary.outcomes(o + 1, primary.subscribe("ben", 250_000)) == ["0x51 success"]
    assert primary.outcomes(c - 1, primary.subscribe("cat", 2_000_000)) == ["0x51 success"]
    assert primary.outcomes(c, primary.subscribe("eve", 250_000)) == ["0x50 offering_window_closed"]
    assert primary.outcomes(c + 1, primary.subscribe("eve", 250_000)) == ["0x50 offering_window_closed"]


def test_the_close_comes_at_closes_at_not_a_second_before(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 2_500_000)) == ["0x51 success"]
    assert primary.outcomes(primary.closes_at - 2, primary.close()) == ["0x55 offering_not_ended"]
    assert primary.outcomes(primary.closes_at - 1, primary.close()) == ["0x55 offering_not_ended"]
    assert primary.outcomes(primary.closes_at, primary.close()) == ["0x51 success"]
    assert primary.record()["status"] == "closed"


def test_the_close_may_come_early_once_the_maximum_is_subscribed(primary):
    assert primary.open() == "0x51 success"
    t = primary.opens_at
    assert primary.outcomes(t, primary.subscribe("ann", 4_000_000), primary.subscribe("ben", 999_999),
                            primary.close()) == ["0x51 success", "0x51 success", "0x55 offering_not_ended"]
    assert primary.outcomes(t + 1, primary.subscribe("cat", 250_000), primary.close(),
                            primary.subscribe("eve", 250_000)) == ["0x51 success", "0x51 success", "0x50 offering_closed"]


# --- withdrawal ---------------------------------------------------------------------------------------------


def test_withdrawal_releases_the_escrow_and_a_new_subscription_may_follow(primary):
    assert primary.open() == "0x51 success"
    t = primary.opens_at
    assert primary.outcomes(t, primary.subscribe("fay", 1_000_000)) == ["0x51 success"]
    receipt = primary.at(t + 1, primary.h.signer("fay-2").withdraw_subscription("OFF"))[0]  # another wallet of fay
    assert receipt.outcome.ok
    [event] = receipt.events
    assert (event.kind, event.addresses) == ("offering.withdrawn", (A("fay"), A("fay-2")))
    assert event.data == {"id": "OFF", "identity": "fay", "wallet": A("fay"), "amount": 1_000_000}
    assert primary.reserved("USD", "fay") == 0 and primary.subscription("fay") is None
    assert primary.record()["subscribers"] == 0 and primary.record()["subscribed"] == 0
    assert primary.outcomes(t + 2, primary.h.signer("agent").issue("USD", A("fay-2"), 300_000),
                            primary.h.signer("fay").withdraw_subscription("OFF"),
                            primary.subscribe("fay-2", 300_000)) == ["0x51 success", "0x50 not_subscribed",
                                                                     "0x51 success"]
    assert primary.subscription("fay")["wallet"] == A("fay-2") and primary.reserved("USD", "fay-2") == 300_000
    assert str(primary.h.run(primary.h.signer("stranger").withdraw_subscription("OFF"))) == "0x50 not_subscribed"


def test_a_lost_wallet_neither_subscribes_nor_withdraws_its_identity_does_from_another(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("fay", 500_000)) == ["0x51 success"]
    assert primary.h.run(primary.h.signer("agent").recover("USD", A("fay"), A("fay-2"))).ok
    assert str(primary.h.run(primary.h.signer("fay").withdraw_subscription("OFF"))) == "0x56 sender_wallet_lost"
    assert str(primary.h.run(primary.h.signer("fay-2").withdraw_subscription("OFF"))) == "0x51 success"
    assert primary.reserved("USD", "fay") == 0
    assert str(primary.h.run(primary.subscribe("fay", 500_000))) == "0x56 sender_wallet_lost"


def test_withdrawal_until_the_window_closes_then_locked_until_the_grace_period_ends(primary):
    assert primary.open() == "0x51 success"
    c, grace = primary.closes_at, offerings.CLOSE_GRACE_S
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 500_000),
                            primary.subscribe("ben", 500_000)) == ["0x51 success"] * 2
    withdraw = lambda name: primary.h.signer(name).withdraw_subscription("OFF")  # noqa: E731
    assert primary.outcomes(c - 1, withdraw("ann")) == ["0x51 success"]
    assert primary.outcomes(c, withdraw("ben")) == ["0x55 subscription_locked"]
    assert primary.outcomes(c + 1, withdraw("ben")) == ["0x55 subscription_locked"]
    assert primary.outcomes(c + grace - 1, withdraw("ben")) == ["0x55 subscription_locked"]
    assert primary.outcomes(c + grace, withdraw("ben")) == ["0x51 success"]
    assert primary.reserved("USD", "ben") == 0


# --- the close ---------------------------------------------------------------------------------------------


def test_below_the_minimum_raise_every_subscriber_is_refunded(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 1_000_000), primary.subscribe("ben", 999_999)) \
        == ["0x51 success"] * 2
    supply = primary.supply("ACME")
    [receipt] = primary.at(primary.closes_at, primary.close())
    assert receipt.outcome.ok
    assert [(e.kind, e.data.get("identity"), e.data.get("amount"), e.data.get("reason")) for e in receipt.events] == [
        ("offering.refunded", "ann", 1_000_000, "minimum_not_reached"),
        ("offering.refunded", "ben", 999_999, "minimum_not_reached"),
        ("offering.closed", None, None, None)]
    assert receipt.events[-1].data == {"id": "OFF", "result": "failed", "subscribers": 2, "excluded": 0,
                                       "subscribed": 1_999_999, "raised": 0, "units": 0, "refunded": 1_999_999}
    assert primary.record()["status"] == "failed" and primary.supply("ACME") == supply
    for name in ("ann", "ben"):
        assert primary.balance("USD", name) == 10_000_000 and primary.reserved("USD", name) == 0
        assert primary.balance("ACME", name) == 0
        assert primary.subscription(name)["status"] == "refunded"
    assert primary.balance("USD", "treasury") == 0


def test_the_minimum_is_judged_on_what_is_paid_exactly_the_minimum_closes(primary):
    assert primary.open() == "0x51 success"
    assert primary.open("SHORT", raise_min=2_000_001) == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 2_000_000),
                            primary.subscribe("ben", 2_001_000, "SHORT")) == ["0x51 success"] * 2
    primary.at(primary.closes_at, primary.close(), primary.close(offering="SHORT"))
    assert (primary.record()["status"], primary.record()["raised"]) == ("closed", 2_000_000)
    # ben subscribed more than the minimum, but 800 shares cost 2,000,000: below it
    assert (primary.record("SHORT")["status"], primary.record("SHORT")["raised"]) == ("failed", 0)
    assert primary.balance("USD", "ben") == 10_000_000 and primary.balance("ACME", "ben") == 0


def test_oversubscribed_allocation_is_pro_rata_rounded_down_and_the_rest_refunded(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 4_000_000), primary.subscribe("ben", 3_000_000),
                            primary.subscribe("cat", 1_000_001)) == ["0x51 success"] * 3
    supply = primary.supply("ACME")
    [receipt] = primary.at(primary.closes_at, primary.close())
    assert receipt.outcome.ok
    # demand 8,000,001 over a maximum of 5,000,000: each gets floor(subscribed x 5,000,000 / 8,000,001),
    # then whole shares at $25.00 (2,500 cents), rounded down; the rest goes back
    expected = {  # identity: (subscribed, allocated, units, paid, refunded)
        "ann": (4_000_000, 2_499_999, 999, 2_497_500, 1_502_500),
        "ben": (3_000_000, 1_874_999, 749, 1_872_500, 1_127_500),
        "cat": (1_000_001, 625_000, 250, 625_000, 375_001),
    }
    allocated = [e.data for e in receipt.events if e.kind == "offering.allocated"]
    assert [(d["identity"], d["subscribed"], d["allocated"], d["units"], d["paid"]) for d in allocated] == \
        [(i, *v[:4]) for i, v in expected.items()]
    refunded = [(e.data["identity"], e.data["amount"], e.data["reason"]) for e in receipt.events
                if e.kind == "offering.refunded"]
    assert refunded == [(i, v[4], "not_allocated") for i, v in expected.items()]
    for identity, (subscribed, _, units, paid, refund) in expected.items():
        assert paid + refund == subscribed and paid <= subscribed
        assert primary.balance("ACME", identity) == units
        assert primary.balance("USD", identity) == 10_000_000 - paid and primary.reserved("USD", identity) == 0
        assert primary.subscription(identity)["status"] == "allocated"
    assert primary.balance("USD", "treasury") == 4_995_000 <= TERMS["raise_max"]
    assert primary.supply("ACME") == supply + 1_998
    assert receipt.events[-1].data == {"id": "OFF", "result": "closed", "subscribers": 3, "excluded": 0,
                                       "subscribed": 8_000_001, "raised": 4_995_000, "units": 1_998,
                                       "refunded": 3_005_001}


def test_each_payment_is_the_exact_price_of_the_units_rounded_up_to_a_cash_unit(primary):
    # a token with 2 decimals at $3.33 a whole unit: one base unit costs 3.33 cents
    primary.h.token("FRAC", rules={"required_claims": ["kyc"]}, decimals=2)
    assert primary.open("F", token="FRAC", price=333, raise_min=0, raise_max=1_000_000, investor_min=1_000,
                        investor_max=1_000_000) == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 1_000, "F"),
                            primary.subscribe("ben", 1_003, "F")) == ["0x51 success"] * 2
    primary.at(primary.closes_at, primary.close(offering="F"))
    # 1,000 cents buy floor(1,000 x 100 / 333) = 300 base units (3.00 FRAC), at 300 x 333 / 100 = 999 cents
    ann = primary.subscription("ann", "F")
    assert (ann["units"], ann["paid"], ann["refunded"]) == (300, 999, 1)
    assert primary.balance("FRAC", "ann") == 300 and primary.balance("USD", "ann") == 10_000_000 - 999
    # 1,003 cents buy 301 base units, whose exact price, 1,002.33 cents, is rounded up: 1,003
    ben = primary.subscription("ben", "F")
    assert (ben["units"], ben["paid"], ben["refunded"]) == (301, 1_003, 0)
    assert primary.balance("USD", "treasury") == 999 + 1_003


def test_a_subscriber_whose_claim_expires_before_the_close_is_excluded_and_refunded(primary):
    assert primary.open() == "0x51 success"
    o, c = primary.opens_at, primary.closes_at
    assert primary.h.run(primary.h.signer("kyc").grant_claim("eve", "accredited", c - 10)).ok
    assert primary.outcomes(o, primary.subscribe("ann", 2_000_000), primary.subscribe("eve", 1_000_000)) \
        == ["0x51 success"] * 2
    [receipt] = primary.at(c, primary.close())
    assert receipt.outcome.ok
    excluded, refund = receipt.events[0], receipt.events[1]
    assert (excluded.kind, excluded.token, excluded.addresses) == ("offering.excluded", "ACME", (A("eve"),))
    assert excluded.data == {"id": "OFF", "identity": "eve", "wallet": A("eve"), "code": 0x57,
                             "reason": "receiver_missing_claim:accredited"}
    assert (refund.kind, refund.data) == ("offering.refunded", {"id": "OFF", "identity": "eve", "wallet": A("eve"),
                                                                "amount": 1_000_000, "reason": "excluded"})
    assert primary.subscription("eve")["status"] == "excluded"
    assert primary.subscription("eve")["reason"] == "receiver_missing_claim:accredited"
    assert primary.balance("USD", "eve") == 10_000_000 and primary.reserved("USD", "eve") == 0
    assert primary.balance("ACME", "eve") == 0
    assert primary.balance("ACME", "ann") == 800 and primary.record()["excluded"] == 1
    assert primary.record()["raised"] == 2_000_000


def test_frozen_lost_or_stripped_subscribers_are_excluded_with_their_code(primary):
    assert primary.open(raise_min=0) == "0x51 success"
    assert primary.outcomes(primary.opens_at, *(primary.subscribe(n, 500_000) for n in ("ann", "ben", "cat", "fay"))) \
        == ["0x51 success"] * 4
    agent = primary.h.signer("agent")
    assert primary.h.run(agent.freeze("USD", A("ann"))).ok
    assert primary.h.run(agent.freeze("ACME", A("ben"))).ok
    assert primary.h.run(agent.force_transfer("USD", A("cat"), A("dan"), 9_600_000)).ok  # a legal order
    assert primary.h.run(agent.recover("USD", A("fay"), A("fay-2"))).ok  # fay's subscribing wallet is lost
    [receipt] = primary.at(primary.closes_at, primary.close())
    assert receipt.outcome.ok
    assert [(e.data["identity"], f"0x{e.data['code']:02x} {e.data['reason']}") for e in receipt.events
            if e.kind == "offering.excluded"] == [
        ("ann", "0x56 sender_frozen"), ("ben", "0x57 receiver_frozen"), ("cat", "0x52 insufficient_balance"),
        ("fay", "0x57 receiver_wallet_lost")]
    for name in ("ann", "ben", "cat", "fay"):
        assert primary.reserved("USD", name) == 0 and primary.balance("ACME", name) == 0
    assert primary.record()["status"] == "closed" and primary.record()["raised"] == 0


def test_a_holder_cap_reached_during_the_close_excludes_the_later_subscriber(primary):
    assert primary.h.run(primary.h.signer("issuer").set_rules(
        "ACME", {"required_claims": ["accredited", "kyc"], "holders_max": 2})).ok
    assert primary.open(raise_min=0) == "0x51 success"
    # each alone fits (founder + 1); together they would be three holders: the earlier subscriber wins
    assert primary.outcomes(primary.opens_at, primary.subscribe("ben", 500_000), primary.subscribe("ann", 500_000)) \
        == ["0x51 success"] * 2
    [receipt] = primary.at(primary.closes_at, primary.close())
    assert [e.kind for e in receipt.events] == [
        "token.issued", "token.transferred", "offering.allocated", "offering.excluded", "offering.refunded",
        "offering.closed"]
    assert receipt.events[3].data["identity"] == "ann" and receipt.events[3].data["reason"] == "holders_max_reached"
    assert primary.balance("ACME", "ben") == 200 and primary.balance("ACME", "ann") == 0
    assert primary.reserved("USD", "ann") == 0 and primary.balance("USD", "ann") == 10_000_000


def test_an_exclusion_at_the_close_can_leave_the_raise_below_the_minimum(primary):
    assert primary.h.run(primary.h.signer("issuer").set_rules(
        "ACME", {"required_claims": ["accredited", "kyc"], "holders_max": 2})).ok
    assert primary.open(raise_min=1_000_000) == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ben", 500_000), primary.subscribe("ann", 500_000)) \
        == ["0x51 success"] * 2
    [receipt] = primary.at(primary.closes_at, primary.close())
    # ann's exclusion leaves 500,000: the issue and the payment of ben are undone, both refunded
    assert [(e.kind, e.data.get("reason")) for e in receipt.events] == [
        ("offering.refunded", "minimum_not_reached"), ("offering.refunded", "minimum_not_reached"),
        ("offering.closed", None)]
    assert primary.record()["status"] == "failed"
    assert primary.balance("ACME", "ben") == 0 and primary.balance("USD", "ben") == 10_000_000
    assert primary.reserved("USD", "ben") == 0 and primary.balance("USD", "treasury") == 0


def test_the_supply_cap_refuses_the_close_and_changes_nothing(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 2_500_000)) == ["0x51 success"]  # 1,000 shares
    agent = primary.h.signer("agent")
    assert primary.h.run(agent.issue("ACME", A("founder"), 1_000_000 - 10_000 - 999)).ok  # room for 999 left
    before = primary.record()
    assert primary.outcomes(primary.closes_at, primary.close()) == ["0x50 supply_cap_exceeded"]
    assert primary.record() == before and primary.reserved("USD", "ann") == 2_500_000
    assert primary.subscription("ann")["status"] == "pending"
    assert primary.h.run(agent.redeem("ACME", A("founder"), 1)).ok
    assert str(primary.h.run(primary.close())) == "0x51 success"
    assert primary.supply("ACME") == 1_000_000


def test_cancel_refunds_everyone_and_ends_the_offering(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 1_000_000), primary.subscribe("ben", 300_000)) \
        == ["0x51 success"] * 2
    assert str(primary.h.run(primary.h.signer("ann").cancel_offering("OFF"))) == "0x58 not_authorized:agent.supply"
    receipt = primary.h.commit(primary.h.signer("issuer").cancel_offering("OFF")).receipts[0]  # the owner
    assert receipt.outcome.ok
    assert [(e.kind, e.data.get("identity"), e.data.get("reason")) for e in receipt.events] == [
        ("offering.refunded", "ann", "cancelled"), ("offering.refunded", "ben", "cancelled"),
        ("offering.cancelled", None, None)]
    assert receipt.events[-1].data == {"id": "OFF", "subscribers": 2, "refunded": 1_300_000}
    assert receipt.events[-1].addresses == (A("issuer"),)
    assert primary.record()["status"] == "cancelled"
    assert primary.reserved("USD", "ann") == 0 and primary.reserved("USD", "ben") == 0
    t = primary.h.now_s + 1
    assert primary.outcomes(t, primary.subscribe("cat", 300_000), primary.close(),
                            primary.h.signer("agent").cancel_offering("OFF"),
                            primary.h.signer("ann").withdraw_subscription("OFF")) == ["0x50 offering_cancelled"] * 4


def test_only_the_issuer_side_closes_and_a_closed_offering_takes_nothing_more(primary):
    assert primary.open() == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("ann", 2_500_000)) == ["0x51 success"]
    c = primary.closes_at
    assert primary.outcomes(c, primary.close("ann"), primary.close("issuer"), primary.close(),
                            primary.h.signer("agent").cancel_offering("OFF")) == [
        "0x58 not_authorized:agent.supply", "0x51 success", "0x50 offering_closed", "0x50 offering_closed"]


def test_a_subscriber_paying_its_own_identity_moves_between_its_wallets(primary):
    # the issuer's treasury identity subscribes from another of its wallets: no change of owner
    assert primary.h.run(primary.h.signer("kyc").add_wallet("issuer-co", A("treasury-2"))).ok
    assert primary.h.run(primary.h.signer("kyc").grant_claim("issuer-co", "accredited", FAR_FUTURE_S)).ok
    assert primary.h.run(primary.h.signer("agent").issue("USD", A("treasury-2"), 1_000_000)).ok
    assert primary.open(raise_min=0) == "0x51 success"
    assert primary.outcomes(primary.opens_at, primary.subscribe("treasury-2", 500_000)) == ["0x51 success"]
    primary.at(primary.closes_at, primary.close())
    assert primary.balance("USD", "treasury") == 500_000 and primary.balance("USD", "treasury-2") == 500_000
    assert primary.balance("ACME", "treasury-2") == 200


def test_every_event_is_a_listed_kind_and_names_its_parties(primary):
    opened = primary.h.commit(primary.h.signer("agent").open_offering(
        "OFF", "ACME", "USD", **{**TERMS, "raise_min": 0}, opens_at=primary.opens_at, closes_at=primary.closes_at,
        cash_wallet=A("treasury"))).receipts[0]
    assert primary.h.run(primary.h.signer("kyc").grant_claim("eve", "accredited", primary.closes_at - 1)).ok
    receipts = [opened, *primary.at(primary.opens_at, primary.subscribe("ann", 4_000_000), primary.subscribe("ben", 3_000_000),
                                  primary.subscribe("eve", 500_000), primary.subscribe("cat", 500_000))]
    receipts += primary.at(primary.opens_at + 1, primary.h.signer("cat").withdraw_subscription("OFF"))
    assert primary.open("OFF-2") == "0x51 success"
    receipts += primary.at(primary.closes_at, primary.close())
    receipts += [primary.h.commit(primary.h.signer("agent").cancel_offering("OFF-2")).receipts[0]]
    kinds = set()
    for receipt in receipts:
        assert receipt.outcome.ok, str(receipt.outcome)
        for event in receipt.events:
            assert event.kind in EVENT_KINDS, event.kind
            kinds.add(event.kind)
            wallet = event.data.get("wallet")
            assert wallet is None or wallet in event.addresses, event
            if event.kind.startswith("offering."):
                assert event.token == "ACME" and event.data["id"] in ("OFF", "OFF-2")
    assert {k for k in EVENT_KINDS if k.startswith("offering.")} == {k for k in kinds if k.startswith("offering.")}
