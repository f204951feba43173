"""A holder's transfer: every rule with its exact reason code, the order checks run in, and
`compliance_check` giving exactly the code execution gives (each transfer here asserts it)."""

from __future__ import annotations

import pytest

from ledger import queries
from ledger.testing import FAR_FUTURE_S, address_of


def transfer(chain, sender: str, receiver: str, amount: int, *, token: str = "ACME", advance_ms: int = 1000) -> str:
    """Commit `sender`'s transfer alone in a block; check the dry run promised the same code."""
    at_s = (chain.time_ms + advance_ms) // 1000
    promised = chain.ledger.compliance_check(token, address_of(sender), address_of(receiver), amount, time_s=at_s)
    outcome = chain.run(chain.signer(sender).transfer(token, address_of(receiver), amount), advance_ms=advance_ms)
    assert promised == outcome, f"compliance_check said {promised}, execution gave {outcome}"
    return str(outcome)


def issue(chain, to: str, amount: int, *, token: str = "ACME") -> str:
    return str(chain.run(chain.signer("agent").issue(token, address_of(to), amount)))


def rules(chain, new_rules: dict, token: str = "ACME") -> None:
    assert chain.run(chain.signer("issuer").set_rules(token, new_rules)).ok


def bal(chain, name: str, token: str = "ACME") -> int:
    return queries.balance(chain.ledger, token, address_of(name))["balance"]


def info(chain, token: str = "ACME") -> dict:
    return queries.token_info(chain.ledger, token)


# --- the plain transfer ---------------------------------------------------------------------------------


def test_transfer_moves_balance_and_emits_an_event(market):
    assert issue(market, "alice", 100) == "0x51 success"
    result = market.commit(market.signer("alice").transfer("ACME", address_of("bob"), 40))
    assert str(result.receipts[0].outcome) == "0x51 success"
    event = result.receipts[0].events[-1]
    assert event.kind == "token.transferred" and event.data == {"from": address_of("alice"),
                                                                "to": address_of("bob"), "amount": 40}
    assert (bal(market, "alice"), bal(market, "bob")) == (60, 40)
    assert info(market)["total_supply"] == 100 and info(market)["holder_count"] == 2


def test_unknown_token(market):
    assert transfer(market, "alice", "bob", 1, token="NOPE") == "0x50 unknown_token"


def test_sender_and_receiver_must_be_registered(market):
    issue(market, "alice", 10)
    assert transfer(market, "stranger", "bob", 1) == "0x56 sender_not_registered"
    assert transfer(market, "alice", "stranger", 1) == "0x57 receiver_not_registered"
    assert transfer(market, "alice", "alice", 1) == "0x57 receiver_is_sender"


def test_balance_and_free_balance(market):
    issue(market, "alice", 10)
    assert transfer(market, "alice", "bob", 11) == "0x52 insufficient_balance"
    assert market.run(market.signer("agent").freeze_partial("ACME", address_of("alice"), 4)).ok
    assert transfer(market, "alice", "bob", 7) == "0x52 insufficient_free_balance"
    assert transfer(market, "alice", "bob", 6) == "0x51 success"
    assert queries.balance(market.ledger, "ACME", address_of("alice")) == {
        "token": "ACME", "address": address_of("alice"), "height": market.ledger.tip.height,
        "balance": 4, "frozen": 4, "free": 0, "address_frozen": False}


def test_pause_stops_holder_transfers(market):
    issue(market, "alice", 10)
    assert market.run(market.signer("agent").pause("ACME")).ok
    assert transfer(market, "alice", "bob", 1) == "0x54 token_paused"
    assert market.run(market.signer("agent").unpause("ACME")).ok
    assert transfer(market, "alice", "bob", 1) == "0x51 success"


def test_a_frozen_sender_or_receiver_blocks_a_transfer(market):
    issue(market, "alice", 10)
    issue(market, "bob", 10)
    agent = market.signer("agent")
    assert market.run(agent.freeze("ACME", address_of("alice"))).ok
    assert transfer(market, "alice", "bob", 1) == "0x56 sender_frozen"
    assert transfer(market, "bob", "alice", 1) == "0x57 receiver_frozen"
    assert market.run(agent.unfreeze("ACME", address_of("alice"))).ok
    assert transfer(market, "alice", "bob", 1) == "0x51 success"
    assert transfer(market, "bob", "alice", 1) == "0x51 success"


# --- claims, countries, investor types -------------------------------------------------------------------


def test_required_claims_checked_on_the_receiver(market):
    rules(market, {"required_claims": ["accredited", "kyc"]})
    issue(market, "alice", 10)
    assert transfer(market, "alice", "bob", 1) == "0x57 receiver_missing_claim:accredited"
    assert market.run(market.signer("kyc").grant_claim("bob", "accredited", FAR_FUTURE_S)).ok
    assert transfer(market, "alice", "bob", 1) == "0x51 success"


def test_sender_checked_only_with_check_sender(market):
    issue(market, "bob", 10)
    rules(market, {"required_claims": ["accredited"]})
    assert transfer(market, "bob", "alice", 1) == "0x51 success"  # bob lacks accreditation: not checked
    rules(market, {"required_claims": ["accredited"], "check_sender": True})
    assert transfer(market, "bob", "alice", 1) == "0x56 sender_missing_claim:accredited"
    rules(market, {"country_block": ["US"], "check_sender": True})
    assert transfer(market, "bob", "carol", 1) == "0x56 sender_country_blocked:US"
    rules(market, {"country_allow": ["US"], "check_sender": True})
    assert transfer(market, "bob", "carol", 1) == "0x57 receiver_country_not_allowed:DE"


def test_expired_claim_counts_as_absent(market):
    issue(market, "alice", 10)
    rules(market, {"required_claims": ["kyc"]})
    kyc = market.signer("kyc")
    assert market.run(kyc.grant_claim("bob", "kyc", market.now_s + 3)).ok
    assert transfer(market, "alice", "bob", 1) == "0x51 success"
    # the claim expires at now + 3 s: at exactly that second it no longer counts
    assert transfer(market, "alice", "bob", 1, advance_ms=2000) == "0x57 receiver_missing_claim:kyc"


def test_revoked_claim_counts_as_absent(market):
    issue(market, "alice", 10)
    rules(market, {"required_claims": ["kyc"]})
    assert market.run(market.signer("kyc").revoke_claim("bob", "kyc")).ok
    assert transfer(market, "alice", "bob", 1) == "0x57 receiver_missing_claim:kyc"


def test_claims_of_a_removed_claim_issuer_count_as_absent(market):
    issue(market, "alice", 10)
    rules(market, {"required_claims": ["kyc"]})
    assert market.run(market.signer("admin").revoke_role("claim_issuer", address_of("kyc"))).ok
    assert transfer(market, "alice", "bob", 1) == "0x57 receiver_missing_claim:kyc"


def test_country_allow_and_block_lists(market):
    issue(market, "alice", 10)
    rules(market, {"country_allow": ["FR", "US"]})
    assert transfer(market, "alice", "bob", 1) == "0x51 success"
    assert transfer(market, "alice", "carol", 1) == "0x57 receiver_country_not_allowed:DE"
    rules(market, {"country_block": ["DE"]})
    assert transfer(market, "alice", "carol", 1) == "0x57 receiver_country_blocked:DE"
    assert transfer(market, "alice", "bob", 1) == "0x51 success"
    rules(market, {"country_allow": ["DE"], "country_block": ["DE"]})  # the block list is checked first
    assert transfer(market, "alice", "carol", 1) == "0x57 receiver_country_blocked:DE"
    assert market.run(market.signer("kyc").revoke_claim("bob", "country")).ok
    rules(market, {"country_block": ["DE"]})
    assert transfer(market, "alice", "bob", 1) == "0x57 receiver_missing_claim:country"


def test_investor_types(market):
    issue(market, "alice", 10)
    rules(market, {"investor_types_allow": ["institutional", "professional"]})
    assert transfer(market, "alice", "bob", 1) == "0x57 receiver_missing_claim:investor_type"
    kyc = market.signer("kyc")
    assert market.run(kyc.grant_claim("bob", "investor_type", FAR_FUTURE_S, "retail")).ok
    assert transfer(market, "alice", "bob", 1) == "0x57 receiver_investor_type_not_allowed:retail"
    assert market.run(kyc.grant_claim("bob", "investor_type", FAR_FUTURE_S, "professional")).ok
    assert transfer(market, "alice", "bob", 1) == "0x51 success"


# --- caps: holders and balance, per identity --------------------------------------------------------------


def test_holder_count_is_per_identity_across_wallets(market):
    issue(market, "carol", 10)
    assert info(market)["holder_count"] == 1
    assert transfer(market, "carol", "carol-2", 4) == "0x51 success"
    assert info(market)["holder_count"] == 1
    assert queries.holders(market.ledger, "ACME")["holders"] == [{"identity": "carol", "balance": 10}]
    assert transfer(market, "carol", "alice", 6) == "0x51 success"
    assert info(market)["holder_count"] == 2
    assert transfer(market, "carol-2", "alice", 4) == "0x51 success"  # carol's last units leave
    assert info(market)["holder_count"] == 1


def test_holders_max_and_selling_out_at_the_cap(market):
    rules(market, {"holders_max": 2})
    issue(market, "alice", 10)
    issue(market, "carol", 10)
    assert issue(market, "bob", 1) == "0x57 holders_max_reached"
    assert transfer(market, "alice", "bob", 5) == "0x57 holders_max_reached"
    assert transfer(market, "carol", "alice", 3) == "0x51 success"  # existing holder: no change
    # at the cap, a holder may sell out entirely to a new holder: the count stays 2
    assert transfer(market, "alice", "bob", 13) == "0x51 success"
    assert info(market)["holder_count"] == 2
    # carol's two wallets: selling one wallet out is not leaving, the identity still holds
    assert transfer(market, "carol", "carol-2", 3) == "0x51 success"
    assert transfer(market, "carol-2", "alice", 3) == "0x57 holders_max_reached"
    assert transfer(market, "carol", "carol-2", 4) == "0x51 success"
    assert transfer(market, "carol-2", "alice", 7) == "0x51 success"  # the whole identity leaves
    assert info(market)["holder_count"] == 2


def test_balance_max_per_identity(market):
    issue(market, "alice", 30)
    rules(market, {"balance_max_per_identity": 10})
    assert issue(market, "carol-2", 11) == "0x57 balance_max_exceeded"
    assert transfer(market, "alice", "carol", 6) == "0x51 success"
    assert transfer(market, "alice", "carol-2", 5) == "0x57 balance_max_exceeded"  # 6 + 5 across wallets
    assert transfer(market, "alice", "carol-2", 4) == "0x51 success"
    # holdings above a lowered cap stay, but cannot grow
    rules(market, {"balance_max_per_identity": 5})
    assert bal(market, "carol") + bal(market, "carol-2") == 10
    assert transfer(market, "alice", "carol", 1) == "0x57 balance_max_exceeded"
    assert transfer(market, "carol", "bob", 5) == "0x51 success"


# --- lock-up and volume ------------------------------------------------------------------------------------


def test_holding_period_from_acquisition(market):
    rules(market, {"holding_period_s": 100})
    issue(market, "alice", 10)  # acquired at t0
    t0 = market.now_s
    assert transfer(market, "alice", "bob", 1) == "0x55 holding_period"
    market.commit(advance_ms=50_000)
    issue(market, "alice", 5)  # acquired at t0 + 52
    market.commit(advance_ms=47_000)
    assert market.now_s + 1 == t0 + 100
    assert transfer(market, "alice", "bob", 11) == "0x55 holding_period"  # only the first lot is free
    assert transfer(market, "alice", "bob", 10) == "0x51 success"
    # bob's 10 were just acquired: his own lock-up starts now
    assert transfer(market, "bob", "carol", 1) == "0x55 holding_period"


def test_holding_period_does_not_bind_moves_between_own_wallets(market):
    rules(market, {"holding_period_s": 1000, "volume_limit": {"window_s": 100, "amount_max": 1},
                   "required_claims": ["accredited"]})
    assert market.run(market.signer("kyc").grant_claim("carol", "accredited", FAR_FUTURE_S)).ok
    issue(market, "carol", 10)
    assert transfer(market, "carol", "carol-2", 10) == "0x51 success"
    assert transfer(market, "carol-2", "alice", 1) == "0x55 holding_period"


def test_volume_limit_per_identity_per_window(market):
    issue(market, "carol", 100)
    rules(market, {"volume_limit": {"window_s": 60, "amount_max": 10}})
    assert transfer(market, "carol", "alice", 6) == "0x51 success"
    assert transfer(market, "carol-2", "alice", 1) == "0x52 insufficient_balance"
    assert transfer(market, "carol", "carol-2", 50) == "0x51 success"  # own wallets: not counted
    assert transfer(market, "carol-2", "alice", 5) == "0x55 volume_limit_exceeded"  # 6 + 5 > 10 per identity
    assert transfer(market, "carol-2", "alice", 4) == "0x51 success"
    assert transfer(market, "carol", "alice", 1) == "0x55 volume_limit_exceeded"
    market.commit(advance_ms=60_000)  # the window that opened with the first transfer has closed
    assert transfer(market, "carol", "alice", 10) == "0x51 success"
    assert transfer(market, "carol", "alice", 1) == "0x55 volume_limit_exceeded"


def test_refused_transfers_do_not_count_towards_volume(market):
    issue(market, "alice", 100)
    rules(market, {"volume_limit": {"window_s": 60, "amount_max": 10}, "country_block": ["DE"]})
    assert transfer(market, "alice", "carol", 10) == "0x57 receiver_country_blocked:DE"
    assert transfer(market, "alice", "bob", 10) == "0x51 success"


# --- the order checks run in -----------------------------------------------------------------------------


def test_checks_run_in_the_documented_order(market):
    """token -> pause -> sender registered -> receiver registered -> same wallet -> sender frozen ->
    receiver frozen -> balance -> free balance -> holding period -> volume -> sender's claims (with
    check_sender) -> receiver's claims, countries, types -> balance cap -> holder cap. Every
    condition is set at once, then removed one by one; each time the next code shows."""
    issue(market, "alice", 10)
    agent, kyc = market.signer("agent"), market.signer("kyc")
    rules(market, {"holding_period_s": 1000, "volume_limit": {"window_s": 60, "amount_max": 5},
                   "required_claims": ["accredited"], "check_sender": True, "holders_max": 1,
                   "balance_max_per_identity": 1})
    for tx in (agent.pause("ACME"), agent.freeze("ACME", address_of("alice")),
               agent.freeze("ACME", address_of("bob")), kyc.revoke_claim("alice", "accredited")):
        assert market.run(tx).ok
    assert transfer(market, "alice", "bob", 50, token="NOPE") == "0x50 unknown_token"
    assert transfer(market, "stranger", "stranger-2", 50) == "0x54 token_paused"
    assert market.run(agent.unpause("ACME")).ok
    assert transfer(market, "stranger", "stranger-2", 50) == "0x56 sender_not_registered"
    assert transfer(market, "alice", "stranger", 50) == "0x57 receiver_not_registered"
    assert transfer(market, "alice", "alice", 50) == "0x57 receiver_is_sender"
    assert transfer(market, "alice", "bob", 50) == "0x56 sender_frozen"
    assert market.run(agent.unfreeze("ACME", address_of("alice"))).ok
    assert transfer(market, "alice", "bob", 50) == "0x57 receiver_frozen"
    assert market.run(agent.unfreeze("ACME", address_of("bob"))).ok
    assert transfer(market, "alice", "bob", 50) == "0x52 insufficient_balance"
    assert market.run(agent.freeze_partial("ACME", address_of("alice"), 9)).ok
    assert transfer(market, "alice", "bob", 6) == "0x52 insufficient_free_balance"
    assert market.run(agent.unfreeze_partial("ACME", address_of("alice"), 9)).ok
    assert transfer(market, "alice", "bob", 6) == "0x55 holding_period"
    market.commit(advance_ms=1_000_000)
    assert transfer(market, "alice", "bob", 6) == "0x55 volume_limit_exceeded"
    assert transfer(market, "alice", "bob", 2) == "0x56 sender_missing_claim:accredited"
    assert market.run(kyc.grant_claim("alice", "accredited", FAR_FUTURE_S)).ok
    assert transfer(market, "alice", "bob", 2) == "0x57 receiver_missing_claim:accredited"
    assert market.run(kyc.grant_claim("bob", "accredited", FAR_FUTURE_S)).ok
    assert transfer(market, "alice", "bob", 2) == "0x57 balance_max_exceeded"
    assert transfer(market, "alice", "bob", 1) == "0x57 holders_max_reached"
    rules(market, {"holders_max": 2})
    assert transfer(market, "alice", "bob", 1) == "0x51 success"


@pytest.mark.parametrize("time_s, expected", [(None, "0x55 holding_period"), (10**10, "0x51 success")])
def test_compliance_check_at_the_tip_or_at_a_given_time(market, time_s, expected):
    rules(market, {"holding_period_s": 100})
    issue(market, "alice", 10)
    outcome = market.ledger.compliance_check("ACME", address_of("alice"), address_of("bob"), 1, time_s=time_s)
    assert str(outcome) == expected


def test_compliance_check_changes_nothing(market, snapshot):
    issue(market, "alice", 10)
    before = snapshot(market.ledger)
    assert market.ledger.compliance_check("ACME", address_of("alice"), address_of("bob"), 1).ok
    assert snapshot(market.ledger) == before


def test_new_rules_apply_to_later_transfers_only(market):
    issue(market, "alice", 10)
    assert transfer(market, "alice", "carol", 1) == "0x51 success"
    rules(market, {"country_block": ["DE"]})
    assert transfer(market, "alice", "carol", 1) == "0x57 receiver_country_blocked:DE"
    assert bal(market, "carol") == 1  # what carol already holds stays
    assert transfer(market, "carol", "alice", 1) == "0x51 success"  # and she may sell it
