"""`identity_history` and the `identity` filter of `events_query`, through the node's real method
declarations and dispatcher (params checked, errors mapped, results as JSON)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ledger.testing import LedgerHarness, address_of
from node.rpc.api import build_registry
from node.rpc.dispatch import Dispatcher
from node.rpc.methods import openrpc_document

A = address_of


@pytest.fixture
def rpc(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("alice", wallets=("alice", "alice-2"))
    h.investor("bob", country="KP")
    h.token("ACME", rules={"country_block": ["KP"]})
    agent, alice = h.signer("agent"), h.signer("alice-2")
    h.commit(agent.issue("ACME", A("alice-2"), 50))
    h.commit(alice.transfer("ACME", A("bob"), 5))  # refused in its block: bob's country is blocked
    h.commit(h.signer("kyc").revoke_claim("bob", "country"))
    registry = build_registry(SimpleNamespace(ledger=h.ledger))
    dispatcher = Dispatcher(registry)

    async def call(method: str, **params):
        reply = json.loads(await dispatcher.handle(json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})))
        return reply.get("result", reply.get("error"))

    call.registry = registry
    yield call
    h.close()


async def test_identity_history_pages_through_the_trail(rpc):
    whole = await rpc("identity_history", identity="bob")
    assert whole["identity"] == "bob" and whole["next"] is None
    assert [e["kind"] for e in whole["events"]] == ["identity.registered", "claim.granted", "claim.granted",
                                                    "tx.rejected", "claim.revoked"]
    refused = whole["events"][3]
    assert refused["data"] == {"kind": "token.transfer", "code": 0x57, "reason": "receiver_country_blocked:KP"}
    assert refused["addresses"] == [A("alice-2").hex()]  # the signer; bob is found through the refused body
    pages, after = [], None
    while True:
        page = await rpc("identity_history", identity="bob", limit=2, **({"after": after} if after else {}))
        pages.append([e["cursor"] for e in page["events"]])
        after = page["next"]
        if after is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == [e["cursor"] for e in whole["events"]]
    claims = await rpc("identity_history", identity="bob", kind="claim.granted", to_height=refused["height"])
    assert [e["data"]["topic"] for e in claims["events"]] == ["kyc", "country"]


async def test_events_query_takes_an_identity_filter(rpc):
    alice = await rpc("events_query", identity="alice", token="ACME")
    assert [e["kind"] for e in alice["events"]] == ["token.issued", "tx.rejected"]
    assert alice["events"][0]["data"]["to"] == A("alice-2").hex()
    assert (await rpc("events_query", identity="alice", kind="claim.revoked"))["events"] == []


async def test_errors_name_what_is_wrong(rpc):
    missing = await rpc("identity_history", identity="nobody")
    assert missing["code"] == -32001 and "nobody" in missing["message"]
    bad = await rpc("identity_history", identity="bob", kind="no.such")
    assert bad["code"] == -32602 and bad["data"]["param"] == "kind"
    assert (await rpc("identity_history"))["code"] == -32602
    assert (await rpc("events_query", identity="a b"))["code"] == -32602


def test_the_openrpc_document_lists_the_params(rpc):
    documented = {m["name"]: m for m in openrpc_document(rpc.registry)["methods"]}
    assert [p["name"] for p in documented["identity_history"]["params"]] == [
        "identity", "kind", "from_height", "to_height", "after", "limit"]
    assert "identity" in [p["name"] for p in documented["events_query"]["params"]]
