"""A real network in one process: four validators and an observer over encrypted peer links,
driven only through JSON-RPC, as a client would."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import nacl.signing
import pytest

from ledger import queries
from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.p2p import PeerAddress, PeerManager
from node.rpc.client import RpcClient, RpcError
from node.setup.keys import load_key

pytestmark = pytest.mark.asyncio


def address(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


async def submit(client: RpcClient, raw: bytes) -> dict:
    submitted = await client.call("tx_submit", tx=raw.hex())
    return await client.call("tx_wait", hash=submitted["hash"], timeout_ms=20_000)


async def set_up_token(net, client: RpcClient) -> dict[str, Signer]:
    """Admin appoints a KYC provider and an issuer; two investors; a token with an agent."""
    chain_id = "secledger-local"
    admin = Signer(load_key(net.directory / "keys" / "admin.json"), chain_id)
    signers = {name: Signer(key_for(name), chain_id) for name in ("kyc", "issuer", "agent", "alice", "bob", "carol")}
    kyc, issuer, agent = signers["kyc"], signers["issuer"], signers["agent"]
    for raw in (admin.grant_role("claim_issuer", kyc.address), admin.grant_role("token_issuer", issuer.address)):
        assert (await submit(client, raw))["status"] == "committed"
    for name, country in (("alice", "US"), ("bob", "GB"), ("carol", "KP")):
        await client.call("tx_submit", tx=kyc.register_identity(name, [address(name)]).hex())
        await client.call("tx_submit", tx=kyc.grant_claim(name, "kyc", FAR_FUTURE_S).hex())
        last = await submit(client, kyc.grant_claim(name, "country", FAR_FUTURE_S, country))
        assert last["status"] == "committed"
    created = await submit(client, issuer.create_token(
        "ACME", "Acme Corp common", rules={"required_claims": ["kyc"], "country_block": ["KP"]},
        agents={agent.address: ["freeze", "supply"]}))
    assert created["status"] == "committed", created
    assert (await submit(client, agent.issue("ACME", address("alice"), 1_000)))["status"] == "committed"
    return signers


async def test_transfers_commit_everywhere_and_observer_verifies(network):
    async with RpcClient(network.rpc_url("validator-1")) as client:
        signers = await set_up_token(network, client)
        alice = signers["alice"]
        hashes = [(await client.call("tx_submit", tx=alice.transfer("ACME", address("bob"), 10).hex()))["hash"]
                  for _ in range(20)]
        for tx_hash in hashes:
            result = await client.call("tx_wait", hash=tx_hash, timeout_ms=20_000)
            assert result["status"] == "committed"
        # a transfer the rules refuse is refused at admission, with its reason code
        with pytest.raises(RpcError) as refused:
            await client.call("tx_submit", tx=alice.transfer("ACME", address("carol"), 1).hex())
        assert refused.value.code == -32000
        assert refused.value.data == {"reason_code": "0x57", "reason": "receiver_country_blocked:KP"}
        alice.nonce -= 1  # that nonce was not consumed

        height = max(n.ledger.tip.height for n in network.nodes.values())
    await network.wait_for_height(height, timeout_s=20)
    reference = network.nodes["validator-0"].ledger
    for name, node in network.nodes.items():
        for h in range(1, height + 1):
            assert queries.block(node.ledger, h)[0] == queries.block(reference, h)[0], (name, h)
            assert queries.state_root_at(node.ledger, h) == queries.state_root_at(reference, h), (name, h)
    observer = network.nodes["observer-0"]
    assert observer.sync.blocks_synced >= height - 1  # every block came verified by certificate
    assert observer.sync.rejected_responses == 0
    async with RpcClient(network.rpc_url("observer-0")) as client:
        holders = await client.call("token_holders", token="ACME")
        assert holders["holders"] == [{"identity": "alice", "balance": "800"}, {"identity": "bob", "balance": "200"}]
        with pytest.raises(RpcError) as read_only:
            await client.call("tx_submit", tx=alice.transfer("ACME", address("bob"), 1).hex())
        assert read_only.value.code == -32002


async def test_unknown_peer_key_is_refused(network):
    validator = network.nodes["validator-0"]
    refused_before = validator.peers.stats.refused_unknown
    stranger = PeerManager(nacl.signing.SigningKey.generate(), allowed_keys=[validator.peers.node_key],
                           on_message=lambda peer, data: asyncio.sleep(0),
                           persistent_peers=[PeerAddress(validator.peers.node_key, "127.0.0.1",
                                                         validator.peers.listen_port)],
                           network_id=validator.peers.network_id)  # same chain, unknown key
    await stranger.start()
    try:
        for _ in range(100):
            if validator.peers.stats.refused_unknown > refused_before:
                break
            await asyncio.sleep(0.05)
        assert validator.peers.stats.refused_unknown > refused_before
        assert stranger.node_key not in validator.peers.connected_peers()
    finally:
        await stranger.stop()


async def test_every_rpc_error_code(network, monkeypatch):
    url = network.rpc_url("validator-0")
    async with aiohttp.ClientSession() as http:
        async def raw(body: bytes) -> dict:
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as reply:
                return json.loads(await reply.read())

        assert (await raw(b"{not json"))["error"]["code"] == -32700
        assert (await raw(b'{"jsonrpc": "2.0", "id": 1}'))["error"]["code"] == -32600
        assert (await raw(b'{"jsonrpc": "2.0", "id": 1, "method": "no_such"}'))["error"]["code"] == -32601
        bad_params = await raw(b'{"jsonrpc": "2.0", "id": 1, "method": "block_get", "params": {"height": "x"}}')
        assert bad_params["error"]["code"] == -32602
        too_big = await raw(b'{"jsonrpc": "2.0", "id": 1, "method": "chain_status", "pad": "'
                            + b"x" * 2_000_000 + b'"}')
        assert too_big["error"]["code"] == -32004
        batch = await raw(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "chain_status"} for i in range(101)]).encode())
        assert batch["error"]["code"] == -32004

    async with RpcClient(url) as client:
        with pytest.raises(RpcError) as not_found:
            await client.call("token_get", token="NOPE")
        assert not_found.value.code == -32001
        with pytest.raises(RpcError) as timeout:
            await client.call("tx_wait", hash="00" * 32, timeout_ms=50)
        assert timeout.value.code == -32003
        kyc = Signer(key_for("kyc"), "secledger-local")
        with pytest.raises(RpcError) as bad_sig:
            forged = bytearray(kyc.register_identity("x", []))
            forged[-1] ^= 1
            await client.call("tx_submit", tx=bytes(forged).hex())
        assert bad_sig.value.code == -32005 and bad_sig.value.data["reason"].startswith("bad_signature")
        with pytest.raises(RpcError) as rejected:  # kyc is not a claim issuer yet: refused by the rules
            await client.call("tx_submit", tx=Signer(key_for("kyc"), "secledger-local").register_identity("x", []).hex())
        assert rejected.value.code == -32000 and rejected.value.data["reason_code"] == "0x58"
        # an unexpected failure inside the node is -32603 and leaks nothing
        monkeypatch.setattr(queries, "chain_status", lambda ledger: 1 / 0)
        with pytest.raises(RpcError) as internal:
            await client.call("chain_status")
        assert internal.value.code == -32603 and "ZeroDivision" not in str(internal.value)


async def test_websocket_subscription_gets_filtered_events(network):
    async with RpcClient(network.rpc_url("validator-2")) as client:
        signers = await set_up_token(network, client)
        async with client.subscribe("events", {"token": "ACME", "kind": "token.transferred"}) as events:
            sent = await client.call("tx_submit", tx=signers["alice"].transfer("ACME", address("bob"), 7).hex())
            event = await asyncio.wait_for(events.__anext__(), 20)
            assert event["kind"] == "token.transferred" and event["tx"] == sent["hash"]
            assert event["data"]["amount"] == "7"  # u64 amounts are decimal strings (docs/RPC.md)


async def test_restarted_validator_catches_up_by_block_sync(network):
    await network.wait_for_height(2)
    await network.stop("validator-3")
    stopped_at = network.nodes["validator-0"].ledger.tip.height
    await network.wait_for_height(stopped_at + 5, names=["validator-0", "validator-1", "validator-2"])
    await network.start("validator-3")
    target = network.nodes["validator-0"].ledger.tip.height
    await network.wait_for_height(target, names=["validator-3"], timeout_s=30)
    node = network.nodes["validator-3"]
    assert node.sync.blocks_synced > 0
    assert queries.state_root_at(node.ledger, target) == queries.state_root_at(
        network.nodes["validator-0"].ledger, target)
    # and it takes part in consensus again: the chain goes on with it
    await network.wait_for_height(target + 3, names=["validator-3"], timeout_s=30)


async def test_rpc_discover_documents_every_node_method(network):
    async with RpcClient(network.rpc_url("observer-0")) as client:
        document = await client.call("rpc.discover")
    registry = network.nodes["observer-0"].rpc.registry
    documented = {m["name"]: m for m in document["methods"]}
    assert set(documented) == {m.name for m in registry}
    for name in ("tx_submit", "tx_get", "tx_wait", "chain_status", "block_get", "validators_list", "token_get",
                 "token_balance", "token_holders", "identity_get", "events_query", "compliance_check",
                 "subscribe", "unsubscribe"):
        assert name in documented
    assert [p["name"] for p in documented["token_balance"]["params"]] == ["token", "address", "height"]


@pytest.mark.parametrize("mode", ["double_vote", "equivocate"])
async def test_byzantine_validator_is_caught_and_the_honest_stay_safe_and_live(network, mode):
    from node.validator.byzantine import Byzantine

    liar = network.nodes["validator-3"]
    liar.driver.byzantine = Byzantine(mode, liar.validator_key, liar.chain_id, liar.ledger,
                                      liar._broadcast_to_validators)
    honest = ["validator-0", "validator-1", "validator-2"]
    start = network.nodes["validator-0"].ledger.tip.height
    await network.wait_for_height(start + 10, names=honest, timeout_s=60)
    assert liar.driver.byzantine.sent > 0
    top = min(network.nodes[n].ledger.tip.height for n in honest)
    for h in range(1, top + 1):
        assert len({queries.block(network.nodes[n].ledger, h)[0] for n in honest}) == 1
    async with RpcClient(network.rpc_url("validator-0")) as client:
        evidence = await client.call("evidence_list")
    assert evidence and {e["validator"] for e in evidence} == {liar.validator_key.verify_key.encode().hex()}


async def test_corporate_actions_over_rpc(network):
    from ledger.testing import FAR_FUTURE_S as EXPIRY

    async with RpcClient(network.rpc_url("validator-0")) as client:
        signers = await set_up_token(network, client)
        issuer, agent, kyc = signers["issuer"], signers["agent"], signers["kyc"]
        await submit(client, kyc.register_identity("treasury", [issuer.address]))
        await submit(client, kyc.grant_claim("treasury", "kyc", EXPIRY))
        assert (await submit(client, issuer.create_token("USD", "Tokenized dollars", decimals=2, rules={
            "required_claims": ["kyc"]}, agents={agent.address: ["supply"]})))["status"] == "committed"
        await submit(client, agent.issue("USD", issuer.address, 1_000_000))
        record = (await client.call("chain_status"))["height"]
        declared = await submit(client, issuer.declare_distribution("DIV-1", "ACME", "USD", record_height=record,
                                                                     rate_num=2, rate_den=1, expires_at=EXPIRY))
        assert declared["status"] == "committed", declared
        assert (await submit(client, signers["alice"].claim_distribution("DIV-1")))["status"] == "committed"
        info = await client.call("distribution_get", id="DIV-1", identity="alice")
        assert info["funded"] == "2000" and info["paid"] == "2000" and info["identity"]["paid"] == "2000"
        await submit(client, issuer.set_document("ACME", "prospectus", "https://acme.example/p.pdf", b"\x07" * 32))
        assert [d["name"] for d in await client.call("token_documents", token="ACME")] == ["prospectus"]
        top = (await client.call("chain_status"))["height"]
        await submit(client, issuer.create_ballot("AGM", "ACME", "Merge?", ["yes", "no"], record_height=top,
                                                  opens_at_height=top, closes_at_height=top + 100))
        await submit(client, signers["alice"].vote("AGM", 0))
        ballot = await client.call("ballot_get", id="AGM")
        assert ballot["tallies"] == ["1000", "0"] and ballot["voters"] == 1


async def test_concurrent_submissions_of_one_signer_are_admitted_in_arrival_order(network):
    """Signatures are checked on worker threads, but nonces n, n+1, ... sent on concurrent
    requests must not be reordered into a false nonce gap."""
    async with RpcClient(network.rpc_url("validator-0")) as client:
        signers = await set_up_token(network, client)
        alice = signers["alice"]
        raws = [alice.transfer("ACME", address("bob"), 1) for _ in range(30)]
        results = await asyncio.gather(*(client.call("tx_submit", tx=raw.hex()) for raw in raws))
        assert all(r["status"] == "pending" for r in results)
        last = await client.call("tx_wait", hash=results[-1]["hash"], timeout_ms=20_000)
        assert last["status"] == "committed"


async def test_a_node_whose_state_diverges_halts_loudly_and_the_others_go_on(network, caplog):
    """Nothing diverges silently: corrupt one validator's state accumulator behind the ledger's
    back; the next certified block names another state root, and that node halts."""
    await network.wait_for_height(2)
    victim = network.nodes["validator-3"]
    ledger = victim.ledger
    with ledger.store.write() as txn:
        wrong = (ledger.tip.accumulator + 1) % (1 << 256)
        ledger.store.put_meta(txn, "accumulator", wrong.to_bytes(32, "big"))
    ledger.tip = ledger._load_tip()
    start = network.nodes["validator-0"].ledger.tip.height
    honest = ["validator-0", "validator-1", "validator-2"]
    await network.wait_for_height(start + 4, names=honest, timeout_s=30)
    for _ in range(100):
        if victim.halted:
            break
        await asyncio.sleep(0.05)
    assert victim.halted and "StateRootMismatch" in victim.halted
    assert any("HALTED" in r.message for r in caplog.records)
    async with RpcClient(network.rpc_url("validator-3")) as client:
        status = await client.call("chain_status")  # reads go on, and say why
    assert status["halted"] == victim.halted
    halted_at = victim.ledger.tip.height
    await network.wait_for_height(start + 6, names=honest, timeout_s=30)
    assert victim.ledger.tip.height == halted_at  # it applies nothing more


async def test_identity_get_needs_an_identity_or_an_address(network):
    async with RpcClient(network.rpc_url("validator-0")) as client:
        with pytest.raises(RpcError) as missing:
            await client.call("identity_get")
        assert missing.value.code == -32602
        with pytest.raises(RpcError) as unknown:
            await client.call("identity_get", address="00" * 32)
        assert unknown.value.code == -32001
