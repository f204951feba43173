"""The client API brokers rely on (docs/RPC.md), on a real network in one process: u64 quantities
as exact decimal strings, decoded blocks, the "replaced" status, and resumable subscriptions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path

import aiohttp
import pytest

from cli.main import main as cli_main
from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.rpc.client import RpcClient, RpcError
from node.setup.keys import load_key, save_key

pytestmark = pytest.mark.asyncio

CHAIN_ID = "secledger-local"
BIG = 2**60 + 1  # a float (a JavaScript number) cannot hold it: float(BIG) == 2**60
DOCS = Path(__file__).resolve().parents[2] / "docs" / "RPC.md"


def address(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


async def submit(client: RpcClient, raw: bytes) -> dict:
    submitted = await client.call("tx_submit", tx=raw.hex())
    return await client.call("tx_wait", hash=submitted["hash"], timeout_ms=20_000)


async def set_up(net, client: RpcClient, issued: int) -> dict[str, Signer]:
    """Roles, two KYC'd investors and a token ACME of which alice holds `issued`."""
    admin = Signer(load_key(net.directory / "keys" / "admin.json"), CHAIN_ID)
    signers = {name: Signer(key_for(name), CHAIN_ID) for name in ("kyc", "issuer", "agent", "alice", "bob")}
    kyc, issuer, agent = signers["kyc"], signers["issuer"], signers["agent"]
    for raw in (admin.grant_role("claim_issuer", kyc.address), admin.grant_role("token_issuer", issuer.address)):
        assert (await submit(client, raw))["status"] == "committed"
    for name in ("alice", "bob"):
        await client.call("tx_submit", tx=kyc.register_identity(name, [address(name)]).hex())
        assert (await submit(client, kyc.grant_claim(name, "kyc", FAR_FUTURE_S)))["status"] == "committed"
    created = await submit(client, issuer.create_token("ACME", "Acme Corp common", rules={"required_claims": ["kyc"]},
                                                       agents={agent.address: ["freeze", "supply"]}))
    assert created["status"] == "committed", created
    assert (await submit(client, agent.issue("ACME", address("alice"), issued)))["status"] == "committed"
    return signers


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_u64_quantities_are_exact_decimal_strings_over_http_and_in_the_cli(network, capsys, tmp_path):
    url = network.rpc_url("validator-0")
    async with RpcClient(url) as client:
        signers = await set_up(network, client, BIG)
        # the raw HTTP answer carries the exact digits: a float-based JSON parser (JavaScript's
        # JSON.parse) would have read the number 1152921504606846977 as 1152921504606846976
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "token_balance",
                           "params": {"token": "ACME", "address": address("alice").hex()}})
        async with aiohttp.ClientSession() as http, http.post(
                url, data=body, headers={"Content-Type": "application/json"}) as reply:
            raw = await reply.text()
        assert float(BIG) != BIG and str(BIG) == "1152921504606846977"
        assert '"balance":"1152921504606846977"' in raw and '"free":"1152921504606846977"' in raw
        assert '"frozen":"0"' in raw and re.search(r'"height":\d+[,}]', raw)  # heights stay numbers
        as_floats = json.loads(raw, parse_int=float)["result"]  # what a double-only parser sees
        assert as_floats["balance"] == str(BIG) and int(as_floats["balance"]) == BIG

        token = await client.call("token_get", token="ACME")
        assert token["total_supply"] == str(BIG) and token["holder_count"] == 1 and token["decimals"] == 0
        nonce = await client.call("account_nonce", address=address("alice").hex())
        assert nonce == {"address": address("alice").hex(), "next_nonce": "0", "committed_nonce": "0"}
        issued = await client.call("events_query", token="ACME", kind="token.issued")
        assert issued["events"][0]["data"]["amount"] == str(BIG)

        # in: an amount must be a decimal string; a JSON number is refused naming the field
        params = {"token": "ACME", "sender": address("alice").hex(), "receiver": address("bob").hex()}
        with pytest.raises(RpcError) as number:
            await client.call("compliance_check", **params, amount=5)
        assert number.value.code == -32602
        assert number.value.message.startswith('amount: amount must be a decimal string, e.g. "1000"')
        assert number.value.data["param"] == "amount"
        for bad in ("+5", "-5", " 5", "5.0", "18446744073709551616"):
            with pytest.raises(RpcError) as refused:
                await client.call("compliance_check", **params, amount=bad)
            assert refused.value.code == -32602 and refused.value.message.startswith("amount: "), bad
        assert (await client.call("compliance_check", **params, amount=str(BIG)))["ok"] is True

        # a decoded block: the issue, its body's amount a string, its receipt, and the raw bytes
        sent = await submit(client, signers["alice"].transfer("ACME", address("bob"), BIG - 1))
        assert sent["status"] == "committed" and sent["nonce"] == "0"
        block = await client.call("block_get", height=sent["height"])
        [tx] = [t for t in block["txs"] if t["hash"] == sent["hash"]]
        assert tx["kind"] == "token.transfer" and tx["signer"] == address("alice").hex() and tx["nonce"] == "0"
        assert tx["body"] == {"token": "ACME", "to": address("bob").hex(), "amount": str(BIG - 1)}
        assert tx["receipt"] == {"status": "committed", "code": "0x51", "reason": sent["reason"]}
        assert hashlib.sha256(bytes.fromhex(block["txs_raw"][tx["index"]])).hexdigest() == tx["hash"]
        assert isinstance(block["height"], int) and isinstance(block["certificate"]["round"], int)

    # the CLI reads and prints the same strings, and signs with the node's string nonce
    save_key(tmp_path / "alice.json", key_for("alice"))
    code, out, err = await asyncio.to_thread(cli, capsys, "query", "balance", "ACME", address("bob").hex(),
                                             "--rpc", url)
    assert code == 0, err
    assert json.loads(out)["balance"] == str(BIG - 1) and '"balance": "1152921504606846976"' in out
    code, out, err = await asyncio.to_thread(cli, capsys, "tx", "transfer", "--token", "ACME", "--to",
                                             address("bob").hex(), "--amount", "1", "--key",
                                             str(tmp_path / "alice.json"), "--rpc", url)
    assert code == 0, err
    moved = json.loads(out)
    assert moved["status"] == "committed" and moved["nonce"] == "1"
    code, out, err = await asyncio.to_thread(cli, capsys, "query", "block", str(moved["height"]), "--rpc", url)
    assert code == 0, err
    shown = [t for t in json.loads(out)["txs"] if t["hash"] == moved["hash"]]
    assert shown and shown[0]["body"]["amount"] == "1" and shown[0]["kind"] == "token.transfer"
    code, out, err = await asyncio.to_thread(cli, capsys, "query", "compliance", "ACME", address("bob").hex(),
                                             address("alice").hex(), str(BIG), "--rpc", url)
    assert code == 0 and json.loads(out)["ok"] is True, err


async def test_a_transaction_whose_nonce_another_one_used_is_reported_replaced(network):
    """Two transfers of alice with the same nonce, given to two validators: one commits, and the
    other's tx_wait (promptly, not at its timeout) and tx_get answer "replaced" by the winner."""
    names = ("validator-0", "validator-1")
    async with RpcClient(network.rpc_url(names[0])) as first, RpcClient(network.rpc_url(names[1])) as second:
        signers = await set_up(network, first, 1000)
        alice = signers["alice"]
        await network.wait_for_height(network.nodes[names[0]].ledger.tip.height, names=list(names))
        nonce = int((await second.call("account_nonce", address=alice.address.hex()))["next_nonce"])
        alice.nonce = nonce
        one = alice.transfer("ACME", address("bob"), 1)
        alice.nonce = nonce
        two = alice.transfer("ACME", address("bob"), 2)
        # Both admitted in one step of the event loop, each by its own validator: through RPC,
        # the first one's gossip or a proposal holding it could reach the second validator
        # first and make the second a stale nonce there. (`tx_submit` is `Node.submit` of the hex.)
        admitted = [await network.nodes[names[0]].submit(one), await network.nodes[names[1]].submit(two)]
        hashes = [tx.hash.hex() for tx in admitted]
        assert hashes[0] != hashes[1]
        started = time.monotonic()
        answers = await asyncio.gather(first.call("tx_wait", hash=hashes[0], timeout_ms=30_000),
                                       second.call("tx_wait", hash=hashes[1], timeout_ms=30_000))
        waited = time.monotonic() - started
        assert sorted(a["status"] for a in answers) == ["committed", "replaced"], answers
        winner = next(a for a in answers if a["status"] == "committed")
        loser_index = next(i for i, a in enumerate(answers) if a["status"] == "replaced")
        loser = answers[loser_index]
        assert loser == {"hash": hashes[loser_index], "status": "replaced", "replaced_by": winner["hash"],
                         "height": winner["height"], "signer": alice.address.hex(), "nonce": str(nonce)}
        assert waited < 15, f"tx_wait took {waited:.1f} s: it must answer at the commit, not at its timeout"
        loser_client = (first, second)[loser_index]
        assert await loser_client.call("tx_get", hash=hashes[loser_index]) == loser
        assert (await loser_client.call("tx_get", hash=winner["hash"]))["status"] == "committed"


async def test_an_events_subscription_resumes_from_height_without_gap_or_repeat(network):
    url = network.rpc_url("validator-2")
    transfers = {"token": "ACME", "kind": "token.transferred"}
    async with RpcClient(url) as client:
        alice = (await set_up(network, client, 1000))["alice"]
        async with client.subscribe("events", transfers) as live:
            for amount in (1, 2):
                assert (await submit(client, alice.transfer("ACME", address("bob"), amount)))["status"] == "committed"
            before = [await asyncio.wait_for(live.__anext__(), 20) for _ in range(2)]
        # disconnected: the client saw everything through height h
        h = before[-1]["height"]
        assert [e["data"]["amount"] for e in before] == ["1", "2"]
        for amount in (3, 4, 5):
            assert (await submit(client, alice.transfer("ACME", address("bob"), amount)))["status"] == "committed"
        async with client.subscribe("events", transfers, from_height=h + 1) as resumed:
            replayed = [await asyncio.wait_for(resumed.__anext__(), 20) for _ in range(3)]
            await client.call("tx_submit", tx=alice.transfer("ACME", address("bob"), 6).hex())
            live_one = await asyncio.wait_for(resumed.__anext__(), 20)
        top = live_one["height"]
        expected = await client.call("events_query", token="ACME", kind="token.transferred", from_height=h + 1,
                                     to_height=top)
        assert replayed + [live_one] == expected["events"]
        assert [e["data"]["amount"] for e in replayed + [live_one]] == ["3", "4", "5", "6"]
        assert expected["next"] is None and all(e["height"] > h for e in replayed)


def documented_subscribe_requests() -> list[dict]:
    """The `->` lines of docs/RPC.md that call `subscribe`."""
    requests = []
    for line in DOCS.read_text().splitlines():
        if line.startswith("-> ") and '"subscribe"' in line:
            requests.append(json.loads(line[3:]))
    return requests


async def test_the_documented_subscription_examples_run(network):
    requests = documented_subscribe_requests()
    assert requests, "docs/RPC.md shows a subscribe request"
    for request in requests:
        from_height = request["params"].get("from_height")
        if from_height is not None:
            await network.wait_for_height(from_height + 1, names=["validator-0"], timeout_s=60)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            network.rpc_url("validator-0") + "ws") as socket:
        for request in requests:
            await socket.send_str(json.dumps(request))
            answer = json.loads((await socket.receive(timeout=20)).data)
            assert answer.get("id") == request["id"] and re.fullmatch("[0-9a-f]{32}", answer["result"]), answer
            if request["params"]["topic"] == "blocks":  # replays from from_height, in order
                notes = [json.loads((await socket.receive(timeout=20)).data) for _ in range(2)]
                heights = [n["params"]["result"]["height"] for n in notes]
                assert heights == [request["params"]["from_height"], request["params"]["from_height"] + 1]
                assert all(n["params"]["subscription"] == answer["result"] for n in notes)
            await socket.send_str(json.dumps({"jsonrpc": "2.0", "method": "unsubscribe",
                                              "params": [answer["result"]], "id": "u"}))
            while (reply := json.loads((await socket.receive(timeout=20)).data)).get("id") != "u":
                pass
            assert reply["result"] is True
