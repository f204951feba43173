"""`secledger settle ...` and the settlement RPC methods (`settlement_get`, `settlement_list`,
`settlement_check`, node/rpc/settlement_methods.py) together: the CLI's client is a stand-in whose read
methods go through the node's real method declarations and dispatcher (params checked, errors
mapped, results as JSON), and whose submitted transactions are committed at once, alone in a block
(or refused as the mempool's dry run would)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from types import SimpleNamespace

import pytest

from cli import commands
from cli.main import main
from ledger import queries
from ledger.testing import LedgerHarness, address_of, key_for
from ledger.tx import decode_transaction
from node.rpc.api import build_registry, jsonable
from node.rpc.client import RpcError
from node.rpc.dispatch import Dispatcher
from node.setup.keys import save_key

A = address_of
FAR = "4102444800"


class Node:
    """The methods the CLI calls: transactions committed at once; everything else through the
    node's registry and dispatcher."""

    url = "http://ledger.test/"

    def __init__(self, harness: LedgerHarness) -> None:
        self.h = harness
        self.dispatcher = Dispatcher(build_registry(SimpleNamespace(ledger=harness.ledger)))

    def call_sync(self, method: str, **params):
        ledger = self.h.ledger
        if method == "chain_status":
            return jsonable(queries.chain_status(ledger))
        if method == "account_nonce":
            return {"next_nonce": str(ledger.next_nonce(bytes.fromhex(params["address"])))}
        if method == "tx_submit":
            raw = bytes.fromhex(params["tx"])
            outcome = ledger.dry_run(decode_transaction(raw, chain_id=ledger.chain_id))
            if not outcome.ok:
                raise RpcError(-32000, f"transaction rejected: {outcome.reason}",
                               {"reason_code": f"0x{outcome.code:02x}", "reason": outcome.reason})
            self.h.commit(raw)
            return {"hash": hashlib.sha256(raw).hexdigest(), "status": "pending"}
        if method == "tx_wait":
            tx = queries.transaction(ledger, bytes.fromhex(params["hash"]))
            return jsonable({**tx, "code": f"0x{tx['code']:02x}"})
        return self.call(method, **params)

    def call(self, method: str, **params):
        reply = json.loads(asyncio.run(self.dispatcher.handle(json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))))
        if "error" in reply:
            error = reply["error"]
            raise RpcError(error["code"], error["message"], error.get("data"))
        return reply["result"]


@pytest.fixture
def node(tmp_path, monkeypatch):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("alice", accredited=True)
    h.investor("bob", accredited=True)
    h.investor("carol")
    h.token("ACME", rules={"required_claims": ["kyc"]})
    h.token("USD", rules={"required_claims": ["kyc"]}, decimals=2)
    agent = h.signer("agent")
    h.commit(agent.issue("ACME", A("alice"), 1_000), agent.issue("USD", A("bob"), 500_000))
    stand_in = Node(h)
    monkeypatch.setattr(commands, "_client", lambda url: stand_in)
    for name in ("alice", "bob", "carol", "venue", "agent"):
        save_key(tmp_path / f"{name}.json", key_for(name))
        h.signers.pop(name, None)  # the CLI signs for them from here on: nonces come from the ledger
    monkeypatch.chdir(tmp_path)
    yield stand_in
    h.close()


def cli(capsys, *argv: str) -> tuple[int, object, str]:
    """(exit code, parsed stdout or None, stderr) of one command."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    try:
        parsed = json.loads(out) if out.strip() else None
    except ValueError:  # a help text
        parsed = out
    return code, parsed, err


def legs(*specs: str) -> list[str]:
    return [arg for spec in specs for arg in ("--leg", spec)]


DVP = legs(f"ACME:alice.json:{A('bob').hex()}:100", "USD:bob.json:alice.json:25000")


def test_a_dvp_through_the_command_line_and_the_rpc(node, capsys):
    code, out, err = cli(capsys, "settle", "create", *DVP, "--expires-at", FAR, "--reference", "T-1",
                         "--key", "alice.json")
    assert code == 0, err
    assert out["status"] == "committed" and out["instruction"] == 1 and out["instruction_status"] == "pending"
    code, out, err = cli(capsys, "settle", "check", "1")
    assert code == 0 and out["ok"] is False and out["reason"] == "affirmations_missing" and out["code"] == "0x50"
    assert out["legs"] == {"ok": True, "code": "0x51", "reason": "success", "leg": None}
    assert out["missing_affirmations"] == sorted([A("alice").hex(), A("bob").hex()])
    assert cli(capsys, "settle", "affirm", "1", "--key", "alice.json")[1]["instruction_status"] == "pending"
    code, out, err = cli(capsys, "settle", "affirm", "1", "--key", "bob.json")
    assert code == 0 and out["instruction_status"] == "settled"
    assert [e["kind"] for e in out["events"]][-1] == "settlement.settled"
    code, out, _ = cli(capsys, "settle", "show", "1")
    assert out["status"] == "settled" and out["reference"] == "T-1" and out["creator"] == A("alice").hex()
    assert out["legs"][0] == {"leg": 0, "token": "ACME", "from": A("alice").hex(), "to": A("bob").hex(),
                              "amount": "100", "affirmed": True}
    assert out["legs"][1]["amount"] == "25000"  # amounts as decimal strings, like every u64 of the RPC
    code, out, _ = cli(capsys, "settle", "list", "--wallet", "bob.json", "--status", "settled")
    assert [i["id"] for i in out["instructions"]] == [1] and out["next"] is None
    code, out, _ = cli(capsys, "settle", "list", "--identity", "carol")
    assert out["instructions"] == []
    # a settled instruction: one line, exit 1
    code, out, err = cli(capsys, "settle", "execute", "1", "--key", "alice.json")
    assert code == 1 and "instruction_settled" in err and len(err.strip().splitlines()) == 1


def test_a_failed_attempt_is_a_failure_of_the_command(node, capsys):
    cli(capsys, "settle", "create", *DVP, "--expires-at", FAR, "--type", "manual", "--key", "bob.json")
    cli(capsys, "settle", "affirm", "1", "--key", "alice.json")
    cli(capsys, "settle", "affirm", "1", "--key", "bob.json")
    code, out, err = cli(capsys, "tx", "freeze", "--token", "USD", "--address", "alice.json", "--key", "agent.json")
    assert code == 0, err
    code, out, err = cli(capsys, "settle", "check", "1")
    assert (out["ok"], out["leg"], out["code"], out["reason"]) == (False, 1, "0x57", "receiver_frozen")
    code, out, err = cli(capsys, "settle", "execute", "1", "--key", "alice.json")
    assert code == 1 and out["status"] == "committed" and out["instruction_status"] == "pending"
    assert err.strip() == ("error: instruction 1 did not settle: leg 1: 0x57 receiver_frozen; nothing moved, "
                           "it stays pending")
    code, out, _ = cli(capsys, "settle", "show", "1")
    assert out["last_failure"]["leg"] == 1 and out["last_failure"]["code"] == "0x57"


def test_usage_errors_name_the_flag_and_exit_2(node, capsys):
    cases = [
        (("settle", "create", "--leg", "ACME:alice.json:bob.json", "--expires-at", FAR, "--key", "alice.json"),
         "--leg: expected TOKEN:FROM:TO:AMOUNT"),
        (("settle", "create", "--leg", "ACME:alice.json:bob.json:lots", "--expires-at", FAR, "--key", "alice.json"),
         "--leg: expected an integer amount"),
        (("settle", "create", "--leg", "ACME:nofile:bob.json:1", "--expires-at", FAR, "--key", "alice.json"),
         "--leg: 'nofile' is neither 64 hex digits nor a key file"),
        (("settle", "create", "--leg", "ACME:alice.json:alice.json:1", "--expires-at", FAR, "--key", "alice.json"),
         "--leg: from and to are the same wallet (at legs[0])"),
        (("settle", "create", "--leg", "ACME:alice.json:bob.json:0", "--expires-at", FAR, "--key", "alice.json"),
         "--leg: 0 outside"),
        (("settle", "create", *DVP, "--expires-at", FAR, "--type", "at_height", "--key", "alice.json"),
         "--height: required for at_height"),
        (("settle", "create", *DVP, "--expires-at", "soon", "--key", "alice.json"), "--expires-at: expected an integer"),
        (("settle", "create", *DVP, "--expires-at", FAR, "--type", "later", "--key", "alice.json"), "--type: invalid"),
        (("settle", "create", *DVP, "--expires-at", FAR, "--key", "missing.json"), "--key"),
        (("settle", "affirm", "one", "--key", "alice.json"), "ID: expected an instruction number"),
        (("settle", "affirm", "0", "--key", "alice.json"), "ID: expected an instruction number"),
        (("settle", "list", "--limit", "0"), "limit"),
        (("settle", "list", "--wallet", "nobody"), "--wallet"),
        (("settle", "check", "1", "--time-s", "-5"), "--time-s"),
        (("settle",), "a ACTION is needed"),
    ]
    for argv, expected in cases:
        code, out, err = cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert expected in err and (argv == ("settle",) or len(err.strip().splitlines()) == 1), (argv, err)
        assert "Traceback" not in err


def test_refusals_and_unknown_instructions_exit_1_in_one_line(node, capsys):
    code, _, err = cli(capsys, "settle", "create", *DVP, "--expires-at", FAR, "--key", "carol.json")
    assert code == 1 and "not_authorized:party" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "settle", "create", *DVP, "--expires-at", FAR, "--venue", "--key", "venue.json")
    assert code == 1 and "not_authorized:venue_operator" in err
    code, _, err = cli(capsys, "settle", "affirm", "7", "--key", "alice.json")
    assert code == 1 and "unknown_instruction" in err and len(err.strip().splitlines()) == 1
    for argv in (("settle", "show", "7"), ("settle", "check", "7")):
        code, _, err = cli(capsys, *argv)
        assert code == 1 and "no settlement instruction 7" in err and len(err.strip().splitlines()) == 1


def test_the_rpc_methods_check_their_params(node):
    with pytest.raises(RpcError) as bad:
        node.call("settlement_list", status="done")
    assert bad.value.code == -32602
    with pytest.raises(RpcError) as bad:
        node.call("settlement_get", id=0)
    assert bad.value.code == -32602
    with pytest.raises(RpcError) as missing:
        node.call("settlement_list", identity="nobody")
    assert missing.value.code == -32001
    assert node.call("settlement_list") == {"instructions": [], "next": None}
    document = node.call("rpc.discover")
    names = {m["name"] for m in document["methods"]}
    assert {"settlement_get", "settlement_list", "settlement_check"} <= names
