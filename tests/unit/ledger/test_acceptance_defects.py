"""Defects found when the ledger was tried as an acceptance tester would (issue 13, section 4):
a token's name could not be changed, and a token agent's own wallet was volume-limited."""

from __future__ import annotations

from ledger import queries
from ledger.testing import address_of


def test_the_owner_renames_a_token_and_the_rename_is_an_event(market):
    result = market.commit(market.signer("issuer").set_name("ACME", "Acme Holdings plc ordinary shares"))
    assert result.receipts[0].outcome.ok
    assert queries.token_info(market.ledger, "ACME")["name"] == "Acme Holdings plc ordinary shares"
    event = result.receipts[0].events[0]
    assert (event.kind, event.token) == ("token.renamed", "ACME")
    assert event.data == {"old_name": "ACME shares", "name": "Acme Holdings plc ordinary shares"}


def test_agents_and_strangers_may_not_rename_and_a_same_name_is_refused(market):
    assert str(market.run(market.signer("agent").set_name("ACME", "Agent's name"))) == "0x58 not_authorized:owner"
    assert str(market.run(market.signer("alice").set_name("ACME", "Alice's name"))) == "0x58 not_authorized:owner"
    assert str(market.run(market.signer("issuer").set_name("NOPE", "x"))) == "0x50 unknown_token"
    assert str(market.run(market.signer("issuer").set_name("ACME", "ACME shares"))) == "0x50 name_unchanged"
    assert queries.token_info(market.ledger, "ACME")["name"] == "ACME shares"


def _volume_limited(market) -> None:
    """alice holds 100; the agent's own wallet (a registered identity) holds 100; window 60 s, 10 units."""
    market.investor("agent", wallets=("agent",))
    agent = market.signer("agent")
    assert market.run(agent.issue("ACME", address_of("alice"), 100)).ok
    assert market.run(agent.issue("ACME", address_of("agent"), 100)).ok
    assert market.run(market.signer("issuer").set_rules(
        "ACME", {"volume_limit": {"window_s": 60, "amount_max": 10}})).ok


def test_a_token_agents_own_wallet_is_not_volume_limited_as_in_t_rex(market):
    _volume_limited(market)
    bob = address_of("bob")
    for _ in range(3):  # 3 x 10 in one window: an investor would be stopped after the first
        assert market.ledger.compliance_check("ACME", address_of("agent"), bob, 10).ok
        assert market.run(market.signer("agent").transfer("ACME", bob, 10)).ok
    assert queries.balance(market.ledger, "ACME", bob)["balance"] == 30


def test_an_investors_wallet_stays_volume_limited_beside_an_agent(market):
    _volume_limited(market)
    bob = address_of("bob")
    assert market.run(market.signer("alice").transfer("ACME", bob, 10)).ok
    assert str(market.run(market.signer("alice").transfer("ACME", bob, 1))) == "0x55 volume_limit_exceeded"


def test_an_agent_removed_from_the_token_is_volume_limited_again(market):
    _volume_limited(market)
    bob = address_of("bob")
    assert market.run(market.signer("issuer").set_agent("ACME", address_of("agent"), [])).ok
    assert market.run(market.signer("agent").transfer("ACME", bob, 10)).ok
    # the exemption left no trace in the window: this transfer was counted, the next is refused
    assert str(market.run(market.signer("agent").transfer("ACME", bob, 1))) == "0x55 volume_limit_exceeded"
