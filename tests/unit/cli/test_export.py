"""`secledger export events|holders|transfers` and `secledger query identity-history`, against a
real ledger behind the node's real RPC methods (dispatched in process, no network): every format,
paging, amounts up to 2^64-1 sent as integers or as decimal strings, and one-line errors that
leave no partial file."""

from __future__ import annotations

import asyncio
import csv
import json
from decimal import Decimal
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli import commands
from cli.export import percent
from cli.main import main
from ledger import queries
from ledger.block import Block
from ledger.kinds import AMOUNT_MAX
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of
from ledger.tx import decode_transaction
from node.rpc.api import build_registry, jsonable
from node.rpc.client import RpcError, RpcTransportError
from node.rpc.dispatch import Dispatcher

A = address_of
AMOUNT_FIELDS = {"amount", "balance", "frozen", "free", "total_supply"}


def _as_strings(value, key=None):
    """What a node that sends u64 amounts as decimal strings answers."""
    if isinstance(value, dict):
        return {k: _as_strings(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_strings(v, key) for v in value]
    if key in AMOUNT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class DispatchClient:
    """The CLI's RPC client, answered by the node's registry over a ledger."""

    url = "http://ledger.test/"

    def __init__(self, ledger, *, string_amounts: bool = False, fail_after: int | None = None,
                 blocks: str = "raw") -> None:
        def describe_block(height: int) -> dict:
            """`blocks`: "raw" (RPC 0.1: `txs` the signed bytes), "decoded" (0.2: `txs` decoded,
            `txs_raw` the bytes), "decoded-only" (decoded, no bytes)."""
            block = Block.decode(queries.block(ledger, height)[0])
            out = {"height": height, "chain_id": block.header.chain_id, "txs": list(block.txs)}
            if blocks != "raw":
                decoded = [decode_transaction(raw, chain_id=ledger.chain_id) for raw in block.txs]
                out["txs"] = [_as_strings(jsonable({"signer": tx.signer, "body": tx.body})) for tx in decoded]
                if blocks == "decoded":
                    out["txs_raw"] = list(block.txs)
            return jsonable(out)

        node = SimpleNamespace(ledger=ledger, describe_block=describe_block,
                               status=lambda: queries.chain_status(ledger))
        self.dispatcher = Dispatcher(build_registry(node))
        self.string_amounts = string_amounts
        self.fail_after = fail_after
        self.calls: list[str] = []

    def call_sync(self, method: str, **params):
        self.calls.append(method)
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise RpcTransportError(f"{self.url}: connection reset")
        reply = json.loads(asyncio.run(self.dispatcher.handle(json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))))
        if "error" in reply:
            error = reply["error"]
            raise RpcError(error["code"], error["message"], error.get("data"))
        return _as_strings(reply["result"]) if self.string_amounts else reply["result"]


@pytest.fixture
def market(tmp_path):
    """alice (US; wallets alice, alice-2), bob (GB), carol (KP, blocked); ACME with transfers, a
    freeze and a refusal in its block; BIG whose one holder holds 2^64-1."""
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("alice", wallets=("alice", "alice-2"))
    h.investor("bob", country="GB")
    h.investor("carol", country="KP")
    h.investor("whale", country=None)
    h.token("ACME", rules={"country_block": ["KP"]})
    h.token("BIG")
    agent, alice = h.signer("agent"), h.signer("alice")
    h.commit(agent.issue("ACME", A("alice"), 1_000), agent.issue("ACME", A("alice-2"), 500),
             agent.issue("BIG", A("whale"), AMOUNT_MAX))
    h.commit(alice.transfer("ACME", A("bob"), 100), alice.transfer("ACME", A("carol"), 7))  # the second refused
    h.commit(agent.freeze_partial("ACME", A("bob"), 40), agent.force_transfer("ACME", A("alice-2"), A("bob"), 50))
    h.commit(h.signer("bob").transfer("ACME", A("alice"), 10))
    h.commit(h.signer("kyc").grant_claim("alice", "accredited", FAR_FUTURE_S))
    yield h
    h.close()


@pytest.fixture
def run(monkeypatch, capsys):
    """`run(client, *argv)`: (exit code, parsed stdout or None, stderr) of one command."""

    def invoke(client, *argv: str):
        monkeypatch.setattr(commands, "_client", lambda url: client)
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err

    return invoke


def _read(path, fmt: str) -> list[dict]:
    """Rows as Python values: amounts as int, whatever the format stored them as."""
    if fmt == "parquet":
        rows = pq.read_table(path).to_pylist()
    elif fmt == "csv":
        with open(path, newline="") as f:
            rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]
    else:
        rows = [json.loads(line) for line in open(path)]
    for row in rows:
        for key in ("amount", "balance", "identity_balance", "frozen", "height", "tx_index", "event_index",
                    "frozen_height"):
            if row.get(key) is not None:
                row[key] = int(row[key])
    return rows


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_events_export_writes_every_matching_event_in_order(market, run, tmp_path, fmt):
    out = tmp_path / f"events.{fmt}"
    code, result, err = run(DispatchClient(market.ledger), "export", "events", "--token", "ACME", "--out", str(out),
                            "--page-size", "2")
    assert code == 0, err
    expected = queries.events(market.ledger, token="ACME", limit=1000)["events"]
    rows = _read(out, fmt)
    assert result["rows"] == len(rows) == len(expected) and result["format"] == fmt
    assert [(r["height"], r["tx_index"], r["event_index"], r["kind"]) for r in rows] == \
        [(e["height"], e["tx_index"], e["event_index"], e["kind"]) for e in expected]
    issued = [r for r in rows if r["kind"] == "token.issued"]
    assert [r["amount"] for r in issued] == [1_000, 500]
    assert json.loads(issued[0]["data"])["amount"] == 1_000  # an integer, even if the node sent a string
    refused = [r for r in rows if r["kind"] == "tx.rejected"]
    assert [(r["code"], r["reason"]) for r in refused] == [("0x57", "receiver_country_blocked:KP")]
    assert json.loads(refused[0]["data"])["kind"] == "token.transfer"
    if fmt == "parquet":
        schema = pq.read_schema(out)
        assert schema.field("amount").type == pa.decimal128(20, 0)
        assert schema.field("addresses").type == pa.list_(pa.string())


def test_the_largest_amount_survives_every_format_and_string_amounts(market, run, tmp_path):
    for fmt in ("parquet", "csv", "jsonl"):
        for strings in (False, True):
            out = tmp_path / f"big-{strings}.{fmt}"
            client = DispatchClient(market.ledger, string_amounts=strings)
            assert run(client, "export", "events", "--token", "BIG", "--kind", "token.issued", "--out", str(out))[0] == 0
            assert [r["amount"] for r in _read(out, fmt)] == [AMOUNT_MAX], (fmt, strings)
            out = tmp_path / f"big-holders-{strings}.{fmt}"
            assert run(client, "export", "holders", "--token", "BIG", "--out", str(out))[0] == 0
            [row] = _read(out, fmt)
            assert (row["balance"], row["identity_percent"], row["country"]) == (AMOUNT_MAX, "100.000000", None)
    raw = pq.read_table(tmp_path / "big-True.parquet").column("amount").to_pylist()
    assert raw == [Decimal(AMOUNT_MAX)]


def test_holders_export_by_identity_and_wallet_at_a_height(market, run, tmp_path):
    h = market
    record = h.ledger.tip.height - 2  # after the freeze and forced transfer, before bob's transfer back
    out = tmp_path / "holders.parquet"
    code, result, err = run(DispatchClient(h.ledger), "export", "holders", "--token", "ACME", "--height",
                            str(record), "--out", str(out), "--page-size", "1")
    assert code == 0, err
    rows = _read(out, "parquet")
    by_wallet = {(r["identity"], r["wallet"]): r for r in rows}
    assert {k: v["balance"] for k, v in by_wallet.items()} == {
        ("alice", A("alice").hex()): 900, ("alice", A("alice-2").hex()): 450, ("bob", A("bob").hex()): 150}
    assert result["total"] == 1_500 and result["identities"] == 2 and result["height"] == record
    alice = by_wallet["alice", A("alice").hex()]
    assert (alice["identity_balance"], alice["identity_percent"], alice["percent"], alice["country"]) == \
        (1_350, "90.000000", "60.000000", "US")
    bob = by_wallet["bob", A("bob").hex()]
    assert (bob["country"], bob["frozen"], bob["address_frozen"], bob["frozen_height"]) == \
        ("GB", 40, False, h.ledger.tip.height)  # frozen parts as of the tip: the ledger keeps no history of them
    holders = queries.holders(h.ledger, "ACME", height=record)["holders"]
    assert sum(r["balance"] for r in rows) == sum(x["balance"] for x in holders)


@pytest.mark.parametrize("blocks", ["raw", "decoded", "decoded-only"])
def test_transfers_export_lists_committed_and_refused_transfers(market, run, tmp_path, blocks):
    out = tmp_path / "transfers.csv"
    code, result, err = run(DispatchClient(market.ledger, string_amounts=True, blocks=blocks), "export",
                            "transfers", "--token", "ACME", "--out", str(out))
    assert code == 0, err
    rows = _read(out, "csv")
    summary = [(r["kind"], r["status"], r["from_identity"], r["to_identity"], r["amount"], r["code"], r["reason"])
               for r in rows]
    assert summary == [
        ("token.transfer", "committed", "alice", "bob", 100, "0x51", "success"),
        ("token.transfer", "refused", "alice", "carol", 7, "0x57", "receiver_country_blocked:KP"),
        ("token.force_transfer", "committed", "alice", "bob", 50, "0x51", "success"),
        ("token.transfer", "committed", "bob", "alice", 10, "0x51", "success"),
    ]
    assert rows[1]["from"] == A("alice").hex() and rows[1]["to"] == A("carol").hex()
    assert result["to_height"] == market.ledger.tip.height


def test_percentages_are_exact_and_rounded_down():
    assert percent(1, 3) == "33.333333"
    assert percent(2, 3) == "66.666666"
    assert percent(AMOUNT_MAX, AMOUNT_MAX) == "100.000000"
    assert percent(1, AMOUNT_MAX) == "0.000000"
    assert percent(5, 0) == "0.000000"


def test_errors_are_one_line_and_leave_no_file(market, run, tmp_path):
    client = DispatchClient(market.ledger)
    out = tmp_path / "x.parquet"
    code, _, err = run(client, "export", "holders", "--token", "NOPE", "--out", str(out))
    assert code == 1 and err.count("\n") == 1 and "NOPE" in err and not out.exists()
    code, _, err = run(client, "export", "events", "--identity", "nobody", "--out", str(out))
    assert code == 1 and "nobody" in err and not out.exists()
    code, _, err = run(client, "export", "events", "--out", str(out), "--page-size", "0")
    assert code == 2 and err.startswith("error: --page-size:")
    code, _, err = run(client, "export", "events", "--out", str(out), "--from-height", "5", "--to-height", "2")
    assert code == 2 and err.startswith("error: --to-height:")
    code, _, err = run(client, "export", "events", "--out", str(tmp_path / "x.txt"))
    assert code == 2 and err.startswith("error: --format:")
    code, _, err = run(client, "export", "events", "--out", str(tmp_path / "missing" / "x.csv"))
    assert code == 2 and err.startswith("error: --out:") and "missing" in err
    code, _, err = run(client, "export", "events", "--out", str(out), "--format", "xml")
    assert code == 2 and "--format" in err and err.count("\n") == 1
    # the node goes away in the middle: exit 1, the partial file removed, nothing else left behind
    out.write_bytes(b"an older export")
    code, _, err = run(DispatchClient(market.ledger, fail_after=3), "export", "events", "--out", str(out),
                       "--page-size", "1")
    assert code == 1 and err.startswith("error: cannot reach the node") and "Traceback" not in err
    assert out.read_bytes() == b"an older export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "x.parquet"]


def test_query_identity_history_and_events_by_identity(market, run):
    client = DispatchClient(market.ledger)
    code, page, err = run(client, "query", "identity-history", "carol", "--kind", "tx.rejected")
    assert code == 0, err
    assert [e["data"]["reason"] for e in page["events"]] == ["receiver_country_blocked:KP"]
    code, page, _ = run(client, "query", "identity-history", "alice", "--limit", "2")
    assert len(page["events"]) == 2 and page["next"] is not None and page["identity"] == "alice"
    code, page, _ = run(client, "query", "events", "--identity", "bob", "--kind", "token.partially_frozen")
    assert [int(e["data"]["amount"]) for e in page["events"]] == [40]  # a string from RPC 0.2 on
    code, _, err = run(client, "query", "identity-history", "nobody")
    assert code == 1 and "nobody" in err


def test_a_progress_bar_shows_on_a_terminal_and_the_file_gets_the_usual_mode(market, run, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    out = tmp_path / "events.csv"
    code, result, err = run(DispatchClient(market.ledger), "export", "events", "--out", str(out), "--page-size", "5")
    assert code == 0 and result["rows"] == len(queries.events(market.ledger, limit=1000)["events"])
    assert "export events" in err and "heights" in err
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
