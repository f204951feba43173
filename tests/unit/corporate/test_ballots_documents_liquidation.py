"""Shareholder votes, token documents, and liquidation payouts on a real ledger."""

from __future__ import annotations

import hashlib

from ledger import queries
from ledger.testing import FAR_FUTURE_S


def test_votes_are_per_identity_weighted_at_record_height_and_recountable(market):
    h = market
    h.run(h.signer("kyc").add_wallet("alice", h.address("alice-2")))
    assert h.run(h.signer("alice").transfer("ACME", h.address("alice-2"), 40)).ok  # still alice: 100
    top = h.ledger.tip.height
    created = h.run(h.signer("issuer").create_ballot(
        "AGM-2027", "ACME", "Approve the merger?", ["yes", "no", "abstain"], record_height=top,
        opens_at_height=top + 1, closes_at_height=top + 7))
    assert created.ok
    assert h.run(h.signer("bob").vote("AGM-2027", 1)).ok  # 50 for no
    assert h.run(h.signer("alice").vote("AGM-2027", 1)).ok  # 100 for no...
    assert h.run(h.signer("alice-2").vote("AGM-2027", 0)).ok  # ...changed to yes from her other wallet
    assert str(h.run(h.signer("carol").vote("AGM-2027", 0))) == "0x56 not_a_holder_at_record_height"
    assert str(h.run(h.signer("bob").tally("AGM-2027"))) == "0x50 ballot_still_open"
    h.commit()
    assert str(h.run(h.signer("bob").vote("AGM-2027", 0))) == "0x50 ballot_closed"
    result = h.commit(h.signer("carol").tally("AGM-2027"))
    published = result.receipts[0].events[0]
    assert published.kind == "ballot.result"
    assert published.data["tallies"] == [100, 50, 0] and published.data["winner"] == 0
    assert published.data["voters"] == 2
    # recount from the log: the last vote of each identity, with its weight
    last: dict[str, tuple[int, int]] = {}
    for event in queries.events(h.ledger, kind="ballot.voted", limit=1000)["events"]:
        last[event["data"]["identity"]] = (event["data"]["option"], event["data"]["weight"])
    recount = [0, 0, 0]
    for option, weight in last.values():
        recount[option] += weight
    assert recount == published.data["tallies"]
    assert str(h.run(h.signer("carol").tally("AGM-2027"))) == "0x50 already_tallied"


def test_documents_set_update_remove_with_history(market):
    h = market
    digest = hashlib.sha256(b"prospectus v1").digest()
    issuer = h.signer("issuer")
    assert h.run(issuer.set_document("ACME", "prospectus", "https://acme.example/p1.pdf", digest)).ok
    assert h.run(issuer.set_document("ACME", "prospectus", "https://acme.example/p2.pdf", digest)).ok
    assert str(h.run(h.signer("alice").set_document("ACME", "x", "https://x", digest))) == "0x58 not_authorized:owner"
    assert [d["uri"] for d in queries.documents(h.ledger, "ACME")] == ["https://acme.example/p2.pdf"]
    assert h.run(issuer.remove_document("ACME", "prospectus")).ok
    assert str(h.run(issuer.remove_document("ACME", "prospectus"))) == "0x50 unknown_document"
    assert queries.documents(h.ledger, "ACME") == []
    history = queries.events(h.ledger, token="ACME", kind="token.document_set")["events"]
    assert [e["data"]["uri"] for e in history] == ["https://acme.example/p1.pdf", "https://acme.example/p2.pdf"]


def test_liquidation_pays_classes_by_the_waterfall_and_holders_pro_rata(market):
    h = market
    h.token("SERA", rules={"required_claims": ["kyc"]})
    assert h.run(h.signer("agent").issue("SERA", h.address("carol"), 50)).ok
    top = h.ledger.tip.height
    # SERA: 50 units, 1x non-participating at 10 per unit (500 owed); ACME (common): 150 units.
    declared = h.commit(h.signer("issuer").declare_liquidation(
        "LIQ-1", "USD", amount=800, record_height=top, expires_at=FAR_FUTURE_S,
        classes=[["SERA", 1, 10, False, None, True], ["ACME", 0, 0, True, None, True]]))
    assert declared.receipts[0].outcome.ok, declared.receipts[0].outcome
    event = declared.receipts[0].events[-1]
    assert event.kind == "liquidation.declared"
    assert [(c["token"], c["payout"]) for c in event.data["classes"]] == [("SERA", 500), ("ACME", 300)]
    assert event.data["entitlements"] == [["alice", 200], ["bob", 100], ["carol", 500]]
    for name, expected in (("alice", 200), ("bob", 100), ("carol", 500)):
        assert h.run(h.signer(name).claim_distribution("LIQ-1")).ok
        assert queries.balance(h.ledger, "USD", h.address(name))["balance"] == expected
    assert queries.distribution(h.ledger, "LIQ-1")["remaining"] == 0
