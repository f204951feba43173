"""The identity trail (`ev_identity`): every event that concerns an identity is found from the
identity, whether the event names it or one of its wallets, a refusal included; the index is the
same on every store, after a rebuild, and when an older store gains it from its log."""

from __future__ import annotations

import pytest

from ledger import layout, queries
from ledger.chain import Ledger
from ledger.errors import NotFound
from ledger.store import INDEX_FORMAT
from ledger.testing import FAR_FUTURE_S, address_of

A = address_of


def _trail(ledger: Ledger, identity: str, **filters) -> list[tuple[int, str, object]]:
    """(height, kind, a detail) of each event of the identity's trail, in order, over every page."""
    out, after = [], None
    while True:
        page = queries.identity_history(ledger, identity, after=after, limit=3, **filters)
        for event in page["events"]:
            data = event["data"]
            detail = data.get("topic") or data.get("reason") or data.get("amount")
            out.append((event["height"], event["kind"], detail))
        after = page["next"]
        if after is None:
            return out


def _index(ledger: Ledger) -> list[bytes]:
    with ledger.store.read() as txn:
        return [key for key, _ in txn.cursor(db=ledger.store.dbs["ev_identity"])]


@pytest.fixture
def story(chain):
    """alice (wallets alice, alice-2) and bob (US), carol (FR); ACME blocks FR; USD pays a dividend.
    Heights are kept in `chain.at` by name."""
    h = chain
    h.at = {}
    h.investor("treasury", wallets=("issuer",))
    h.investor("alice", wallets=("alice", "alice-2"))
    h.at["alice registered"] = h.ledger.tip.height
    h.investor("bob")
    h.investor("carol", country="FR")
    h.token("ACME", rules={"country_block": ["FR"]})
    h.token("USD")
    agent, alice, kyc = h.signer("agent"), h.signer("alice"), h.signer("kyc")
    h.commit(agent.issue("ACME", A("alice"), 100), agent.issue("USD", A("issuer"), 1_000))
    h.at["issued"] = h.ledger.tip.height
    h.commit(alice.transfer("ACME", A("bob"), 10))
    h.at["to bob"] = h.ledger.tip.height
    # refused in its block: carol's country is blocked (a block is not checked against the rules)
    result = h.commit(alice.transfer("ACME", A("carol"), 5))
    assert str(result.receipts[0].outcome) == "0x57 receiver_country_blocked:FR"
    h.at["refused"] = h.ledger.tip.height
    h.commit(kyc.revoke_claim("alice", "kyc"), kyc.add_wallet("alice", A("alice-3")))
    h.commit(agent.recover("ACME", A("alice"), A("alice-2")))
    h.at["recovered"] = h.ledger.tip.height
    issuer = h.signer("issuer")
    h.run(issuer.set_agent("ACME", agent.address, ["corporate_actions", "force_transfer", "freeze", "pause",
                                                    "recovery", "supply"]))
    assert h.run(issuer.declare_distribution("DIV-1", "ACME", "USD", record_height=h.at["recovered"],
                                             rate_num=2, rate_den=1, expires_at=FAR_FUTURE_S)).ok
    assert h.run(agent.pay_distribution("DIV-1", [("alice", A("alice-2"))])).ok
    h.at["paid"] = h.ledger.tip.height
    return h


def test_an_identitys_trail_holds_its_claims_wallets_transfers_refusals_recovery_and_payments(story):
    h = story
    kinds = [(kind, detail) for _, kind, detail in _trail(h.ledger, "alice")]
    assert kinds == [
        ("identity.registered", None), ("claim.granted", "kyc"), ("claim.granted", "country"),
        ("token.issued", 100), ("token.transferred", 10),
        ("tx.rejected", "receiver_country_blocked:FR"),
        ("claim.revoked", "kyc"), ("identity.wallet_added", None),
        ("token.recovered", 90),
        ("distribution.paid", 180),  # 90 held at the record height, 2 per unit
    ]
    # the refusal is in the receiver's trail too (the refused body names carol's wallet), and the
    # transfer in bob's; neither sees the other's claims
    assert ("tx.rejected", "receiver_country_blocked:FR") in [(k, d) for _, k, d in _trail(h.ledger, "carol")]
    bob = [(k, d) for _, k, d in _trail(h.ledger, "bob")]
    assert ("token.transferred", 10) in bob and ("tx.rejected", "receiver_country_blocked:FR") not in bob
    assert [k for _, k, _ in _trail(h.ledger, "bob", kind="claim.revoked")] == []


def test_filters_combine_with_the_identity_and_page_alike(story):
    h = story
    claims = _trail(h.ledger, "alice", kind="claim.granted")
    assert [d for _, _, d in claims] == ["kyc", "country"]
    window = _trail(h.ledger, "alice", from_height=h.at["to bob"], to_height=h.at["refused"])
    assert [k for _, k, _ in window] == ["token.transferred", "tx.rejected"]
    by_token = queries.events(h.ledger, identity="treasury", token="USD")["events"]
    assert [e["kind"] for e in by_token] == ["token.created", "token.issued"]  # its wallet is the issuer's
    assert queries.events(h.ledger, identity="alice", token="USD")["events"] == []
    by_wallet = queries.events(h.ledger, identity="alice", address=A("alice-3"))["events"]
    assert [e["kind"] for e in by_wallet] == ["identity.wallet_added"]
    # the trail is the identity's events, and nobody else's
    everything = queries.events(h.ledger, limit=1000)["events"]
    mine = {A(w) for w in ("alice", "alice-2", "alice-3")}
    expected = [e["cursor"] for e in everything
                if e["data"].get("identity") == "alice" or mine & set(e["addresses"])
                or (e["kind"] == "tx.rejected" and e["height"] == h.at["refused"])]
    assert [e["cursor"] for e in queries.events(h.ledger, identity="alice", limit=1000)["events"]] == expected


def test_an_unknown_identity_is_not_found_and_a_refusal_naming_it_indexes_nothing(story):
    h = story
    result = h.commit(h.signer("kyc").grant_claim("ghost", "kyc", FAR_FUTURE_S))
    assert str(result.receipts[0].outcome) == "0x50 unknown_identity"
    with pytest.raises(NotFound):
        queries.identity_history(h.ledger, "ghost")
    assert queries.events(h.ledger, identity="ghost")["events"] == []
    assert not any(key.startswith(b"ghost\x00") for key in _index(h.ledger))


def test_a_wallet_counts_for_its_identity_from_the_end_of_the_block_that_registers_it(chain):
    h = chain
    h.token("ACME")
    # dave's wallet signs before it is registered, in an earlier block: not in dave's trail
    early = h.commit(h.signer("dave").transfer("ACME", A("issuer"), 1))
    assert str(early.receipts[0].outcome) == "0x56 sender_not_registered"
    # erin's signs in the block that registers it: in erin's trail (the block is read as a whole)
    same = h.commit(h.signer("erin").transfer("ACME", A("issuer"), 1),
                    h.signer("kyc").register_identity("erin", [A("erin")]))
    assert str(same.receipts[0].outcome) == "0x56 sender_not_registered"
    h.investor("dave")
    dave = [(height, kind) for height, kind, _ in _trail(h.ledger, "dave")]
    assert (early.height, "tx.rejected") not in dave and dave[0][1] == "identity.registered"
    assert [kind for _, kind, _ in _trail(h.ledger, "erin")] == ["tx.rejected", "identity.registered"]


def test_the_index_is_rebuilt_from_the_log_byte_for_byte(story):
    h = story
    before = _index(h.ledger)
    assert len(before) > 20
    report = h.ledger.rebuild()
    assert report.repaired_heights == ()
    assert _index(h.ledger) == before


def test_an_older_store_gains_the_index_when_opened_with_the_same_keys(story, tmp_path):
    """A store written before the index existed (index format 1: no `ev_identity`, no meta key) is
    indexed from its stored blocks and events on opening, exactly as its blocks would have been."""
    h = story
    # a refusal from a wallet registered only later, and one registered in the same block
    h.commit(h.signer("dave").transfer("ACME", A("bob"), 1))
    h.commit(h.signer("erin").transfer("ACME", A("bob"), 1), h.signer("kyc").register_identity("erin", [A("erin")]))
    h.investor("dave")
    expected = _index(h.ledger)
    with h.ledger.store.write() as txn:
        txn.drop(h.ledger.store.dbs["ev_identity"], delete=False)
        txn.delete(b"index_format", db=h.ledger.store.dbs["meta"])
    path = h.ledger.store.env.path()
    h.ledger.close()
    reopened = Ledger.open(path, h.genesis)
    try:
        assert _index(reopened) == expected
        with reopened.store.read() as txn:
            assert reopened.store.get_meta(txn, "index_format") == INDEX_FORMAT
        assert [k for _, k, _ in _trail(reopened, "erin")] == ["tx.rejected", "identity.registered"]
    finally:
        reopened.close()
        h.ledger = Ledger.open(path, h.genesis)  # for the fixture's close


def test_a_new_store_records_its_index_format(chain):
    with chain.ledger.store.read() as txn:
        assert chain.ledger.store.get_meta(txn, "index_format") == INDEX_FORMAT
    assert layout.SEP == b"\x00"  # ids cannot hold NUL, so one identity's keys never run into another's
