"""`offering_get`, `offering_list` and `offering_subscriptions` through the node's real method
declarations and dispatcher: params checked, errors mapped, amounts as decimal strings, pages."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ledger.testing import LedgerHarness, address_of
from node.rpc.api import build_registry
from node.rpc.dispatch import Dispatcher
from node.rpc.methods import openrpc_document

A = address_of
TERMS = {"price": 2_500, "raise_min": 0, "raise_max": 5_000_000, "investor_min": 250_000, "investor_max": 4_000_000}


@pytest.fixture
def rpc(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("issuer-co", wallets=("treasury",))
    for name in ("ann", "ben", "cat"):
        h.investor(name, accredited=True)
    h.token("ACME", rules={"required_claims": ["accredited", "kyc"]})
    h.token("BETA")
    h.token("USD", rules={"required_claims": ["kyc"]}, decimals=2)
    agent = h.signer("agent")
    h.commit(*(agent.issue("USD", A(n), 10_000_000) for n in ("ann", "ben", "cat")))
    window = {"opens_at": h.now_s + 2, "closes_at": h.now_s + 100, "cash_wallet": A("treasury")}
    h.commit(agent.open_offering("A-1", "ACME", "USD", **TERMS, **window),
             agent.open_offering("A-2", "ACME", "USD", **TERMS, **window),
             agent.open_offering("B-1", "BETA", "USD", **TERMS, **window))
    h.commit(*(h.signer(n).subscribe("A-1", 1_000_000 * (i + 1)) for i, n in enumerate(("cat", "ann", "ben"))))
    h.commit(agent.cancel_offering("A-2"))
    registry = build_registry(SimpleNamespace(ledger=h.ledger))
    dispatcher = Dispatcher(registry)

    async def call(method: str, **params):
        reply = json.loads(await dispatcher.handle(json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})))
        return reply.get("result", reply.get("error"))

    call.registry = registry
    yield call
    h.close()


async def test_offering_get_gives_terms_totals_and_a_subscription_with_amounts_as_strings(rpc):
    offering = await rpc("offering_get", id="A-1")
    assert offering["id"] == "A-1" and offering["token"] == "ACME" and offering["status"] == "open"
    assert offering["price"] == "2500" and offering["raise_max"] == "5000000" and offering["raise_min"] == "0"
    assert offering["subscribed"] == "6000000" and offering["subscribers"] == 3
    assert offering["cash_wallet"] == A("treasury").hex() and isinstance(offering["opens_at"], int)
    assert "subscription" not in offering
    mine = await rpc("offering_get", id="A-1", identity="ann")
    assert mine["subscription"] == {"identity": "ann", "wallet": A("ann").hex(), "amount": "2000000",
                                    "subscribed_at_s": mine["subscription"]["subscribed_at_s"], "status": "pending",
                                    "reason": "", "allocated": "0", "units": "0", "paid": "0", "refunded": "0"}
    assert (await rpc("offering_get", id="A-1", identity="nobody"))["subscription"] is None


async def test_offering_list_filters_by_token_and_status_and_pages(rpc):
    everything = await rpc("offering_list")
    assert [o["id"] for o in everything["offerings"]] == ["A-1", "A-2", "B-1"] and everything["next"] is None
    assert [o["id"] for o in (await rpc("offering_list", token="ACME"))["offerings"]] == ["A-1", "A-2"]
    assert [o["id"] for o in (await rpc("offering_list", status="cancelled"))["offerings"]] == ["A-2"]
    assert [o["id"] for o in (await rpc("offering_list", token="BETA", status="open"))["offerings"]] == ["B-1"]
    first = await rpc("offering_list", limit=2)
    assert [o["id"] for o in first["offerings"]] == ["A-1", "A-2"] and first["next"] == "A-2"
    second = await rpc("offering_list", limit=2, after=first["next"])
    assert [o["id"] for o in second["offerings"]] == ["B-1"] and second["next"] is None


async def test_offering_subscriptions_page_by_identity(rpc):
    whole = await rpc("offering_subscriptions", id="A-1")
    assert [(s["identity"], s["amount"]) for s in whole["subscriptions"]] == [
        ("ann", "2000000"), ("ben", "3000000"), ("cat", "1000000")]
    pages, after = [], None
    while True:
        page = await rpc("offering_subscriptions", id="A-1", limit=2, **({"after": after} if after else {}))
        pages.append([s["identity"] for s in page["subscriptions"]])
        after = page["next"]
        if after is None:
            break
    assert pages == [["ann", "ben"], ["cat"]]
    assert (await rpc("offering_subscriptions", id="B-1")) == {"id": "B-1", "subscriptions": [], "next": None}


async def test_errors_name_what_is_wrong(rpc):
    for method in ("offering_get", "offering_subscriptions"):
        missing = await rpc(method, id="NOPE")
        assert missing["code"] == -32001 and "NOPE" in missing["message"]
    bad = await rpc("offering_list", status="pending")
    assert bad["code"] == -32602 and bad["data"]["param"] == "status"
    assert (await rpc("offering_get", id="a b"))["code"] == -32602
    assert (await rpc("offering_subscriptions"))["code"] == -32602


def test_the_openrpc_document_lists_the_methods(rpc):
    methods = {m["name"]: m for m in openrpc_document(rpc.registry)["methods"]}
    for name in ("offering_get", "offering_list", "offering_subscriptions"):
        assert name in methods
    assert [p["name"] for p in methods["offering_list"]["params"]] == ["token", "status", "after", "limit"]
    statuses = next(p for p in methods["offering_list"]["params"] if p["name"] == "status")["schema"]["enum"]
    assert statuses == ["open", "closed", "failed", "cancelled"]
