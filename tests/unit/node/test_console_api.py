"""The console's read-only methods (node/rpc/console_methods.py) through the node's real declarations and
dispatcher: token list and paging, supply and holder count at a height, the wallets behind a page
of holders, holdings across tokens, and the block of a moment."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ledger import Block, queries
from ledger.testing import LedgerHarness, address_of
from node.rpc.api import build_registry
from node.rpc.console_methods import IDENTITIES_PER_CALL_MAX
from node.rpc.dispatch import Dispatcher

A = address_of


@pytest.fixture
def rpc(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("alice", wallets=("alice", "alice-2"))
    h.investor("bob")
    h.investor("carol")
    for symbol in ("ACME", "BETA", "ZED"):
        h.token(symbol, decimals=2)
    agent = h.signer("agent")
    h.commit(agent.issue("ACME", A("alice"), 1_000), agent.issue("ACME", A("bob"), 500))
    first = h.ledger.tip.height
    h.commit(agent.issue("ACME", A("alice-2"), 2**64 - 2_000), agent.issue("BETA", A("carol"), 7),
             agent.freeze_partial("ACME", A("bob"), 200), agent.freeze("ACME", A("alice-2")))
    h.commit(h.signer("bob").transfer("ACME", A("carol"), 300), advance_ms=5_000)
    dispatcher = Dispatcher(build_registry(SimpleNamespace(ledger=h.ledger)))

    async def call(method: str, **params):
        reply = json.loads(await dispatcher.handle(json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})))
        return reply.get("result", reply.get("error"))

    call.harness, call.first = h, first
    yield call
    h.close()


async def test_token_list_pages_in_symbol_order(rpc) -> None:
    everything = await rpc("token_list")
    assert [t["symbol"] for t in everything["tokens"]] == ["ACME", "BETA", "ZED"] and everything["next"] is None
    acme = everything["tokens"][0]
    assert acme == {"symbol": "ACME", "name": "ACME shares", "decimals": 2, "paused": False,
                    "total_supply": str(2**64 - 500), "holder_count": 3}
    page = await rpc("token_list", limit=2)
    assert [t["symbol"] for t in page["tokens"]] == ["ACME", "BETA"] and page["next"] == "BETA"
    rest = await rpc("token_list", after="BETA", limit=2)
    assert [t["symbol"] for t in rest["tokens"]] == ["ZED"] and rest["next"] is None


async def test_supply_and_holder_count_now_and_at_a_height(rpc) -> None:
    now = await rpc("token_supply", token="ACME")
    tip = rpc.harness.ledger.tip.height
    assert now == {"token": "ACME", "height": tip, "total_supply": str(2**64 - 500), "holder_count": 3}
    then = await rpc("token_supply", token="ACME", height=rpc.first)
    assert then == {"token": "ACME", "height": rpc.first, "total_supply": "1500", "holder_count": 2}
    assert (await rpc("token_supply", token="ACME", height=1))["holder_count"] == 0
    assert (await rpc("token_supply", token="NOPE"))["code"] == -32001
    assert (await rpc("token_supply", token="ACME", height=tip + 1))["code"] == -32001


async def test_holder_wallets_add_up_to_token_holders_at_every_height(rpc) -> None:
    tip = rpc.harness.ledger.tip.height
    for height in range(0, tip + 1):
        holders = (await rpc("token_holders", token="ACME", height=height))["holders"]
        wallets = await rpc("token_holder_wallets", token="ACME", identities=[h["identity"] for h in holders],
                            height=height)
        assert wallets["height"] == height and wallets["frozen_height"] == tip
        for holder, entry in zip(holders, wallets["identities"], strict=True):
            assert entry["identity"] == holder["identity"]
            assert sum(int(w["balance"]) for w in entry["wallets"]) == int(holder["balance"])
    now = await rpc("token_holder_wallets", token="ACME", identities=["alice", "bob", "nobody"])
    alice, bob, nobody = now["identities"]
    assert [w["address"] for w in alice["wallets"]] == sorted([A("alice").hex(), A("alice-2").hex()])
    frozen_wallet = next(w for w in alice["wallets"] if w["address"] == A("alice-2").hex())
    assert frozen_wallet == {"address": A("alice-2").hex(), "balance": str(2**64 - 2_000), "frozen": "0",
                             "address_frozen": True}
    assert bob["wallets"] == [{"address": A("bob").hex(), "balance": "200", "frozen": "200", "address_frozen": False}]
    assert nobody["wallets"] == []
    too_many = await rpc("token_holder_wallets", token="ACME", identities=["a"] * (IDENTITIES_PER_CALL_MAX + 1))
    assert too_many["code"] == -32602 and too_many["data"]["param"] == "identities"


async def test_identity_holdings_across_tokens(rpc) -> None:
    carol = await rpc("identity_holdings", identity="carol")
    assert [(x["token"], x["balance"]) for x in carol["holdings"]] == [("ACME", "300"), ("BETA", "7")]
    then = await rpc("identity_holdings", identity="carol", height=rpc.first)
    assert then["holdings"] == [] and then["height"] == rpc.first
    assert (await rpc("identity_holdings", identity="nobody"))["code"] == -32001


async def test_block_at_time_is_the_last_block_at_or_before_it(rpc) -> None:
    ledger = rpc.harness.ledger
    tip = ledger.tip.height
    times = {h: Block.decode(queries.block(ledger, h)[0]).header.time_ms for h in range(1, tip + 1)}
    for height, at in times.items():
        assert await rpc("block_at_time", time_ms=at) == {"height": height, "time_ms": at}
        if height < tip:
            assert (await rpc("block_at_time", time_ms=times[height + 1] - 1))["height"] == height
    assert (await rpc("block_at_time", time_ms=times[tip] + 10**9))["height"] == tip
    assert (await rpc("block_at_time", time_ms=times[1] - 1))["code"] == -32001
    assert (await rpc("block_at_time", time_ms=-1))["code"] == -32602


async def test_the_methods_are_read_only_and_declared(rpc) -> None:
    doc = await rpc("rpc.discover")
    mine = {m["name"]: m for m in doc["methods"]
            if m["name"] in ("token_list", "token_supply", "token_holder_wallets", "identity_holdings", "block_at_time")}
    assert len(mine) == 5 and not any(m.get("x-write") for m in mine.values())
