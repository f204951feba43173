"""Settlement instructions (ledger/settlement/instructions.py, docs/SETTLEMENT.md): creation and who
may create, affirmations and their reservations, atomic settlement in leg order, failures by type,
rejection, expiry, lost wallets, the dry run and the queries."""

from __future__ import annotations

import pytest

from ledger import queries
from ledger.errors import IntegerOutOfBounds, InvalidBody
from ledger.kinds import LEGS_MAX, check_body
from ledger.testing import FAR_FUTURE_S, address_of

A = address_of
DVP = [("ACME", "alice", "bob", 100), ("USD", "bob", "alice", 25_000)]


def _body(**overrides):
    body = {"legs": [["ACME", A("alice"), A("bob"), 1]], "settlement_type": "on_affirmation",
            "settle_at_height": None, "expires_at": FAR_FUTURE_S, "venue": None, "reference": None}
    return {**body, **overrides}


# --- the body ----------------------------------------------------------------------------------------


def test_bodies_are_checked_at_decode():
    check_body("settlement.create", _body())
    leg = ["ACME", A("alice"), A("bob"), 1]
    with pytest.raises(InvalidBody, match=f"legs: expected 1 to {LEGS_MAX} legs"):
        check_body("settlement.create", _body(legs=[leg] * (LEGS_MAX + 1)))
    check_body("settlement.create", _body(legs=[leg] * LEGS_MAX))
    with pytest.raises(InvalidBody, match="legs: expected 1 to"):
        check_body("settlement.create", _body(legs=[]))
    with pytest.raises(InvalidBody, match=r"legs\[0\]: from and to are the same wallet"):
        check_body("settlement.create", _body(legs=[["ACME", A("alice"), A("alice"), 1]]))
    with pytest.raises(IntegerOutOfBounds, match=r"legs\[0\].amount"):
        check_body("settlement.create", _body(legs=[["ACME", A("alice"), A("bob"), 0]]))
    with pytest.raises(InvalidBody, match="settle_at_height: required for at_height"):
        check_body("settlement.create", _body(settlement_type="at_height"))
    with pytest.raises(InvalidBody, match="settle_at_height: required for at_height"):
        check_body("settlement.create", _body(settlement_type="manual", settle_at_height=5))
    check_body("settlement.create", _body(settlement_type="at_height", settle_at_height=5))
    with pytest.raises(InvalidBody, match="settlement_type: expected one of"):
        check_body("settlement.create", _body(settlement_type="soon"))
    with pytest.raises(InvalidBody, match="missing field 'venue'"):
        check_body("settlement.create", {k: v for k, v in _body().items() if k != "venue"})


# --- a DvP, start to end ------------------------------------------------------------------------------


def test_a_dvp_settles_on_the_last_affirmation_and_moves_every_leg(desk):
    iid, outcome = desk.create("alice", DVP, reference="T-1")
    assert outcome.ok and iid == 1
    assert desk.do("alice", "affirm", iid) == ("0x51 success", ["settlement.affirmed"])
    assert desk.reserved("ACME", "alice") == 100 and desk.record(iid)["status"] == "pending"
    result = desk.h.commit(desk.signer("bob").affirm_instruction(iid))
    events = result.receipts[0].events
    assert [e.kind for e in events] == ["settlement.affirmed", "token.transferred", "token.transferred",
                                        "settlement.settled"]
    transfer = events[1]
    assert transfer.token == "ACME" and transfer.addresses == (A("alice"), A("bob"))
    assert transfer.data == {"from": A("alice"), "to": A("bob"), "amount": 100, "instruction": iid, "leg": 0}
    assert events[2].data["leg"] == 1 and events[2].token == "USD"
    assert set(events[3].addresses) == {A("alice"), A("bob")}
    assert (desk.balance("ACME", "alice"), desk.balance("ACME", "bob")) == (900, 100)
    assert (desk.balance("USD", "bob"), desk.balance("USD", "alice")) == (475_000, 25_000)
    assert desk.reserved("ACME", "alice") == desk.reserved("USD", "bob") == 0
    record = desk.record(iid)
    assert record["status"] == "settled" and record["closed_height"] == result.height
    # a settled instruction never settles again, nor changes
    for signer, verb in (("alice", "execute"), ("bob", "affirm"), ("alice", "withdraw"), ("bob", "reject"),
                         ("dave", "expire")):
        assert desk.do(signer, verb, iid)[0] == "0x50 instruction_settled"
    assert (desk.balance("ACME", "bob"), desk.balance("USD", "alice")) == (100, 25_000)


def test_affirmed_units_cannot_leave_until_settlement(desk):
    """The race of the issue: affirm, then try to send the same units away, then settle."""
    iid, _ = desk.create("alice", [("ACME", "alice", "bob", 1_000), ("USD", "bob", "alice", 10)])
    assert desk.do("alice", "affirm", iid)[0] == "0x51 success"
    assert desk.run(desk.signer("alice").transfer("ACME", A("carol"), 1)) == "0x52 insufficient_unreserved_balance"
    # the compliance dry run says the same
    assert str(desk.ledger.compliance_check("ACME", A("alice"), A("carol"), 1)) == \
        "0x52 insufficient_unreserved_balance"
    assert desk.do("bob", "affirm", iid)[1][-1] == "settlement.settled"
    assert desk.balance("ACME", "bob") == 1_000 and desk.balance("ACME", "alice") == 0


def test_one_affirmation_covers_every_leg_of_its_wallet_and_reserves_their_sum(desk):
    legs = [("ACME", "alice", "bob", 300), ("USD", "bob", "alice", 1), ("ACME", "alice", "carol", 200)]
    iid, _ = desk.create("bob", legs)
    outcome, _ = desk.do("alice", "affirm", iid)
    assert outcome == "0x51 success" and desk.reserved("ACME", "alice") == 500
    assert desk.run(desk.signer("alice").transfer("ACME", A("dave"), 501)) == "0x52 insufficient_unreserved_balance"
    assert desk.run(desk.signer("alice").transfer("ACME", A("dave"), 500)) == "0x51 success"
    assert desk.do("bob", "affirm", iid)[1][-1] == "settlement.settled"
    assert [desk.balance("ACME", w) for w in ("alice", "bob", "carol", "dave")] == [0, 300, 400, 500]


def test_affirming_checks_each_leg_now_and_reserves_as_it_goes(desk):
    # 600 + 600 from a wallet of 1,000: the second leg is refused against what the first reserved
    iid, _ = desk.create("alice", [("ACME", "alice", "bob", 600), ("ACME", "alice", "carol", 600)])
    assert desk.do("alice", "affirm", iid)[0] == "0x52 insufficient_unreserved_balance"
    assert desk.reserved("ACME", "alice") == 0  # a refused affirmation reserves nothing
    # units another instruction reserved are not there to reserve again
    first, _ = desk.create("alice", [("ACME", "alice", "bob", 700)], settlement_type="manual")
    second, _ = desk.create("alice", [("ACME", "alice", "carol", 400)], settlement_type="manual")
    assert desk.do("alice", "affirm", first)[0] == "0x51 success"
    assert desk.do("alice", "affirm", second)[0] == "0x52 insufficient_unreserved_balance"
    # every rule of the transfer, with its own code: a frozen sender, a receiver without claims
    frozen, _ = desk.create("carol", [("ACME", "carol", "bob", 10)])
    desk.run(desk.signer("agent").freeze("ACME", A("carol")))
    assert desk.do("carol", "affirm", frozen)[0] == "0x56 sender_frozen"
    desk.run(desk.signer("kyc").register_identity("eve", [A("eve")]))  # no kyc claim
    nokyc, _ = desk.create("bob", [("USD", "bob", "eve", 10)])
    assert desk.do("bob", "affirm", nokyc)[0] == "0x57 receiver_missing_claim:kyc"
    assert desk.reserved("USD", "bob") == 0


def test_affirmation_refusals_in_order(desk):
    iid, _ = desk.create("alice", DVP)
    assert desk.do("alice", "affirm", 99)[0] == "0x50 unknown_instruction"
    assert desk.do("carol", "affirm", iid)[0] == "0x58 not_authorized:sender"
    assert desk.do("alice-2", "affirm", iid)[0] == "0x58 not_authorized:sender"  # the sending wallet affirms
    assert desk.do("alice", "affirm", iid)[0] == "0x51 success"
    assert desk.do("alice", "affirm", iid)[0] == "0x50 already_affirmed"
    assert desk.reserved("ACME", "alice") == 100


def test_withdrawing_releases_exactly_the_affirmation(desk):
    other, _ = desk.create("alice", [("ACME", "alice", "carol", 50)], settlement_type="manual")
    assert desk.do("alice", "affirm", other)[0] == "0x51 success"
    iid, _ = desk.create("alice", DVP)
    assert desk.do("bob", "withdraw", iid)[0] == "0x50 not_affirmed"
    assert desk.do("alice", "affirm", iid)[0] == "0x51 success"
    assert desk.reserved("ACME", "alice") == 150
    assert desk.do("alice", "withdraw", iid) == ("0x51 success", ["settlement.affirmation_withdrawn"])
    assert desk.reserved("ACME", "alice") == 50  # the other instruction's reservation stays
    assert desk.record(iid)["affirmed"] == ()
    assert desk.do("bob", "affirm", iid)[1] == ["settlement.affirmed"]  # alice's affirmation is missing now
    assert desk.do("alice", "affirm", iid)[1][-1] == "settlement.settled"
    assert desk.reserved("ACME", "alice") == 50
    # a wallet with several legs gets every one of them back
    several, _ = desk.create("alice", [("ACME", "alice", "bob", 10), ("USD", "bob", "alice", 1),
                                       ("ACME", "alice", "carol", 20), ("ACME", "alice", "dave", 30)])
    desk.do("alice", "affirm", several)
    assert desk.reserved("ACME", "alice") == 110
    desk.do("alice", "withdraw", several)
    assert desk.reserved("ACME", "alice") == 50


# --- settlement is atomic, in leg order -------------------------------------------------------------


def test_a_failing_second_leg_leaves_the_first_legs_units_unmoved(desk):
    iid, _ = desk.create("alice", DVP, settlement_type="manual")
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    desk.run(desk.signer("agent").freeze("USD", A("alice")))  # alice may no longer receive the cash
    outcome, kinds = desk.do("alice", "execute", iid)
    assert (outcome, kinds) == ("0x51 success", ["settlement.failed"])  # no transfer event survives
    record = desk.record(iid)
    assert record["status"] == "pending" and record["last_failure"][:3] == (1, 0x57, "receiver_frozen")
    assert (desk.balance("ACME", "alice"), desk.balance("ACME", "bob")) == (1_000, 0)
    assert desk.reserved("ACME", "alice") == 100 and desk.reserved("USD", "bob") == 25_000  # still reserved
    # fixed, then retried: it settles
    desk.run(desk.signer("agent").unfreeze("USD", A("alice")))
    assert desk.do("alice", "execute", iid)[1][-1] == "settlement.settled"
    assert desk.record(iid)["last_failure"][:3] == (1, 0x57, "receiver_frozen")  # the history of the attempt
    assert (desk.balance("ACME", "bob"), desk.balance("USD", "alice")) == (100, 25_000)


def test_a_later_leg_sees_the_effects_of_the_earlier_legs(desk):
    """Each leg alone passes the volume window at affirmation; together the second one breaks it."""
    desk.run(desk.signer("issuer").set_rules("ACME", {"required_claims": ["kyc"],
                                                      "volume_limit": {"window_s": 3_600, "amount_max": 30}}))
    iid, _ = desk.create("alice", [("ACME", "alice", "bob", 20), ("ACME", "alice", "carol", 20)])
    outcome, kinds = desk.do("alice", "affirm", iid)
    assert outcome == "0x51 success" and kinds == ["settlement.affirmed", "settlement.failed"]
    assert desk.record(iid)["last_failure"][:3] == (1, 0x55, "volume_limit_exceeded")
    assert desk.balance("ACME", "bob") == 0 and desk.balance("ACME", "alice") == 1_000
    assert desk.reserved("ACME", "alice") == 40  # on_affirmation stays pending, its units reserved


def test_legs_between_wallets_of_one_identity_move_as_own_transfers(desk):
    desk.run(desk.signer("issuer").set_rules("ACME", {"required_claims": ["kyc"], "holding_period_s": 86_400 * 365}))
    iid, _ = desk.create("bob", [("ACME", "alice", "alice-2", 10), ("USD", "bob", "alice", 1)])
    desk.do("alice", "affirm", iid)
    assert desk.do("bob", "affirm", iid)[1][-1] == "settlement.settled"  # lock-up does not apply to own wallets
    assert (desk.balance("ACME", "alice"), desk.balance("ACME", "alice-2")) == (990, 10)


def test_an_agents_legal_order_may_take_reserved_units_and_the_settlement_then_fails_its_recheck(desk):
    iid, _ = desk.create("alice", DVP, settlement_type="manual")
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    assert desk.run(desk.signer("agent").force_transfer("ACME", A("alice"), A("carol"), 950)) == "0x51 success"
    outcome, kinds = desk.do("bob", "execute", iid)
    assert kinds == ["settlement.failed"] and desk.record(iid)["last_failure"][:3] == (0, 0x52, "insufficient_balance")
    assert desk.do("bob", "reject", iid)[0] == "0x51 success"
    assert desk.reserved("ACME", "alice") == 0 and desk.reserved("USD", "bob") == 0


def test_a_cash_leg_is_just_another_token_with_its_own_rules(desk):
    desk.run(desk.signer("issuer").set_rules("USD", {"required_claims": ["accredited", "kyc"]}))
    iid, _ = desk.create("carol", [("ACME", "carol", "bob", 10), ("USD", "bob", "carol", 5)])
    assert desk.do("carol", "affirm", iid)[0] == "0x51 success"  # ACME asks only kyc of bob
    # carol is not accredited: the deposit token's own rule refuses the cash leg to her
    assert desk.do("bob", "affirm", iid)[0] == "0x57 receiver_missing_claim:accredited"
    # a paused cash token stops the whole trade at settlement, and nothing moves
    trade, _ = desk.create("alice", DVP, settlement_type="manual")
    desk.do("alice", "affirm", trade)
    desk.do("bob", "affirm", trade)
    desk.run(desk.signer("agent").pause("USD"))
    assert desk.do("alice", "execute", trade)[1] == ["settlement.failed"]
    assert desk.record(trade)["last_failure"][:3] == (1, 0x54, "token_paused")
    assert desk.balance("ACME", "bob") == 0


# --- settlement types ---------------------------------------------------------------------------------


def test_at_height_settles_at_the_first_execution_at_or_after_its_height(desk):
    height = desk.ledger.tip.height + 6
    iid, outcome = desk.create("alice", DVP, settlement_type="at_height", settle_at_height=height)
    assert outcome.ok
    desk.do("alice", "affirm", iid)
    assert desk.do("bob", "affirm", iid)[1] == ["settlement.affirmed"]  # every affirmation in, but not yet
    assert desk.do("dave", "execute", iid)[0] == "0x50 settle_height_not_reached"
    while desk.ledger.tip.height + 1 < height:
        desk.commit()
    assert desk.do("dave", "execute", iid)[1][-1] == "settlement.settled"  # anyone may send it
    assert desk.record(iid)["closed_height"] == height


def test_at_height_settles_on_the_last_affirmation_when_it_comes_after_the_height(desk):
    iid, _ = desk.create("alice", DVP, settlement_type="at_height", settle_at_height=desk.ledger.tip.height + 2)
    desk.do("alice", "affirm", iid)
    desk.commit()
    assert desk.do("bob", "affirm", iid)[1][-1] == "settlement.settled"


def test_a_failed_at_height_instruction_is_final_and_releases_its_reservations(desk):
    iid, _ = desk.create("alice", DVP, settlement_type="at_height", settle_at_height=desk.ledger.tip.height + 4)
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    desk.run(desk.signer("agent").freeze("ACME", A("bob")))
    outcome, kinds = desk.do("carol", "execute", iid)
    assert (outcome, kinds) == ("0x51 success", ["settlement.failed"])
    record = desk.record(iid)
    assert record["status"] == "failed" and record["last_failure"][:3] == (0, 0x57, "receiver_frozen")
    assert desk.reserved("ACME", "alice") == 0 and desk.reserved("USD", "bob") == 0
    desk.run(desk.signer("agent").unfreeze("ACME", A("bob")))
    assert desk.do("carol", "execute", iid)[0] == "0x50 instruction_failed"
    assert desk.do("alice", "reject", iid)[0] == "0x50 instruction_failed"


def test_manual_instructions_settle_when_the_venue_executes(desk):
    assert desk.run(desk.signer("admin").grant_role("venue_operator", A("venue"))) == "0x51 success"
    iid, outcome = desk.create("venue", DVP, settlement_type="manual", venue=A("venue"))
    assert outcome.ok
    desk.do("alice", "affirm", iid)
    assert desk.do("venue", "execute", iid)[0] == "0x50 affirmations_missing"
    assert desk.do("bob", "affirm", iid)[1] == ["settlement.affirmed"]  # manual: waits for the venue
    assert desk.do("alice", "execute", iid)[0] == "0x58 not_authorized:venue"  # a party may not, with a venue
    assert desk.do("venue", "execute", iid)[1][-1] == "settlement.settled"
    # without a venue, a party executes it (any wallet of its identity)
    own, _ = desk.create("alice", [("ACME", "alice", "carol", 1)], settlement_type="manual")
    desk.do("alice", "affirm", own)
    assert desk.do("dave", "execute", own)[0] == "0x58 not_authorized:party"
    assert desk.do("alice-2", "execute", own)[1][-1] == "settlement.settled"


def test_a_venue_acts_only_while_it_holds_the_role(desk):
    desk.run(desk.signer("admin").grant_role("venue_operator", A("venue")))
    iid, _ = desk.create("venue", DVP, settlement_type="manual", venue=A("venue"))
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    desk.run(desk.signer("admin").revoke_role("venue_operator", A("venue")))
    assert desk.do("venue", "execute", iid)[0] == "0x58 not_authorized:venue_operator"
    assert desk.do("venue", "reject", iid)[0] == "0x58 not_authorized:party"
    assert desk.do("bob", "reject", iid)[0] == "0x51 success"  # the parties still can


# --- who may create, reject ----------------------------------------------------------------------------


def test_who_may_create(desk):
    assert desk.create("dave", DVP)[1].reason == "not_authorized:party"
    assert desk.create("nobody", [("ACME", "alice", "nobody", 1)])[1].reason == "not_authorized:party"  # unregistered
    assert desk.create("alice-2", DVP)[1].ok  # another wallet of a party's identity
    assert desk.create("bob", DVP)[1].ok  # a receiver of a leg
    assert str(desk.create("venue", DVP, venue=A("venue"))[1]) == "0x58 not_authorized:venue_operator"
    assert str(desk.create("alice", DVP, venue=A("venue"))[1]) == "0x58 not_authorized:venue"
    desk.run(desk.signer("admin").grant_role("venue_operator", A("venue")))
    assert desk.create("venue", DVP, venue=A("venue"))[1].ok
    assert str(desk.create("venue", DVP)[1]) == "0x58 not_authorized:party"  # a venue names itself
    assert str(desk.create("alice", [("NOPE", "alice", "bob", 1)])[1]) == "0x50 unknown_token"
    assert str(desk.create("alice", DVP, settlement_type="at_height", settle_at_height=desk.ledger.tip.height + 1)[1]) \
        == "0x50 settle_height_passed"
    assert str(desk.create("alice", DVP, expires_at=desk.now_s + 1)[1]) == "0x50 expiry_in_the_past"
    ids = [desk.create("alice", DVP)[0] for _ in range(2)]
    assert ids[1] == ids[0] + 1  # a chain counter


def test_the_venue_operator_role_is_granted_by_governance_on_a_chain_with_members(tmp_path):
    from ledger.client import Action
    from ledger.testing import LedgerHarness, governed_genesis

    h = LedgerHarness(str(tmp_path / "gov"), genesis=governed_genesis())
    try:
        assert str(h.run(h.signer("admin").grant_role("venue_operator", A("venue")))) == "0x58 governance_required"
        assert h.run(h.signer("m0").propose([Action.grant_role("venue_operator", A("venue"))],
                                            expires_at_height=100)).ok
        assert h.ledger.store is not None and queries.accounts_with_role(h.ledger, "venue_operator") == [A("venue")]
    finally:
        h.close()


def test_rejection_by_a_party_or_the_venue_releases_every_reservation(desk):
    iid, _ = desk.create("alice", DVP)
    desk.do("alice", "affirm", iid)
    assert desk.do("dave", "reject", iid)[0] == "0x58 not_authorized:party"
    assert desk.do("bob", "reject", iid) == ("0x51 success", ["settlement.rejected"])  # a receiver may reject
    assert desk.reserved("ACME", "alice") == 0 and desk.record(iid)["status"] == "rejected"
    assert desk.do("bob", "affirm", iid)[0] == "0x50 instruction_rejected"
    desk.run(desk.signer("admin").grant_role("venue_operator", A("venue")))
    other, _ = desk.create("venue", DVP, venue=A("venue"))
    desk.do("bob", "affirm", other)
    assert desk.do("venue", "reject", other)[0] == "0x51 success"
    assert desk.reserved("USD", "bob") == 0


# --- expiry, lost wallets -------------------------------------------------------------------------------


def test_expiry_stops_settlement_and_expire_releases(desk):
    iid, _ = desk.create("alice", DVP, expires_at=desk.now_s + 60)
    desk.do("alice", "affirm", iid)
    assert desk.do("dave", "expire", iid)[0] == "0x50 instruction_not_expired"
    assert desk.do("bob", "affirm", iid, advance_ms=60_000)[0] == "0x50 instruction_expired"
    assert desk.do("alice", "execute", iid)[0] == "0x50 instruction_expired"
    assert desk.run(desk.signer("alice").transfer("ACME", A("dave"), 901)) == "0x52 insufficient_unreserved_balance"
    assert desk.do("dave", "expire", iid) == ("0x51 success", ["settlement.expired"])  # anyone
    assert desk.reserved("ACME", "alice") == 0 and desk.record(iid)["status"] == "expired"
    assert desk.run(desk.signer("alice").transfer("ACME", A("dave"), 901)) == "0x51 success"
    assert desk.do("dave", "expire", iid)[0] == "0x50 instruction_expired"


def test_a_lost_wallet_may_not_create_affirm_withdraw_or_reject(desk):
    iid, _ = desk.create("alice", DVP)
    desk.do("alice", "affirm", iid)
    other, _ = desk.create("bob", [("USD", "bob", "alice", 1)])
    assert desk.run(desk.signer("agent").recover("ACME", A("alice"), A("alice-2"))) == "0x51 success"
    assert str(desk.create("alice", DVP)[1]) == "0x56 sender_wallet_lost"
    for verb, instruction in (("affirm", other), ("withdraw", iid), ("reject", iid), ("execute", iid)):
        assert desk.do("alice", verb, instruction)[0] == "0x56 sender_wallet_lost", verb
    # the investor acts through the wallet the holding was recovered to
    assert desk.do("alice-2", "reject", iid)[0] == "0x51 success"
    assert desk.reserved("ACME", "alice") == 0


# --- the dry run and the queries ------------------------------------------------------------------------


def test_settlement_check_answers_what_settling_now_would_do(desk):
    iid, _ = desk.create("alice", DVP, settlement_type="manual")
    check = queries.settlement_check(desk.ledger, iid)
    assert check["ok"] is False and check["reason"] == "affirmations_missing"
    assert check["legs"] == {"ok": True, "code": 0x51, "reason": "success", "leg": None}  # as if affirmed now
    assert check["missing_affirmations"] == sorted([A("alice"), A("bob")])
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    assert queries.settlement_check(desk.ledger, iid)["ok"] is True
    desk.run(desk.signer("agent").freeze("USD", A("alice")))
    check = queries.settlement_check(desk.ledger, iid)
    assert (check["ok"], check["leg"], check["code"], check["reason"]) == (False, 1, 0x57, "receiver_frozen")
    before = desk.ledger.tip.state_root
    assert desk.reserved("ACME", "alice") == 100  # the dry run released nothing for good
    assert desk.ledger.tip.state_root == before
    outcome, kinds = desk.do("alice", "execute", iid)
    assert desk.record(iid)["last_failure"][:3] == (check["leg"], check["code"], check["reason"])
    with pytest.raises(queries.NotFound):
        queries.settlement_check(desk.ledger, 99)


def test_queries_by_party_token_status_and_height(desk):
    first, _ = desk.create("alice", DVP)
    second, _ = desk.create("carol", [("ACME", "carol", "dave", 5)])
    third, _ = desk.create("bob", [("USD", "bob", "alice-2", 7)])
    desk.do("carol", "affirm", second)  # settles
    h_third = desk.record(third)["created_height"]

    def ids(**filters):
        return [i["id"] for i in queries.settlement_instructions(desk.ledger, **filters)["instructions"]]

    assert ids() == [first, second, third]
    assert ids(wallet=A("alice")) == [first]
    assert ids(identity="alice") == [first, third]  # any wallet of the identity
    assert ids(identity="dave") == [second]
    assert ids(token="USD") == [first, third]
    assert ids(status="settled") == [second]
    assert ids(identity="alice", status="pending", token="USD") == [first, third]
    assert ids(from_height=h_third) == [third] and ids(to_height=h_third - 1) == [first, second]
    page = queries.settlement_instructions(desk.ledger, limit=2)
    assert [i["id"] for i in page["instructions"]] == [first, second] and page["next"] == second
    assert [i["id"] for i in queries.settlement_instructions(desk.ledger, after=page["next"])["instructions"]] == [third]
    view = queries.settlement_instruction(desk.ledger, second)
    assert view["status"] == "settled" and view["legs"] == [
        {"leg": 0, "token": "ACME", "from": A("carol"), "to": A("dave"), "amount": 5, "affirmed": True}]
    with pytest.raises(queries.NotFound):
        queries.settlement_instructions(desk.ledger, identity="nobody")
    with pytest.raises(queries.NotFound):
        queries.settlement_instruction(desk.ledger, 99)


def test_every_party_finds_the_instruction_in_its_history(desk):
    iid, _ = desk.create("alice", DVP)
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    for party in ("alice", "bob"):
        kinds = [e["kind"] for e in queries.events(desk.ledger, address=A(party), from_height=1)["events"]]
        assert [k for k in kinds if k.startswith("settlement.")] == [
            "settlement.created", "settlement.affirmed", "settlement.affirmed", "settlement.settled"], party
        assert kinds.count("token.transferred") == 2
    trail = [e["kind"] for e in queries.identity_history(desk.ledger, "alice")["events"]]
    assert "settlement.settled" in trail


def test_the_dry_run_leaves_the_state_it_ran_on_as_it_was(desk):
    from ledger import layout
    from ledger.settlement.instructions import preview

    iid, _ = desk.create("alice", DVP, settlement_type="manual")
    desk.do("alice", "affirm", iid)
    desk.do("bob", "affirm", iid)
    with desk.ledger.store.read() as txn:
        state = desk.ledger.store.state_over(txn)
        keys = [layout.balance("ACME", A("alice")), layout.balance("ACME", A("bob")),
                layout.reserved("ACME", A("alice")), layout.reserved("USD", A("bob"))]
        before = [state.get(key) for key in keys]
        answer = preview(state, iid, time_s=desk.now_s + 1, height=desk.ledger.tip.height + 1)
        assert answer["ok"] is True
        assert [state.get(key) for key in keys] == before  # the same State object, after the run
        assert list(state.block_writes()) == []
