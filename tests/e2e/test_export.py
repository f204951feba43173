"""Audit exports from a real network of `secledger` processes, read back in DuckDB and compared
with what the JSON-RPC answers; and every DuckDB query docs/EXPORT.md shows, run on those files."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import duckdb  # the dev extra
import pytest

from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.rpc.client import RpcClient, RpcError
from node.setup.keys import load_key

from .conftest import SECLEDGER, ProcessNetwork, all_pages, height, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "EXPORT.md"
CHAIN_ID = "secledger-local"


def address(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


def submit(client: RpcClient, raw: bytes) -> dict:
    submitted = client.call_sync("tx_submit", tx=raw.hex())
    return client.call_sync("tx_wait", hash=submitted["hash"], timeout_ms=30_000)


def committed(client: RpcClient, *txs: bytes) -> None:
    """Submit in order, then wait for the last: each is committed (checked one by one)."""
    hashes = [client.call_sync("tx_submit", tx=raw.hex())["hash"] for raw in txs]
    for tx_hash in hashes:
        result = client.call_sync("tx_wait", hash=tx_hash, timeout_ms=30_000)
        assert result["status"] == "committed", result


def refuse_in_a_block(v0: RpcClient, v1: RpcClient, issuer: Signer, alice: Signer, rules: dict) -> dict:
    """A transfer the rules refuse in its block, not at admission: the issuer blocks GB through
    validator-1, and alice's transfer to bob (GB) goes to validator-0 before that change is in a
    block. Validator-0 learned of the change by gossip, which only takes its nonce (docs/NODE.md),
    so its dry run still passes; the block holds the change first and refuses the transfer."""
    seen = []
    for attempt in range(20):
        change = v1.call_sync("tx_submit", tx=issuer.set_rules("ACME", {**rules, "country_block": ["GB", "KP"]}).hex())
        time.sleep((0, 0.005, 0.01, 0.02)[attempt % 4])  # gossip must win, the block that commits it lose
        try:
            result = submit(v0, alice.transfer("ACME", address("bob"), 5))
        except RpcError as refused:  # the change was committed first: refused at admission
            assert refused.code == -32000 and refused.data["reason"] == "receiver_country_blocked:GB"
            alice.nonce -= 1
            result = None
        seen.append("admission" if result is None else result["status"])
        v1.call_sync("tx_wait", hash=change["hash"], timeout_ms=30_000)
        submit(v1, issuer.set_rules("ACME", rules))
        if result is not None and result["status"] == "rejected":
            return result
    raise AssertionError(f"no transfer was refused in a block in 20 tries: {seen}")


def export(url: str, directory: Path, *argv: str) -> None:
    result = subprocess.run([SECLEDGER, "export", *argv, "--rpc", url], cwd=directory, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def doc_queries() -> dict[str, str]:
    queries = {}
    for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S):
        name = re.match(r"-- name: (\S+)", block)
        assert name, f"a DuckDB query in docs/EXPORT.md has no '-- name:' line: {block[:60]!r}"
        queries[name.group(1)] = block
    return queries


@pytest.fixture
def network(tmp_path):
    net = ProcessNetwork(tmp_path / "net", validators=4, observers=1, members=0)
    try:
        yield net
    finally:
        net.stop_all()


def test_exports_match_the_rpc_and_the_documented_queries_run(network, tmp_path):
    net = network
    net.start_all()
    wait_until(lambda: height(net.url("observer-0")) >= 1, 60, "the network to start")
    v0, v1 = RpcClient(net.url("validator-0"), timeout_ms=40_000), RpcClient(net.url("validator-1"), timeout_ms=40_000)
    admin = Signer(load_key(net.directory / "keys" / "admin.json"), CHAIN_ID)
    s = {name: Signer(key_for(name), CHAIN_ID) for name in ("kyc", "issuer", "agent", "alice", "bob", "dave")}
    committed(v0, admin.grant_role("claim_issuer", s["kyc"].address),
              admin.grant_role("token_issuer", s["issuer"].address))
    kyc = s["kyc"]
    people = (("alice", ("alice", "alice-2"), "US"), ("bob", ("bob",), "GB"), ("carol", ("carol",), "KP"),
              ("dave", ("dave",), "US"), ("erin", ("erin",), "DE"))
    txs = []
    for name, wallets, country in people:
        txs += [kyc.register_identity(name, [address(w) for w in wallets]), kyc.grant_claim(name, "kyc", FAR_FUTURE_S),
                kyc.grant_claim(name, "country", FAR_FUTURE_S, country)]
    committed(v0, *txs)
    rules = {"required_claims": ["kyc"], "country_block": ["KP"]}
    agent = s["agent"]
    committed(v0, s["issuer"].create_token("ACME", "Acme Corp common", rules=rules,
                                           agents={agent.address: ["force_transfer", "freeze", "supply"]}))
    committed(v0, agent.issue("ACME", address("alice"), 1_000), agent.issue("ACME", address("alice-2"), 500),
              agent.issue("ACME", address("bob"), 200), agent.issue("ACME", address("dave"), 50),
              agent.issue("ACME", address("erin"), 300))
    committed(v0, s["alice"].transfer("ACME", address("bob"), 100), s["bob"].transfer("ACME", address("dave"), 30),
              agent.freeze_partial("ACME", address("bob"), 20))
    # refused at admission: never on the chain
    with pytest.raises(RpcError) as at_door:
        v0.call_sync("tx_submit", tx=s["alice"].transfer("ACME", address("carol"), 10).hex())
    assert at_door.value.data["reason"] == "receiver_country_blocked:KP"
    s["alice"].nonce -= 1
    record = height(net.url("validator-0"))
    refused = refuse_in_a_block(v0, v1, s["issuer"], s["alice"], rules)
    committed(v0, agent.force_transfer("ACME", address("alice-2"), address("erin"), 70),
              s["dave"].transfer("ACME", address("alice"), 5))
    top = height(net.url("validator-0"))
    wait_until(lambda: height(net.url("observer-0")) >= top, 60, "the observer to catch up")

    # --- exports from the regulator's observer ---
    url, out = net.url("observer-0"), tmp_path / "exports"
    out.mkdir()
    rpc = RpcClient(url)
    export(url, out, "holders", "--token", "ACME", "--height", str(record), "--out", "holders.parquet")
    for fmt in ("parquet", "csv", "jsonl"):
        export(url, out, "transfers", "--token", "ACME", "--to-height", str(top), "--out", f"transfers.{fmt}",
               "--page-size", "3")
    export(url, out, "events", "--identity", "alice", "--to-height", str(top), "--out", "trail-alice.parquet")
    export(url, out, "events", "--token", "ACME", "--to-height", str(top), "--out", "events.jsonl")
    db = duckdb.connect()

    def one(sql: str) -> tuple:
        return db.execute(sql).fetchone()

    # holders at the record height: the same identities and units as token_holders at that height
    holders = all_pages(rpc, "token_holders", "holders", token="ACME", height=record)
    count, units = one(f"SELECT count(DISTINCT identity), sum(balance) FROM '{out}/holders.parquet'")
    assert (count, int(units)) == (len(holders), sum(int(h["balance"]) for h in holders))
    per_identity = dict(db.execute(f"SELECT identity, any_value(identity_balance) FROM '{out}/holders.parquet' "
                                   "GROUP BY identity").fetchall())
    assert {k: int(v) for k, v in per_identity.items()} == {h["identity"]: int(h["balance"]) for h in holders}
    assert one(f"SELECT count(*) FROM '{out}/holders.parquet' WHERE identity = 'alice'") == (2,)  # two wallets
    assert one(f"SELECT frozen FROM '{out}/holders.parquet' WHERE identity = 'bob'")[0] == 20

    # transfers: the committed ones are the token's transfer events; the refused one is the receipt's
    events = all_pages(rpc, "events_query", "events", token="ACME", to_height=top)
    moves = [e for e in events if e["kind"] in ("token.transferred", "token.force_transferred")]
    rejections = [e for e in events if e["kind"] == "tx.rejected" and e["data"]["kind"] == "token.transfer"]
    for fmt, source in (("parquet", f"'{out}/transfers.parquet'"),
                        ("csv", f"read_csv('{out}/transfers.csv', types = {{'amount': 'DECIMAL(20,0)'}})"),
                        ("jsonl", f"read_json('{out}/transfers.jsonl', format = 'newline_delimited')")):
        count, units = one(f"SELECT count(*), sum(amount) FROM {source} WHERE status = 'committed'")
        assert (count, int(units)) == (len(moves), sum(int(e["data"]["amount"]) for e in moves)), fmt
        assert one(f"SELECT count(*) FROM {source} WHERE status = 'refused'") == (len(rejections),), fmt
    row = one(f"SELECT height, tx, from_identity, to_identity, amount, code, reason FROM '{out}/transfers.parquet' "
              "WHERE status = 'refused' AND reason LIKE '%GB'")
    assert row == (refused["height"], refused["hash"], "alice", "bob", 5, "0x57", "receiver_country_blocked:GB")

    # events: the token's, and alice's trail, as events_query and identity_history answer
    assert one(f"SELECT count(*) FROM read_json('{out}/events.jsonl', format = 'newline_delimited')") == (len(events),)
    trail = all_pages(rpc, "identity_history", "events", identity="alice", to_height=top)
    assert one(f"SELECT count(*) FROM '{out}/trail-alice.parquet'") == (len(trail),)
    assert [r[0] for r in db.execute(f"SELECT kind FROM '{out}/trail-alice.parquet' ORDER BY height, tx_index, "
                                     "event_index").fetchall()] == [e["kind"] for e in trail]

    # --- the documented queries, run where the doc's file names are ---
    queries = doc_queries()
    assert {"load-csv", "load-jsonl", "top-holders-by-country", "refused-for-blocked-country", "identity-trail",
            "identity-transfers"} <= set(queries)
    db.execute(f"SET file_search_path = '{out}'")
    results = {name: db.execute(sql).fetchall() for name, sql in queries.items()}
    committed_units = sum(int(e["data"]["amount"]) for e in moves) + 5 * len(rejections)  # refused: 5 asked
    assert [(c, int(u)) for c, u in results["load-csv"]] == [(len(moves) + len(rejections), committed_units)]
    assert results["load-jsonl"] == results["load-csv"]
    top_holders = results["top-holders-by-country"]
    assert [(r[0], r[1], r[4]) for r in top_holders if r[0] == "US"] == [("US", "alice", 1), ("US", "dave", 2)]
    assert {r[1] for r in top_holders} == {h["identity"] for h in holders}
    blocked = results["refused-for-blocked-country"]
    assert [(r[2], r[3], r[7]) for r in blocked] == [("alice", "bob", "GB")]
    assert len(results["identity-trail"]) == len(trail)
    directions = [(r[2], r[7]) for r in results["identity-transfers"]]
    assert ("refused", "out") in directions and ("committed", "in") in directions
