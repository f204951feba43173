"""Every operation's events, exactly: kind, token, the addresses it is indexed under, and data.

Events are the source of truth: they are stored with the block, covered by the state root, served to
subscribers and to the address and token indexes. A field left out, a token or an address not named,
is a silent change of what every node stores and what every client reads.
"""

from __future__ import annotations

from ledger.events import Event
from ledger.testing import FAR_FUTURE_S, address_of

A, B, C, C2 = (address_of(n) for n in ("alice", "bob", "carol", "carol-2"))
AGENT, ISSUER, KYC = address_of("agent"), address_of("issuer"), address_of("kyc")


def events(chain, signer: str, method: str, *args) -> tuple[Event, ...]:
    receipt = chain.commit(getattr(chain.signer(signer), method)(*args)).receipts[0]
    assert receipt.outcome.ok, str(receipt.outcome)
    return tuple(receipt.events)


def test_role_events(chain):
    newcomer = address_of("newcomer")
    assert events(chain, "admin", "grant_role", "claim_issuer", newcomer) == (
        Event("role.granted", None, (newcomer,), {"role": "claim_issuer", "account": newcomer}),)
    assert events(chain, "admin", "revoke_role", "claim_issuer", newcomer) == (
        Event("role.revoked", None, (newcomer,), {"role": "claim_issuer", "account": newcomer}),)


def test_identity_and_claim_events(chain):
    assert events(chain, "kyc", "register_identity", "carol", [C]) == (
        Event("identity.registered", None, (C,), {"identity": "carol", "wallets": [C]}),)
    assert events(chain, "kyc", "add_wallet", "carol", C2) == (
        Event("identity.wallet_added", None, (C2,), {"identity": "carol", "wallet": C2}),)
    assert events(chain, "kyc", "grant_claim", "carol", "country", FAR_FUTURE_S, "DE") == (
        Event("claim.granted", None, (), {"identity": "carol", "topic": "country", "value": "DE", "issuer": KYC,
                                          "expires_at": FAR_FUTURE_S}),)
    assert events(chain, "kyc", "revoke_claim", "carol", "country") == (
        Event("claim.revoked", None, (), {"identity": "carol", "topic": "country", "issuer": KYC}),)


def test_token_creation_event(chain):
    raw = chain.signer("issuer").create_token("ZETA", "Zeta preferred", decimals=2, paused=True,
                                              rules={"holders_max": 5}, agents={AGENT: ["freeze"]})
    receipt = chain.commit(raw).receipts[0]
    assert tuple(receipt.events) == (
        Event("token.created", "ZETA", (ISSUER,), {"symbol": "ZETA", "name": "Zeta preferred", "decimals": 2,
                                                  "owner": ISSUER, "paused": True, "rules": {"holders_max": 5},
                                                  "agents": [[AGENT, ["freeze"]]]}),)


def test_token_set_up_events(market):
    assert events(market, "issuer", "set_agent", "ACME", B, ["freeze", "pause"]) == (
        Event("token.agent_set", "ACME", (B,), {"agent": B, "roles": ["freeze", "pause"]}),)
    assert events(market, "issuer", "set_rules", "ACME", {"holders_max": 9}) == (
        Event("token.rules_changed", "ACME", (), {"rules": {"holders_max": 9}}),)


def test_supply_and_transfer_events(market):
    assert events(market, "agent", "issue", "ACME", A, 10) == (
        Event("token.issued", "ACME", (A,), {"to": A, "amount": 10}),)
    assert events(market, "alice", "transfer", "ACME", B, 4) == (
        Event("token.transferred", "ACME", (A, B), {"from": A, "to": B, "amount": 4}),)
    assert events(market, "agent", "force_transfer", "ACME", B, A, 1) == (
        Event("token.force_transferred", "ACME", (B, A), {"from": B, "to": A, "amount": 1, "agent": AGENT}),)
    assert events(market, "agent", "redeem", "ACME", A, 2) == (
        Event("token.redeemed", "ACME", (A,), {"from": A, "amount": 2}),)


def test_freeze_and_pause_events(market):
    events(market, "agent", "issue", "ACME", A, 10)
    assert events(market, "agent", "freeze", "ACME", A) == (Event("token.frozen", "ACME", (A,), {"address": A}),)
    assert events(market, "agent", "unfreeze", "ACME", A) == (Event("token.unfrozen", "ACME", (A,), {"address": A}),)
    assert events(market, "agent", "freeze_partial", "ACME", A, 3) == (
        Event("token.partially_frozen", "ACME", (A,), {"address": A, "amount": 3}),)
    assert events(market, "agent", "unfreeze_partial", "ACME", A, 2) == (
        Event("token.partially_unfrozen", "ACME", (A,), {"address": A, "amount": 2}),)
    assert events(market, "agent", "pause", "ACME") == (Event("token.paused", "ACME", (), {}),)
    assert events(market, "agent", "unpause", "ACME") == (Event("token.unpaused", "ACME", (), {}),)


def test_a_forced_transfer_of_frozen_units_says_what_it_unfroze(market):
    events(market, "agent", "issue", "ACME", A, 10)
    events(market, "agent", "freeze_partial", "ACME", A, 8)  # 2 free
    assert events(market, "agent", "force_transfer", "ACME", A, B, 5) == (
        Event("token.partially_unfrozen", "ACME", (A,), {"address": A, "amount": 3}),
        Event("token.force_transferred", "ACME", (A, B), {"from": A, "to": B, "amount": 5, "agent": AGENT}),
    )


def test_a_forced_move_between_one_investors_wallets_unfreezes_exactly_the_excess(market):
    events(market, "agent", "issue", "ACME", C, 10)
    events(market, "agent", "freeze_partial", "ACME", C, 6)  # 4 free
    assert events(market, "agent", "force_transfer", "ACME", C, C2, 4) == (  # the free part: nothing unfrozen
        Event("token.force_transferred", "ACME", (C, C2), {"from": C, "to": C2, "amount": 4, "agent": AGENT}),)
    events(market, "agent", "issue", "ACME", C, 3)  # 3 free again, 6 frozen
    assert events(market, "agent", "force_transfer", "ACME", C, C2, 5) == (
        Event("token.partially_unfrozen", "ACME", (C,), {"address": C, "amount": 2}),
        Event("token.force_transferred", "ACME", (C, C2), {"from": C, "to": C2, "amount": 5, "agent": AGENT}),
    )


def test_recovery_event(market):
    events(market, "agent", "issue", "ACME", C, 10)
    events(market, "agent", "freeze_partial", "ACME", C, 4)
    events(market, "agent", "freeze", "ACME", C)
    assert events(market, "agent", "recover", "ACME", C, C2) == (
        Event("token.recovered", "ACME", (C, C2), {"lost_wallet": C, "new_wallet": C2, "identity": "carol",
                                                   "amount": 10, "frozen_amount": 4, "address_frozen": True,
                                                   "agent": AGENT}),)


def test_a_refusal_is_one_rejection_event_naming_the_token_and_the_signer(market):
    receipt = market.commit(market.signer("bob").transfer("ACME", A, 1)).receipts[0]
    assert tuple(receipt.events) == (
        Event("tx.rejected", "ACME", (B,), {"kind": "token.transfer", "code": 0x52,
                                            "reason": "insufficient_balance"}),)


def test_a_role_revoked_by_a_members_proposal_names_the_proposal(tmp_path):
    from ledger.client import Action
    from ledger.testing import LedgerHarness, governed_genesis

    h = LedgerHarness(str(tmp_path / "governed"), genesis=governed_genesis())
    try:
        kyc = address_of("kyc")
        for action in (Action.grant_role("claim_issuer", kyc), Action.revoke_role("claim_issuer", kyc)):
            receipt = h.commit(h.signer("m0").propose([action], expires_at_height=h.ledger.tip.height + 100)
                               ).receipts[0]
            assert receipt.outcome.ok, str(receipt.outcome)
        proposal = next(e.data["proposal"] for e in receipt.events if e.kind == "gov.proposed")
        assert [e for e in receipt.events if e.kind == "role.revoked"] == [
            Event("role.revoked", None, (kyc,), {"role": "claim_issuer", "account": kyc, "proposal": proposal})]
    finally:
        h.close()


def test_a_refused_token_creation_names_its_symbol_and_other_refusals_outside_tokens_name_none(market):
    receipt = market.commit(market.signer("bob").create_token("ZETA", "Zeta")).receipts[0]
    assert tuple(receipt.events) == (
        Event("tx.rejected", "ZETA", (B,), {"kind": "token.create", "code": 0x58,
                                            "reason": "not_authorized:token_issuer"}),)
    tip = market.ledger.tip.height  # a ballot names its token in its body, but is no token operation
    receipt = market.commit(market.signer("bob").create_ballot(
        "b1", "ACME", "Merge?", ["yes", "no"], record_height=tip, opens_at_height=tip + 1,
        closes_at_height=tip + 5)).receipts[0]
    assert [(e.kind, e.token) for e in receipt.events] == [("tx.rejected", None)]
