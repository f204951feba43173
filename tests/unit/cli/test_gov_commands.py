"""`secledger gov ...`, `query validators --height`, `tx grant-role` on a chain with members and
`secledger testnet`'s members, against a real ledger behind a stand-in for the node's RPC."""

from __future__ import annotations

import hashlib
import json

import pytest

from cli import commands
from cli.main import main
from ledger import queries
from ledger.testing import LedgerHarness, address_of, governed_genesis, key_for
from node.rpc.api import jsonable
from node.rpc.client import RpcError
from node.setup.genesis_file import load_genesis
from node.setup.keys import save_key

A = address_of
HEX = {name: A(name).hex() for name in ("kyc", "v-new", "n-new", "m3")}


class LedgerRpc:
    """The few RPC methods the CLI calls, answered from a ledger; a submitted transaction is
    committed at once, alone in its block (or refused as the mempool's dry run would)."""

    url = "http://ledger.test/"

    def __init__(self, harness: LedgerHarness) -> None:
        self.h = harness
        self.calls: list[str] = []

    def call_sync(self, method: str, **params):
        self.calls.append(method)
        ledger = self.h.ledger
        if method == "chain_status":
            return jsonable(queries.chain_status(ledger))
        if method == "account_nonce":
            return {"next_nonce": str(ledger.next_nonce(bytes.fromhex(params["address"])))}  # a u64: a string
        if method == "tx_submit":
            raw = bytes.fromhex(params["tx"])
            from ledger.tx import decode_transaction

            outcome = ledger.dry_run(decode_transaction(raw, chain_id=ledger.chain_id))
            if not outcome.ok:
                raise RpcError(-32000, f"transaction rejected: {outcome.reason}",
                               {"reason_code": f"0x{outcome.code:02x}", "reason": outcome.reason})
            self.h.commit(raw)
            return {"hash": hashlib.sha256(raw).hexdigest(), "status": "pending"}
        if method == "tx_wait":
            tx = queries.transaction(ledger, bytes.fromhex(params["hash"]))
            return jsonable({**tx, "code": f"0x{tx['code']:02x}"})
        if method == "gov_members":
            return jsonable(queries.gov_members(ledger))
        if method == "gov_proposal":
            return jsonable(queries.gov_proposal(ledger, params["id"]))
        if method == "gov_proposals":
            params["action_class"] = params.pop("class", None)
            return jsonable(queries.gov_proposals(ledger, **params))
        if method == "validators_list":
            return jsonable(queries.validators_at(ledger, params.get("height")))
        raise AssertionError(f"unexpected method {method}")


@pytest.fixture
def node(tmp_path, monkeypatch):
    """`node(genesis)`: a ledger behind the CLI's RPC client, and key files for every name used."""
    made: list[LedgerHarness] = []

    def build(genesis=None) -> LedgerRpc:
        harness = LedgerHarness(str(tmp_path / f"store-{len(made)}"), genesis=genesis)
        made.append(harness)
        rpc = LedgerRpc(harness)
        monkeypatch.setattr(commands, "_client", lambda url: rpc)
        return rpc

    for name in ("admin", "m0", "m1", "m2", "stranger"):
        save_key(tmp_path / f"{name}.json", key_for(name))
    monkeypatch.chdir(tmp_path)
    yield build
    for harness in made:
        harness.close()


def cli(capsys, *argv: str) -> tuple[int, object, str]:
    """(exit code, parsed stdout or None, stderr) of one command."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


THREE = (("m0", ("m0",)), ("m1", ("m1",)), ("m2", ("m2",)))


# --- proposals through the command line -----------------------------------------------------------------


def test_add_validator_on_a_one_member_chain_executes_at_once(node, capsys):
    rpc = node(governed_genesis(validators=(("v0", 10), ("v1", 10), ("v2", 10), ("v3", 10))))
    code, out, err = cli(capsys, "gov", "propose", "add-validator", "--consensus-key", HEX["v-new"], "--power", "10",
                         "--node-key", HEX["n-new"], "--address", "127.0.0.1:26700", "--expires-in", "1000",
                         "--key", "m0.json")
    assert code == 0, err
    assert out["status"] == "committed" and out["proposal"] == 1 and out["proposal_status"] == "executed"
    tip = rpc.h.ledger.tip.height
    added = [v for v in queries.validators_at(rpc.h.ledger, tip + 2) if v["validator_key"] == A("v-new")]
    assert added == [{"validator_key": A("v-new"), "node_key": A("n-new"), "power": 10, "address": "127.0.0.1:26700",
                      "name": f"validator-{HEX['v-new'][:8]}"}]
    proposal = queries.gov_proposal(rpc.h.ledger, 1)
    assert proposal["expires_at_height"] == tip + 1000  # landed at tip: open 1000 blocks after it
    code, out, _ = cli(capsys, "query", "validators", "--height", str(tip + 2))
    assert code == 0 and len(out) == 5
    code, out, _ = cli(capsys, "query", "validators")
    assert code == 0 and len(out) == 4  # the next block's set


def test_votes_withdrawals_and_the_lists(node, capsys):
    rpc = node(governed_genesis(members=THREE, threshold=(2, 3)))
    code, out, _ = cli(capsys, "gov", "propose", "grant-role", "--role", "claim_issuer", "--account", HEX["kyc"],
                       "--key", "m0.json")
    assert code == 0 and out["proposal_status"] == "open"
    code, out, _ = cli(capsys, "gov", "propose", "set-param", "--name", "block_txs_max", "--value", "99",
                       "--key", "m1.json")
    assert code == 0 and out["proposal"] == 2
    code, out, _ = cli(capsys, "gov", "reject", "1", "--key", "m1.json")
    assert code == 0 and out["proposal_status"] == "open"
    code, out, _ = cli(capsys, "gov", "approve", "1", "--key", "m2.json")
    assert code == 0 and out["proposal_status"] == "executed"
    assert queries.accounts_with_role(rpc.h.ledger, "claim_issuer") == [A("kyc")]
    code, out, _ = cli(capsys, "gov", "withdraw", "2", "--key", "m1.json")
    assert code == 0 and out["proposal_status"] == "withdrawn"
    code, _, err = cli(capsys, "gov", "approve", "2", "--key", "m0.json")
    assert code == 1 and "proposal_withdrawn" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli(capsys, "gov", "list", "--status", "executed")
    assert [p["id"] for p in out["proposals"]] == [1]
    code, out, _ = cli(capsys, "gov", "list", "--proposer", "m1", "--class", "params", "--limit", "5")
    assert [p["id"] for p in out["proposals"]] == [2] and out["next"] is None
    code, out, _ = cli(capsys, "gov", "show", "1")
    assert [(v["member"], v["vote"]) for v in out["votes"]] == [("m0", "approve"), ("m1", "reject"),
                                                                ("m2", "approve")]
    code, out, _ = cli(capsys, "gov", "members")
    assert [m["id"] for m in out["members"]] == ["m0", "m1", "m2"] and out["thresholds"]["roles"] == [2, 3]


def test_every_change_builds_its_action(node, capsys):
    rpc = node(governed_genesis(members=THREE, threshold=(2, 3), validators=(("v0", 10), ("v1", 10))))
    v0 = A("validator:v0").hex()
    cases = [
        (["add-validator", "--consensus-key", HEX["v-new"], "--node-key", HEX["n-new"], "--power", "3",
          "--address", "h.example:1", "--name", "bank-e"], "validator.add"),
        (["remove-validator", "--consensus-key", v0], "validator.remove"),
        (["set-power", "--consensus-key", v0, "--power", "12"], "validator.set_power"),
        (["rotate-key", "--consensus-key", v0, "--new-consensus-key", HEX["v-new"], "--new-node-key", HEX["n-new"]],
         "validator.rotate"),
        (["add-member", "--id", "m3", "--name", "Bank D", "--member-key", HEX["m3"], "stranger.json"], "member.add"),
        (["remove-member", "--id", "m2"], "member.remove"),
        (["set-member-keys", "--id", "m2", "--member-key", HEX["m3"]], "member.set_keys"),
        (["grant-role", "--role", "token_issuer", "--account", HEX["kyc"]], "role.grant"),
        (["revoke-role", "--role", "token_issuer", "--account", "stranger.json"], "role.revoke"),
        (["set-param", "--name", "timeout_commit_ms", "--value", "0"], "params.set"),
    ]
    assert {c[0][0] for c in cases} == {spec.name for spec in commands.GOV_SPECS}
    for argv, kind in cases:
        code, out, err = cli(capsys, "gov", "propose", *argv, "--key", "m0.json")
        assert code == 0, (argv, err)
        assert queries.gov_proposal(rpc.h.ledger, out["proposal"])["actions"][0]["action"] == kind
    member = queries.gov_proposal(rpc.h.ledger, 5)["actions"][0]
    assert member["keys"] == sorted([A("m3"), A("stranger")])


# --- tx grant-role on a chain with members ------------------------------------------------------------


def test_tx_grant_role_becomes_a_proposal_on_a_chain_with_members(node, capsys):
    rpc = node(governed_genesis(members=(("consortium", ("admin",)),)))
    code, out, err = cli(capsys, "tx", "grant-role", "--role", "claim_issuer", "--account", HEX["kyc"],
                         "--key", "admin.json")
    assert code == 0 and out["proposal_status"] == "executed"
    assert "roles change by proposal" in err and "gov propose grant-role" in err
    assert queries.accounts_with_role(rpc.h.ledger, "claim_issuer") == [A("kyc")]
    code, out, err = cli(capsys, "tx", "revoke-role", "--role", "claim_issuer", "--account", HEX["kyc"],
                         "--key", "admin.json")
    assert code == 0 and out["proposal_status"] == "executed"
    assert queries.accounts_with_role(rpc.h.ledger, "claim_issuer") == []
    # the admin role is not governed: the transaction goes as it is, and the chain refuses it
    code, _, err = cli(capsys, "tx", "grant-role", "--role", "admin", "--account", HEX["kyc"], "--key", "admin.json")
    assert code == 1 and "governance_required" in err


def test_tx_grant_role_without_members_is_the_administrators(node, capsys):
    rpc = node()
    code, out, err = cli(capsys, "tx", "grant-role", "--role", "claim_issuer", "--account", HEX["kyc"],
                         "--key", "admin.json")
    assert code == 0 and "proposal" not in out and err == ""
    assert queries.accounts_with_role(rpc.h.ledger, "claim_issuer") == [A("kyc")]


# --- bad input: one line naming the flag, exit code 2, before any node is asked ---------------------------


@pytest.mark.parametrize("argv, message", [
    (["gov", "propose", "set-power", "--consensus-key", "ab" * 32, "--power", "ten"], "--power: expected an integer"),
    (["gov", "propose", "set-power", "--consensus-key", "ab" * 32, "--power", "0"], "--power: 0 outside [1, "),
    (["gov", "propose", "set-power", "--consensus-key", "nope", "--power", "1"],
     "--consensus-key: 'nope' is neither 64 hex digits nor a key file"),
    (["gov", "propose", "add-validator", "--consensus-key", "ab" * 32, "--node-key", "cd" * 32, "--power", "1",
      "--address", "no-port"], '--address: expected "host:port"'),
    (["gov", "propose", "add-validator", "--consensus-key", "ab" * 32, "--node-key", "cd" * 32, "--power", "1",
      "--address", "h:1", "--name", "a name"], "--name: expected a validator name"),
    (["gov", "propose", "set-param", "--name", "gas", "--value", "1"], "--name: expected one of"),
    (["gov", "propose", "set-param", "--name", "block_txs_max", "--value", "0"], "--value: 0 outside [1, 20000]"),
    (["gov", "propose", "add-member", "--id", "bad:id", "--name", "X", "--member-key", "ab" * 32],
     "--id: expected a member id"),
    (["gov", "propose", "grant-role", "--role", "admin", "--account", "ab" * 32], "--role: expected one of"),
    (["gov", "propose", "remove-member", "--id", "m1", "--expires-in", "0"], "--expires-in: expected 1 to"),
    (["gov", "propose", "remove-member", "--id", "m1", "--expires-in", "soon"], "--expires-in: expected an integer"),
    (["gov", "propose", "remove-member", "--id", "m1", "--key", "missing.json"], "--key: "),
    (["gov", "approve", "first", "--key", "m0.json"], "ID: expected a proposal number"),
    (["gov", "withdraw", "0", "--key", "m0.json"], "ID: expected a proposal number"),
    (["gov", "show", "-"], "ID: expected a proposal number"),
    (["gov", "list", "--limit", "many"], "--limit: expected an integer"),
    (["query", "validators", "--height", "top"], "--height: expected an integer"),
    (["testnet", "--members", "65", "--out", "net"], "--members: expected 0 to 64"),
])
def test_bad_input_names_the_flag(node, capsys, argv, message):
    rpc = node()
    if "--key" not in argv and argv[:2] in (["gov", "propose"], ["gov", "approve"], ["gov", "withdraw"]):
        argv = [*argv, "--key", "m0.json"]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out is None
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert rpc.calls == []  # refused before any node was asked


# --- secledger testnet names members ----------------------------------------------------------------------


def test_testnet_members(tmp_path, capsys):
    code, out, _ = cli(capsys, "testnet", "--validators", "2", "--observers", "0", "--out", str(tmp_path / "one"))
    genesis = load_genesis(tmp_path / "one" / "genesis.toml")
    admin = bytes(__import__("node.setup.keys", fromlist=["load_key"]).load_key(tmp_path / "one" / "keys" / "admin.json")
                  .verify_key)
    assert [(m.id, m.keys) for m in genesis.members] == [("consortium", (admin,))]
    assert genesis.thresholds.roles == genesis.thresholds.validators == (1, 1) and genesis.admins == (admin,)
    assert out["members"] == {"consortium": str(tmp_path / "one" / "keys" / "admin.json")}

    code, out, _ = cli(capsys, "testnet", "--validators", "4", "--observers", "0", "--members", "4",
                       "--out", str(tmp_path / "four"))
    genesis = load_genesis(tmp_path / "four" / "genesis.toml")
    assert [m.id for m in genesis.members] == ["member-0", "member-1", "member-2", "member-3"]
    assert genesis.thresholds.members == (2, 3) and genesis.admins == ()
    assert not (tmp_path / "four" / "keys" / "admin.json").exists()
    assert sorted(out["members"]) == ["member-0", "member-1", "member-2", "member-3"]
    assert out["members"]["member-2"].endswith("keys/member-2.json")

    code, out, _ = cli(capsys, "testnet", "--validators", "1", "--observers", "0", "--members", "0",
                       "--out", str(tmp_path / "none"))
    genesis = load_genesis(tmp_path / "none" / "genesis.toml")
    assert genesis.members == () and genesis.thresholds is None and len(genesis.admins) == 1
    assert out["members"] == {}


# --- the JSON-RPC methods behind these commands ---------------------------------------------------------


async def test_rpc_methods_of_governance(tmp_path):
    from types import SimpleNamespace

    from ledger.client import Action
    from node.rpc.api import build_registry
    from node.rpc.dispatch import Dispatcher
    from node.rpc.methods import openrpc_document

    harness = LedgerHarness(str(tmp_path / "store"), genesis=governed_genesis(members=THREE, threshold=(2, 3)))
    try:
        signer = harness.signer("m0")
        top = harness.ledger.tip.height + 1
        harness.commit(signer.propose([Action.set_param("block_txs_max", 7)], expires_at_height=top + 9),
                       signer.propose([Action.add_member("m3", "D", [A("m3")])], expires_at_height=top + 9))
        harness.commit(harness.signer("m1").approve(1))
        registry = build_registry(SimpleNamespace(ledger=harness.ledger))
        dispatcher = Dispatcher(registry)

        async def call(method: str, **params):
            reply = json.loads(await dispatcher.handle(json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})))
            return reply.get("result", reply.get("error"))

        assert (await call("chain_params"))["block_txs_max"] == 7
        page = await call("gov_proposals", status="open", **{"class": "members"})
        assert [p["id"] for p in page["proposals"]] == [2] and page["proposals"][0]["actions"][0]["keys"] == \
            [A("m3").hex()]
        assert [p["id"] for p in (await call("gov_proposals", limit=1, after=1))["proposals"]] == [2]
        shown = await call("gov_proposal", id=1)
        assert shown["status"] == "executed" and shown["votes"][1] == {"member": "m1", "vote": "approve",
                                                                       "height": top + 1, "counts": True}
        assert (await call("gov_proposal", id=9))["code"] == -32001
        assert (await call("gov_proposals", status="pending"))["code"] == -32602
        members = await call("gov_members")
        assert members["members"][0] == {"id": "m0", "name": "Member m0", "keys": [A("m0").hex()], "since_height": 0}
        validators = await call("validators_list", height=1)
        assert validators == [{"validator_key": A("validator:v0").hex(), "node_key": A("node:v0").hex(),
                               "power": 10, "address": "", "name": "v0"}]
        assert await call("validators_list") == validators
        assert (await call("validators_list", height=harness.ledger.tip.height + 3))["code"] == -32001
        assert (await call("validators_list", height=0))["code"] == -32602
        documented = {m["name"]: m for m in openrpc_document(registry)["methods"]}
        assert [p["name"] for p in documented["gov_proposals"]["params"]] == ["status", "proposer", "class", "after",
                                                                             "limit"]
        assert [p["name"] for p in documented["validators_list"]["params"]] == ["height"]
    finally:
        harness.close()
