"""Settlement instructions on a real network in one process (four validators, an observer), driven
through JSON-RPC and the `secledger settle` command as a client would: a DvP created and affirmed
by the command line, the race of the issue refused at admission, the dry run, the queries on the
observer, and every node's state root alike."""

from __future__ import annotations

import asyncio
import json

import pytest

from cli.main import main as cli_main
from ledger import queries
from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.rpc.client import RpcClient, RpcError
from node.setup.keys import load_key, save_key

pytestmark = pytest.mark.asyncio

CHAIN_ID = "secledger-local"


def address(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


async def submit(client: RpcClient, raw: bytes) -> dict:
    submitted = await client.call("tx_submit", tx=raw.hex())
    return await client.call("tx_wait", hash=submitted["hash"], timeout_ms=20_000)


def cli(capsys, *argv: str) -> tuple[int, object, str]:
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


async def test_a_dvp_over_the_network(network, capsys, tmp_path):
    url = network.rpc_url("validator-0")
    async with RpcClient(url) as client:
        admin = Signer(load_key(network.directory / "keys" / "admin.json"), CHAIN_ID)
        kyc, issuer, agent = (Signer(key_for(n), CHAIN_ID) for n in ("kyc", "issuer", "agent"))
        for raw in (admin.grant_role("claim_issuer", kyc.address), admin.grant_role("token_issuer", issuer.address)):
            assert (await submit(client, raw))["status"] == "committed"
        for name in ("alice", "bob", "carol"):
            await client.call("tx_submit", tx=kyc.register_identity(name, [address(name)]).hex())
            assert (await submit(client, kyc.grant_claim(name, "kyc", FAR_FUTURE_S)))["status"] == "committed"
        for symbol, decimals in (("ACME", 0), ("USD", 2)):
            created = await submit(client, issuer.create_token(symbol, f"{symbol} units", decimals=decimals,
                                                               rules={"required_claims": ["kyc"]},
                                                               agents={agent.address: ["supply"]}))
            assert created["status"] == "committed", created
        await client.call("tx_submit", tx=agent.issue("ACME", address("alice"), 1_000).hex())
        assert (await submit(client, agent.issue("USD", address("bob"), 500_000)))["status"] == "committed"

        for name in ("alice", "bob"):
            save_key(tmp_path / f"{name}.json", key_for(name))
        alice_key, bob_key = str(tmp_path / "alice.json"), str(tmp_path / "bob.json")

        # the command line creates and affirms, signing with nonces the node gives
        code, out, err = await asyncio.to_thread(
            cli, capsys, "settle", "create", "--leg", f"ACME:{alice_key}:{address('bob').hex()}:100",
            "--leg", f"USD:{bob_key}:{alice_key}:25000", "--expires-at", str(FAR_FUTURE_S), "--rpc", url,
            "--key", alice_key)
        assert code == 0, err
        iid = out["instruction"]
        code, out, err = await asyncio.to_thread(cli, capsys, "settle", "affirm", str(iid), "--key", alice_key,
                                                 "--rpc", url)
        assert code == 0 and out["instruction_status"] == "pending", err

        # the race: the reserved units are refused at admission, with the transfer's code
        alice = Signer(key_for("alice"), CHAIN_ID, int((await client.call("account_nonce",
                                                                           address=address("alice").hex()))["next_nonce"]))
        with pytest.raises(RpcError) as refused:
            await client.call("tx_submit", tx=alice.transfer("ACME", address("carol"), 901).hex())
        assert refused.value.data == {"reason_code": "0x52", "reason": "insufficient_unreserved_balance"}

        check = await client.call("settlement_check", id=iid)
        assert check["reason"] == "affirmations_missing" and check["missing_affirmations"] == [address("bob").hex()]
        assert check["legs"]["ok"] is True

        code, out, err = await asyncio.to_thread(cli, capsys, "settle", "affirm", str(iid), "--key", bob_key,
                                                 "--rpc", url)
        assert code == 0 and out["instruction_status"] == "settled", err
        height = out["height"]

    await network.wait_for_height(height, timeout_s=20)
    async with RpcClient(network.rpc_url("observer-0")) as observer:
        view = await observer.call("settlement_get", id=iid)
        assert view["status"] == "settled" and [leg["amount"] for leg in view["legs"]] == ["100", "25000"]
        listed = await observer.call("settlement_list", identity="bob", status="settled")
        assert [i["id"] for i in listed["instructions"]] == [iid]
        balance = await observer.call("token_balance", token="ACME", address=address("bob").hex())
        assert str(balance["balance"]) == "100"
        with pytest.raises(RpcError) as missing:
            await observer.call("settlement_get", id=iid + 1)
        assert missing.value.code == -32001
    reference = network.nodes["validator-0"].ledger
    for name, node in network.nodes.items():
        assert queries.state_root_at(node.ledger, height) == queries.state_root_at(reference, height), name
