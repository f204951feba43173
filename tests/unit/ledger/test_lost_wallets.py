"""A wallet a recovery declared lost is retired: it may neither send nor receive again."""

from __future__ import annotations

import pytest

from ledger import InvalidBody
from ledger.testing import address_of


def test_a_recovered_wallet_can_no_longer_send_or_receive(market):
    alice, new, bob = address_of("alice"), address_of("alice-new"), address_of("bob")
    assert market.run(market.signer("kyc").add_wallet("alice", new)).ok
    assert market.run(market.signer("agent").issue("ACME", alice, 10)).ok
    assert market.run(market.signer("agent").recover("ACME", alice, new)).ok
    # whoever holds the lost key can do nothing with it
    assert str(market.run(market.signer("alice").transfer("ACME", bob, 1))) == "0x56 sender_wallet_lost"
    assert str(market.run(market.signer("bob").transfer("ACME", alice, 1))) == "0x57 receiver_wallet_lost"
    assert str(market.ledger.compliance_check("ACME", bob, alice, 1)) == "0x57 receiver_wallet_lost"
    assert str(market.run(market.signer("agent").issue("ACME", alice, 1))) == "0x57 receiver_wallet_lost"
    assert str(market.run(market.signer("agent").force_transfer("ACME", new, alice, 1))) == \
        "0x57 receiver_wallet_lost"
    # the new wallet works
    assert market.run(market.signer("alice-new").transfer("ACME", bob, 1)).ok


def test_an_empty_country_allow_list_is_refused_not_read_as_no_limit(market):
    from ledger.kinds import check_body

    with pytest.raises(InvalidBody, match="country_allow: must not be empty"):
        check_body("token.set_rules", {"token": "ACME", "rules": {"country_allow": []}})
    assert check_body("token.set_rules", {"token": "ACME", "rules": {"country_block": []}})
