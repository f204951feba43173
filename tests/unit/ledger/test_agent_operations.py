"""Agent operations: issue, redeem, forced transfer, freezes, pause and recovery. Who may do each
(one agent role each), the exact code when someone else tries, and the edge semantics."""

from __future__ import annotations

import pytest

from ledger import layout, queries
from ledger.kinds import AMOUNT_MAX
from ledger.testing import FAR_FUTURE_S, address_of


def wallet(chain, name: str, token: str = "ACME") -> tuple[int, int, bool]:
    b = queries.balance(chain.ledger, token, address_of(name))
    return b["balance"], b["frozen"], b["address_frozen"]


def info(chain, token: str = "ACME") -> tuple[int, int]:
    i = queries.token_info(chain.ledger, token)
    return i["total_supply"], i["holder_count"]


def holding(chain, identity: str, token: str = "ACME"):
    with chain.ledger.store.read() as txn:
        return chain.ledger.store.state_over(txn).get(layout.holding(token, identity))


def run(chain, signer: str, method: str, *args) -> str:
    return str(chain.run(getattr(chain.signer(signer), method)(*args)))


# --- who may do what ---------------------------------------------------------------------------------------

A, B = address_of("alice"), address_of("bob")
OPERATIONS = [
    ("supply", "issue", ("ACME", A, 1)),
    ("supply", "redeem", ("ACME", A, 1)),
    ("force_transfer", "force_transfer", ("ACME", A, B, 1)),
    ("freeze", "freeze", ("ACME", A)),
    ("freeze", "unfreeze", ("ACME", A)),
    ("freeze", "freeze_partial", ("ACME", A, 1)),
    ("freeze", "unfreeze_partial", ("ACME", A, 1)),
    ("pause", "pause", ("ACME",)),
    ("pause", "unpause", ("ACME",)),
    ("recovery", "recover", ("ACME", A, B)),
]


@pytest.mark.parametrize("role, method, args", OPERATIONS)
@pytest.mark.parametrize("who", ["issuer", "admin", "alice", "other-agent"])
def test_each_agent_operation_needs_its_role(market, role, method, args, who):
    """The owner, an administrator, a holder, or an agent with every role but this one: all refused."""
    others = sorted({"force_transfer", "freeze", "pause", "recovery", "supply"} - {role})
    assert market.run(market.signer("issuer").set_agent("ACME", address_of("other-agent"), others)).ok
    assert run(market, who, method, *args) == f"0x58 not_authorized:agent.{role}"


@pytest.mark.parametrize("role, method, args", OPERATIONS)
def test_unknown_token_comes_before_authorisation(market, role, method, args):
    assert run(market, "alice", method, "NOPE", *args[1:]) == "0x50 unknown_token"


def test_an_agent_with_one_role_may_do_exactly_that(market):
    owner = market.signer("issuer")
    assert market.run(owner.set_agent("ACME", address_of("pauser"), ["pause"])).ok
    assert run(market, "pauser", "pause", "ACME") == "0x51 success"
    assert run(market, "pauser", "issue", "ACME", A, 1) == "0x58 not_authorized:agent.supply"
    assert market.run(owner.set_agent("ACME", address_of("pauser"), [])).ok  # removed
    assert run(market, "pauser", "unpause", "ACME") == "0x58 not_authorized:agent.pause"


# --- issue ---------------------------------------------------------------------------------------------------


def test_issue_credits_and_counts(market):
    result = market.commit(market.signer("agent").issue("ACME", A, 100))
    assert result.receipts[0].events[0].kind == "token.issued"
    assert wallet(market, "alice") == (100, 0, False) and info(market) == (100, 1)


def test_issue_runs_the_receivers_checks(market):
    owner = market.signer("issuer")
    assert run(market, "agent", "issue", "ACME", address_of("stranger"), 1) == "0x57 receiver_not_registered"
    assert market.run(owner.set_rules("ACME", {"required_claims": ["accredited"], "country_block": ["DE"]})).ok
    assert run(market, "agent", "issue", "ACME", B, 1) == "0x57 receiver_missing_claim:accredited"
    assert market.run(market.signer("kyc").grant_claim("carol", "accredited", FAR_FUTURE_S)).ok
    assert run(market, "agent", "issue", "ACME", address_of("carol-2"), 1) == "0x57 receiver_country_blocked:DE"
    assert market.run(owner.set_rules("ACME", {"balance_max_per_identity": 5, "holders_max": 1})).ok
    assert run(market, "agent", "issue", "ACME", A, 6) == "0x57 balance_max_exceeded"
    assert run(market, "agent", "issue", "ACME", A, 5) == "0x51 success"
    assert run(market, "agent", "issue", "ACME", B, 1) == "0x57 holders_max_reached"


def test_issue_respects_the_supply_cap(market):
    assert market.run(market.signer("issuer").set_rules("ACME", {"supply_cap": 100})).ok
    assert run(market, "agent", "issue", "ACME", A, 60) == "0x51 success"
    assert run(market, "agent", "issue", "ACME", B, 41) == "0x50 supply_cap_exceeded"
    assert run(market, "agent", "issue", "ACME", B, 40) == "0x51 success"
    assert run(market, "agent", "issue", "ACME", B, 1) == "0x50 supply_cap_exceeded"
    assert run(market, "agent", "redeem", "ACME", B, 10) == "0x51 success"
    assert run(market, "agent", "issue", "ACME", B, 10) == "0x51 success"  # the cap bounds supply, not history


def test_total_supply_never_exceeds_u64(market):
    assert run(market, "agent", "issue", "ACME", A, AMOUNT_MAX) == "0x51 success"
    assert run(market, "agent", "issue", "ACME", B, 1) == "0x50 supply_cap_exceeded"
    assert info(market) == (AMOUNT_MAX, 1)


def test_issue_works_while_paused_and_onto_a_frozen_address(chain):
    chain.investor("alice")
    chain.token("ACME", paused=True)
    assert run(chain, "agent", "freeze", "ACME", A) == "0x51 success"
    assert run(chain, "agent", "issue", "ACME", A, 5) == "0x51 success"
    assert wallet(chain, "alice") == (5, 0, True)


# --- redeem ------------------------------------------------------------------------------------------------


def test_redeem_burns_and_the_holder_leaves_at_zero(market):
    run(market, "agent", "issue", "ACME", A, 10)
    assert run(market, "agent", "redeem", "ACME", A, 11) == "0x52 insufficient_balance"
    assert run(market, "agent", "redeem", "ACME", B, 1) == "0x52 insufficient_balance"
    assert run(market, "agent", "redeem", "ACME", A, 4) == "0x51 success"
    assert info(market) == (6, 1)
    assert run(market, "agent", "redeem", "ACME", A, 6) == "0x51 success"
    assert info(market) == (0, 0) and holding(market, "alice") is None


def test_redeem_unfreezes_exactly_the_excess_over_the_free_balance(market):
    run(market, "agent", "issue", "ACME", A, 10)
    run(market, "agent", "freeze_partial", "ACME", A, 6)
    result = market.commit(market.signer("agent").redeem("ACME", A, 7))  # free 4: 3 come from the frozen part
    assert [(e.kind, e.data.get("amount")) for e in result.receipts[0].events] == [
        ("token.partially_unfrozen", 3), ("token.redeemed", 7)]
    assert wallet(market, "alice") == (3, 3, False)


def test_redeem_works_while_paused_and_from_a_frozen_address(market):
    run(market, "agent", "issue", "ACME", A, 10)
    run(market, "agent", "pause", "ACME")
    run(market, "agent", "freeze", "ACME", A)
    assert run(market, "agent", "redeem", "ACME", A, 10) == "0x51 success"
    assert wallet(market, "alice") == (0, 0, True)


# --- forced transfer -----------------------------------------------------------------------------------------


def test_forced_transfer_skips_rules_pause_and_freezes(market):
    run(market, "agent", "issue", "ACME", A, 10)
    run(market, "agent", "issue", "ACME", B, 10)
    assert market.run(market.signer("issuer").set_rules("ACME", {
        "country_block": ["US"], "holders_max": 1, "balance_max_per_identity": 1, "holding_period_s": 10**6,
        "volume_limit": {"window_s": 100, "amount_max": 1}, "check_sender": True})).ok
    for tx in ("pause", ("ACME",)), ("freeze", ("ACME", A)), ("freeze", ("ACME", B)):
        assert run(market, "agent", tx[0], *tx[1]) == "0x51 success"
    assert run(market, "agent", "force_transfer", "ACME", A, B, 10) == "0x51 success"
    assert wallet(market, "alice") == (0, 0, True) and wallet(market, "bob") == (20, 0, True)
    assert info(market) == (20, 1)
    assert run(market, "agent", "force_transfer", "ACME", B, address_of("carol"), 5) == "0x51 success"
    assert info(market) == (20, 2)  # above the holder cap: rules do not bind agents


def test_forced_transfer_needs_a_verified_receiver_and_enough_balance(market):
    run(market, "agent", "issue", "ACME", A, 10)
    assert market.run(market.signer("issuer").set_rules("ACME", {"required_claims": ["accredited"]})).ok
    ft = "force_transfer"
    assert run(market, "agent", ft, "ACME", address_of("stranger"), B, 1) == "0x56 sender_not_registered"
    assert run(market, "agent", ft, "ACME", A, address_of("stranger"), 1) == "0x57 receiver_not_registered"
    assert run(market, "agent", ft, "ACME", A, A, 1) == "0x57 receiver_is_sender"
    assert run(market, "agent", ft, "ACME", A, B, 1) == "0x57 receiver_missing_claim:accredited"
    assert market.run(market.signer("kyc").grant_claim("bob", "accredited", FAR_FUTURE_S)).ok
    assert run(market, "agent", ft, "ACME", A, B, 11) == "0x52 insufficient_balance"
    assert run(market, "agent", ft, "ACME", A, B, 10) == "0x51 success"


def test_forced_transfer_unfreezes_exactly_the_excess(market):
    run(market, "agent", "issue", "ACME", A, 10)
    run(market, "agent", "freeze_partial", "ACME", A, 8)
    result = market.commit(market.signer("agent").force_transfer("ACME", A, B, 5))
    assert [(e.kind, e.data.get("amount")) for e in result.receipts[0].events] == [
        ("token.partially_unfrozen", 3), ("token.force_transferred", 5)]
    assert wallet(market, "alice") == (5, 5, False) and wallet(market, "bob") == (5, 0, False)
    # within the free balance nothing is unfrozen
    run(market, "agent", "unfreeze_partial", "ACME", A, 3)
    assert run(market, "agent", "force_transfer", "ACME", A, B, 3) == "0x51 success"
    assert wallet(market, "alice") == (2, 2, False)


def test_forced_transfer_between_wallets_of_one_identity(market):
    run(market, "agent", "issue", "ACME", address_of("carol"), 10)
    run(market, "agent", "freeze_partial", "ACME", address_of("carol"), 10)
    assert run(market, "agent", "force_transfer", "ACME", address_of("carol"), address_of("carol-2"), 4) == \
        "0x51 success"
    assert wallet(market, "carol") == (6, 6, False) and wallet(market, "carol-2") == (4, 0, False)
    assert holding(market, "carol")[0] == 10 and info(market) == (10, 1)


# --- freezes -----------------------------------------------------------------------------------------------


def test_address_freeze_and_unfreeze(market):
    assert run(market, "agent", "unfreeze", "ACME", A) == "0x50 address_not_frozen"
    assert run(market, "agent", "freeze", "ACME", A) == "0x51 success"  # even with nothing held
    assert wallet(market, "alice") == (0, 0, True)
    assert run(market, "agent", "freeze", "ACME", A) == "0x50 address_already_frozen"
    assert run(market, "agent", "unfreeze", "ACME", A) == "0x51 success"
    assert wallet(market, "alice") == (0, 0, False)
    with market.ledger.store.read() as txn:  # an empty, unfrozen wallet leaves no record behind
        assert market.ledger.store.state_over(txn).get(layout.balance("ACME", A)) is None


def test_partial_freeze(market):
    run(market, "agent", "issue", "ACME", A, 10)
    assert run(market, "agent", "freeze_partial", "ACME", A, 11) == "0x52 insufficient_balance"
    assert run(market, "agent", "freeze_partial", "ACME", A, 6) == "0x51 success"
    assert run(market, "agent", "freeze_partial", "ACME", A, 5) == "0x52 insufficient_balance"
    assert run(market, "agent", "freeze_partial", "ACME", A, 4) == "0x51 success"
    assert wallet(market, "alice") == (10, 10, False)
    assert run(market, "agent", "unfreeze_partial", "ACME", A, 11) == "0x50 unfreeze_exceeds_frozen"
    assert run(market, "agent", "unfreeze_partial", "ACME", A, 10) == "0x51 success"
    assert wallet(market, "alice") == (10, 0, False)


def test_freezes_work_while_paused(market):
    run(market, "agent", "issue", "ACME", A, 10)
    run(market, "agent", "pause", "ACME")
    assert run(market, "agent", "freeze_partial", "ACME", A, 1) == "0x51 success"
    assert run(market, "agent", "freeze", "ACME", A) == "0x51 success"


# --- pause ---------------------------------------------------------------------------------------------------


def test_pause_and_unpause(market):
    assert run(market, "agent", "unpause", "ACME") == "0x50 not_paused"
    assert run(market, "agent", "pause", "ACME") == "0x51 success"
    assert run(market, "agent", "pause", "ACME") == "0x50 already_paused"
    assert queries.token_info(market.ledger, "ACME")["paused"]
    assert run(market, "agent", "unpause", "ACME") == "0x51 success"


def test_a_token_created_paused_lets_agents_work_and_holders_wait(chain):
    chain.investor("alice")
    chain.investor("bob")
    chain.token("ACME", paused=True)
    assert run(chain, "agent", "issue", "ACME", A, 10) == "0x51 success"
    assert run(chain, "alice", "transfer", "ACME", B, 1) == "0x54 token_paused"
    assert run(chain, "agent", "force_transfer", "ACME", A, B, 1) == "0x51 success"
    assert run(chain, "agent", "unpause", "ACME") == "0x51 success"
    assert run(chain, "alice", "transfer", "ACME", B, 1) == "0x51 success"


# --- recovery ---------------------------------------------------------------------------------------------------


def test_recovery_moves_balance_frozen_part_and_freeze(market):
    kyc = market.signer("kyc")
    assert market.run(kyc.add_wallet("alice", address_of("alice-new"))).ok
    run(market, "agent", "issue", "ACME", A, 10)
    run(market, "agent", "freeze_partial", "ACME", A, 4)
    run(market, "agent", "freeze", "ACME", A)
    before_holding, before_info = holding(market, "alice"), info(market)
    result = market.commit(market.signer("agent").recover("ACME", A, address_of("alice-new")))
    assert str(result.receipts[0].outcome) == "0x51 success"
    assert result.receipts[0].events[0].data["amount"] == 10
    assert wallet(market, "alice") == (0, 0, False)
    assert wallet(market, "alice-new") == (10, 4, True)
    assert holding(market, "alice") == before_holding and info(market) == before_info


def test_recovery_keeps_the_lock_up_of_the_units(market):
    assert market.run(market.signer("kyc").add_wallet("alice", address_of("alice-new"))).ok
    assert market.run(market.signer("issuer").set_rules("ACME", {"holding_period_s": 100})).ok
    run(market, "agent", "issue", "ACME", A, 10)
    market.commit(advance_ms=50_000)
    assert run(market, "agent", "recover", "ACME", A, address_of("alice-new")) == "0x51 success"
    assert run(market, "alice-new", "transfer", "ACME", B, 1) == "0x55 holding_period"
    market.commit(advance_ms=50_000)
    assert run(market, "alice-new", "transfer", "ACME", B, 1) == "0x51 success"


def test_recovery_only_onto_a_wallet_of_the_same_identity(market):
    run(market, "agent", "issue", "ACME", A, 10)
    rec = "recover"
    assert run(market, "agent", rec, "ACME", address_of("stranger"), A) == "0x56 lost_wallet_not_registered"
    assert run(market, "agent", rec, "ACME", A, B) == "0x57 new_wallet_not_same_identity"
    assert run(market, "agent", rec, "ACME", A, address_of("stranger")) == "0x57 new_wallet_not_same_identity"
    assert run(market, "agent", rec, "ACME", A, A) == "0x57 new_wallet_not_same_identity"
    assert run(market, "agent", rec, "ACME", address_of("carol"), address_of("carol-2")) == \
        "0x50 nothing_to_recover"
