"""Defects found when corporate actions were tried as an acceptance tester would (issue 13,
section 4): a recovered wallet still voted, and distributions paid after their expiry."""

from __future__ import annotations

from ledger import queries
from ledger.testing import FAR_FUTURE_S


def _recover_alice(h) -> None:
    """alice's holding moves from her lost wallet "alice" to "alice-new" (same identity)."""
    assert h.run(h.signer("kyc").add_wallet("alice", h.address("alice-new"))).ok
    assert h.run(h.signer("agent").recover("ACME", h.address("alice"), h.address("alice-new"))).ok


def _ballot(h) -> int:
    top = h.ledger.tip.height
    assert h.run(h.signer("issuer").create_ballot(
        "AGM", "ACME", "Approve the merger?", ["yes", "no"], record_height=top,
        opens_at_height=top + 1, closes_at_height=top + 20)).ok
    return top


def test_a_wallet_recovered_as_lost_cannot_vote_or_override_the_investors_vote(market):
    h = market
    _recover_alice(h)
    _ballot(h)
    assert h.run(h.signer("alice-new").vote("AGM", 0)).ok  # the investor votes yes with 100
    # whoever holds the lost key tries to vote, and to change her vote to no
    assert str(h.run(h.signer("alice").vote("AGM", 1))) == "0x56 sender_wallet_lost"
    ballot = queries.ballot(h.ledger, "AGM")
    assert ballot["tallies"] == [100, 0]


def test_a_lost_wallet_cannot_claim_a_distribution_for_its_identity(market):
    h = market
    assert h.run(h.signer("issuer").declare_distribution(
        "DIV", "ACME", "USD", record_height=h.record_height, rate_num=1, rate_den=1, expires_at=FAR_FUTURE_S)).ok
    _recover_alice(h)
    assert str(h.run(h.signer("alice").claim_distribution("DIV"))) == "0x57 receiver_wallet_lost"
    assert h.run(h.signer("alice-new").claim_distribution("DIV")).ok


def _declare_expiring(h, seconds: int) -> int:
    expires = h.now_s + seconds
    assert h.run(h.signer("issuer").declare_distribution(
        "DIV", "ACME", "USD", record_height=h.record_height, rate_num=1, rate_den=1, expires_at=expires)).ok
    return expires


def test_after_expiry_claims_and_pushes_are_refused_and_only_the_reclaim_works(market):
    h = market
    expires = _declare_expiring(h, 5)
    h.commit(advance_ms=(expires - h.now_s) * 1000 - 2000)
    assert h.run(h.signer("bob").claim_distribution("DIV")).ok  # its block's time: expires - 1
    assert h.now_s == expires - 1
    agent = h.signer("issuer")
    assert str(h.run(h.signer("alice").claim_distribution("DIV"))) == "0x50 distribution_expired"
    assert h.now_s == expires
    assert str(h.run(agent.pay_distribution("DIV", [("alice", h.address("alice"))]), advance_ms=0)) == \
        "0x50 distribution_expired"
    assert queries.distribution(h.ledger, "DIV")["paid"] == 50  # bob's only
    assert h.run(agent.reclaim_distribution("DIV"), advance_ms=0).ok  # at the same second
    assert str(h.run(h.signer("alice").claim_distribution("DIV"))) == "0x50 distribution_closed"


def test_one_second_before_expiry_a_push_still_pays(market):
    h = market
    expires = _declare_expiring(h, 5)
    h.commit(advance_ms=(expires - h.now_s) * 1000 - 2000)
    assert h.now_s == expires - 2
    assert h.run(h.signer("issuer").pay_distribution("DIV", [("alice", h.address("alice"))])).ok
    assert h.now_s == expires - 1
    assert queries.distribution(h.ledger, "DIV")["paid"] == 100
