"""History from versioned keys (a balance and the holder list at any past height), and the other
queries: token info, receipts, events with their filters and pages."""

from __future__ import annotations

import time

import pytest

from ledger import queries
from ledger.errors import NotFound
from ledger.testing import address_of


def test_balance_at_past_heights(market):
    agent, alice = market.signer("agent"), market.signer("alice")
    h0 = market.ledger.tip.height
    h1 = market.commit(agent.issue("ACME", address_of("alice"), 100)).height
    h2 = market.commit(alice.transfer("ACME", address_of("bob"), 30)).height
    market.commit()  # an empty block
    h4 = market.commit(agent.redeem("ACME", address_of("alice"), 70)).height

    def at(name, h):
        return queries.balance(market.ledger, "ACME", address_of(name), height=h)["balance"]

    assert [at("alice", h) for h in (h0, h1, h2, h2 + 1, h4)] == [0, 100, 70, 70, 0]
    assert [at("bob", h) for h in (h0, h1, h2, h4)] == [0, 0, 30, 30]
    assert at("carol", h4) == 0 and at("alice", 0) == 0
    with pytest.raises(NotFound):
        queries.balance(market.ledger, "ACME", address_of("alice"), height=h4 + 1)
    with pytest.raises(NotFound):
        queries.balance(market.ledger, "NOPE", address_of("alice"))


def test_holders_at_past_heights_by_identity(market):
    agent = market.signer("agent")
    h1 = market.commit(agent.issue("ACME", address_of("carol"), 5), agent.issue("ACME", address_of("carol-2"), 5),
                       agent.issue("ACME", address_of("bob"), 1)).height
    h2 = market.commit(market.signer("bob").transfer("ACME", address_of("alice"), 1)).height
    h3 = market.commit(agent.issue("ACME", address_of("bob"), 7)).height

    def at(h):
        return [(x["identity"], x["balance"]) for x in queries.holders(market.ledger, "ACME", height=h)["holders"]]

    assert at(h1 - 1) == []
    assert at(h1) == [("bob", 1), ("carol", 10)]
    assert at(h2) == [("alice", 1), ("carol", 10)]  # bob left
    assert at(h3) == [("alice", 1), ("bob", 7), ("carol", 10)]  # and came back
    now = queries.holders(market.ledger, "ACME")
    assert now["height"] == h3 and [(x["identity"], x["balance"]) for x in now["holders"]] == at(h3)


def test_holder_pages(market):
    agent = market.signer("agent")
    kyc = market.signer("kyc")
    names = ["a", "a.b", "a0", "ab", "b", "b-", "z"]  # ids that share prefixes must not be skipped
    market.commit(*(kyc.register_identity(n, [address_of("w-" + n)]) for n in names))
    h = market.commit(*(agent.issue("ACME", address_of("w-" + n), i + 1) for i, n in enumerate(names))).height
    market.commit(agent.redeem("ACME", address_of("w-ab"), 4))
    for height in (None, h):
        seen, after = [], None
        while True:
            page = queries.holders(market.ledger, "ACME", height=height, after=after, limit=2)
            seen += [x["identity"] for x in page["holders"]]
            assert len(page["holders"]) <= 2
            after = page["next"]
            if after is None:
                break
        assert seen == (sorted(names) if height == h else sorted(set(names) - {"ab"}))


def test_ten_thousand_holders_page_through_at_any_height(chain):
    """A cap table of 10,000 identities built in a few big blocks; every past height pages exactly."""
    chain.token("CAP")
    kyc, agent = chain.signer("kyc"), chain.signer("agent")
    count, batch = 10_000, 5_000
    ids = [f"inv-{i:05d}" for i in range(count)]
    wallets = {i: bytes.fromhex(f"{n:064x}") for n, i in enumerate(ids, start=1)}  # cheap distinct addresses
    heights = []
    for start in range(0, count, batch):
        part = ids[start:start + batch]
        chain.commit(*(kyc.register_identity(i, [wallets[i]]) for i in part))
        result = chain.commit(*(agent.issue("CAP", wallets[i], n + 1) for n, i in enumerate(part, start=start)))
        assert all(r.outcome.ok for r in result.receipts)
        heights.append(result.height)
    # a later block: every tenth holder is redeemed out
    gone = ids[::10]
    chain.commit(*(agent.redeem("CAP", wallets[i], ids.index(i) + 1) for i in gone))
    expected = {
        heights[0]: {i: n + 1 for n, i in enumerate(ids[:batch])},
        heights[1]: {i: n + 1 for n, i in enumerate(ids)},
        chain.ledger.tip.height: {i: n + 1 for n, i in enumerate(ids) if i not in set(gone)},
    }
    started = time.perf_counter()
    for height, want in expected.items():
        got, after = {}, None
        while True:
            page = queries.holders(chain.ledger, "CAP", height=height, after=after, limit=1000)
            got.update((x["identity"], x["balance"]) for x in page["holders"])
            after = page["next"]
            if after is None:
                break
        assert got == want
        assert list(got) == sorted(got)
    assert time.perf_counter() - started < 5.0
    assert queries.token_info(chain.ledger, "CAP")["holder_count"] == count - len(gone)
    some = ids[1234]
    assert queries.balance(chain.ledger, "CAP", wallets[some], height=heights[0])["balance"] == 1235
    assert queries.balance(chain.ledger, "CAP", wallets[some], height=heights[0] - 1)["balance"] == 0


def test_transaction_receipt_and_events(market):
    result = market.commit(market.signer("agent").issue("ACME", address_of("alice"), 5),
                           market.signer("agent").issue("ACME", address_of("stranger"), 5))
    ok, refused = result.receipts
    found = queries.transaction(market.ledger, ok.tx_hash)
    assert (found["height"], found["index"], found["status"], found["code"]) == (result.height, 0, "committed", 0x51)
    assert [e["kind"] for e in found["events"]] == ["token.issued"]
    found = queries.transaction(market.ledger, refused.tx_hash)
    assert (found["index"], found["status"], found["reason"]) == (1, "rejected", "receiver_not_registered")
    assert found["events"][0]["data"] == {"kind": "token.issue", "code": 0x57, "reason": "receiver_not_registered"}
    with pytest.raises(NotFound):
        queries.transaction(market.ledger, b"\x00" * 32)


def test_event_filters_and_pages(market):
    agent = market.signer("agent")
    market.commit(*(agent.issue("ACME", address_of("alice"), 1) for _ in range(5)))
    market.commit(agent.issue("ACME", address_of("bob"), 1))
    issued = queries.events(market.ledger, token="ACME", kind="token.issued")["events"]
    assert len(issued) == 6
    by_bob = queries.events(market.ledger, address=address_of("bob"), kind="token.issued")["events"]
    assert len(by_bob) == 1 and by_bob[0]["data"]["to"] == address_of("bob")
    seen, after = [], None
    while True:
        page = queries.events(market.ledger, kind="token.issued", after=after, limit=4)
        seen += page["events"]
        after = page["next"]
        if after is None:
            break
    assert [e["cursor"] for e in seen] == [e["cursor"] for e in issued]
    last = market.ledger.tip.height
    assert len(queries.events(market.ledger, token="ACME", from_height=last)["events"]) == 1
    assert len(queries.events(market.ledger, token="ACME", kind="token.issued", to_height=last - 1)["events"]) == 5
    with pytest.raises(NotFound):
        queries.events(market.ledger, kind="token.minted")


def test_blocks_roots_and_status(market):
    tip = market.ledger.tip
    raw, cert = queries.block(market.ledger, tip.height)
    assert cert == b"certificate:" + tip.block_hash
    assert queries.state_root_at(market.ledger, tip.height) == tip.state_root
    assert queries.chain_status(market.ledger)["state_root"] == tip.state_root
    with pytest.raises(NotFound):
        queries.block(market.ledger, tip.height + 1)
    with pytest.raises(NotFound):
        queries.state_root_at(market.ledger, tip.height + 1)
    with pytest.raises(NotFound):
        queries.identity(market.ledger, "ghost")
    with pytest.raises(NotFound):
        queries.token_info(market.ledger, "NOPE")
