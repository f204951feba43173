"""Nodes killed (SIGKILL, at the named fault points of node/fault_points.py) between a block's commit
and its projection, and inside a projection slice: restarted, they resume the projection from its
recorded position, and every query answers exactly as on a validator that never crashed."""

from __future__ import annotations

import signal

from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.rpc.client import RpcClient
from node.setup.keys import load_key

from .conftest import ProcessNetwork, all_pages, height, wait_until

CHAIN_ID = "secledger-local"
WALLETS = ("alice", "alice-2", "bob", "carol", "dave", "zed")
IDENTITIES = ("alice", "bob", "carol", "dave")


def address(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


def send(client: RpcClient, *txs: bytes) -> list[str]:
    return [client.call_sync("tx_submit", tx=raw.hex())["hash"] for raw in txs]


def wait(client: RpcClient, hashes: list[str]) -> None:
    for tx_hash in hashes:
        assert client.call_sync("tx_wait", hash=tx_hash, timeout_ms=30_000)["status"] in ("committed", "rejected")


def answers(client: RpcClient, top: int) -> dict[str, object]:
    out: dict[str, object] = {}
    hashes = [tx["hash"] for h in range(1, top + 1) for tx in client.call_sync("block_get", height=h)["txs"]]
    out["txs"] = [client.call_sync("tx_get", hash=tx_hash) for tx_hash in hashes]
    filters: list[dict[str, object]] = [{}, {"token": "ACME"}, {"kind": "token.transferred"}, {"kind": "tx.rejected"}]
    filters += [{"address": address(w).hex()} for w in WALLETS] + [{"identity": i} for i in IDENTITIES]
    for f in filters:
        out[f"events {f}"] = all_pages(client, "events_query", "events", page=3, to_height=top, **f)
    for identity in IDENTITIES:
        out[f"trail {identity}"] = all_pages(client, "identity_history", "events", page=3, identity=identity, to_height=top)
    for h in range(1, top + 1):
        for wallet in WALLETS:
            out[f"balance {wallet} {h}"] = client.call_sync("token_balance", token="ACME",
                                                            address=address(wallet).hex(), height=h)
        out[f"holders {h}"] = client.call_sync("token_holders", token="ACME", height=h)
    return out


def test_nodes_killed_around_projections_answer_like_one_that_never_crashed(tmp_path):
    net = ProcessNetwork(tmp_path / "net", validators=4, observers=1, members=0)
    try:
        faults = {"validator-3": "kill_after_block_commit:9", "observer-0": "kill_in_projection:9"}
        for name in net.nodes:
            net.start(name, environment={"SECLEDGER_TEST_FAULT": faults[name]} if name in faults else None)
        wait_until(lambda: height(net.url("validator-0")) >= 1, 60, "the network to start")
        v0 = RpcClient(net.url("validator-0"), timeout_ms=40_000)
        admin = Signer(load_key(net.directory / "keys" / "admin.json"), CHAIN_ID)
        s = {name: Signer(key_for(name), CHAIN_ID) for name in ("kyc", "issuer", "agent", *WALLETS)}
        kyc, agent = s["kyc"], s["agent"]
        wait(v0, send(v0, admin.grant_role("claim_issuer", kyc.address),
                      admin.grant_role("token_issuer", s["issuer"].address)))
        wait(v0, send(v0, kyc.register_identity("alice", [address("alice"), address("alice-2")]),
                      kyc.register_identity("bob", [address("bob")]), kyc.register_identity("carol", [address("carol")]),
                      *(kyc.grant_claim(i, "kyc", FAR_FUTURE_S) for i in ("alice", "bob", "carol")),
                      s["issuer"].create_token("ACME", "Acme", agents={agent.address: ["supply", "freeze"]})))
        rounds = 0
        while any(net.processes[n].poll() is None for n in faults) and rounds < 40:
            rounds += 1  # a steady trickle of work, until both reached their fault point
            wait(v0, send(v0, agent.issue("ACME", address("alice"), 10), s["alice"].transfer("ACME", address("bob"), 1),
                          s["bob"].transfer("ACME", address("carol"), 1)))
        for name in faults:
            assert net.processes[name].wait(30) == -signal.SIGKILL, net.log(name)
        for name in faults:
            net.start(name)
        wait(v0, send(v0, kyc.register_identity("dave", [address("dave")]), kyc.add_wallet("alice", address("zed")),
                      kyc.grant_claim("dave", "kyc", FAR_FUTURE_S)))
        wait(v0, send(v0, s["alice"].transfer("ACME", address("zed"), 2), s["carol"].transfer("ACME", address("dave"), 1),
                      agent.freeze("ACME", address("bob"))))
        top = height(net.url("validator-0"))
        for name in faults:
            wait_until(lambda name=name: height(net.url(name)) >= top, 60, f"{name} to catch up")
        expected = answers(v0, top)
        assert len(expected["txs"]) > 12 and expected["trail dave"]
        for name in faults:
            assert answers(RpcClient(net.url(name), timeout_ms=40_000), top) == expected, name
    finally:
        net.stop_all()
