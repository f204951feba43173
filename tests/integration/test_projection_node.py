"""The node's projector (node/service.py): every `PROJECTION_EVERY_BLOCKS` blocks, or
`PROJECTION_IDLE_S` after a commit it has not projected, it brings the read side to the tip in the
background (so an idle chain's read side reaches the tip); a projection that fails is retried while
every query still answers from the write side; and a projector task that cannot keep up is caught
up by the commit itself, so the read side never trails by more than `PROJECTION_LAG_BLOCKS_MAX` blocks."""

from __future__ import annotations

import asyncio

import pytest

from ledger import queries
from ledger.client import Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.rpc.client import RpcClient
from node.service import PROJECTION_LAG_BLOCKS_MAX
from node.setup.keys import load_key
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio
CHAIN_ID = "secledger-local"


def address(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


async def committed(client: RpcClient, *txs: bytes) -> list[dict]:
    hashes = [(await client.call("tx_submit", tx=raw.hex()))["hash"] for raw in txs]
    return [await client.call("tx_wait", hash=h, timeout_ms=20_000) for h in hashes]


async def until(done, timeout_s: float = 20) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_the_read_side_follows_the_tip_and_survives_a_failing_projection(tmp_path):
    net = LocalNetwork(tmp_path / "net", validators=1, observers=1)
    await net.start()
    try:
        observer = net.nodes["observer-0"].ledger
        failing = {"on": True, "refused": 0}

        def flaky(point: str) -> None:  # the disk refuses the observer's slices until the test says
            if point == "slice_written" and failing["on"]:
                failing["refused"] += 1
                raise OSError("disk full")

        async with RpcClient(net.rpc_url("validator-0")) as client:
            admin = Signer(load_key(net.directory / "keys" / "admin.json"), CHAIN_ID)
            kyc, issuer, agent, alice = (Signer(key_for(n), CHAIN_ID) for n in ("kyc", "issuer", "agent", "alice"))
            await committed(client, admin.grant_role("claim_issuer", kyc.address),
                            admin.grant_role("token_issuer", issuer.address))
            await committed(client, kyc.register_identity("alice", [address("alice")]),
                            kyc.register_identity("bob", [address("bob")]),
                            kyc.grant_claim("alice", "kyc", FAR_FUTURE_S), kyc.grant_claim("bob", "kyc", FAR_FUTURE_S),
                            issuer.create_token("ACME", "Acme", agents={agent.address: ["supply"]}))
            await until(lambda: observer.projected_height == observer.tip.height > 0)
            observer.fault = flaky
            done = await committed(client, agent.issue("ACME", address("alice"), 100),
                                   alice.transfer("ACME", address("bob"), 7))
            top = done[-1]["height"]
            await until(lambda: observer.tip.height >= top)
            # the projector tries within PROJECTION_IDLE_S of the commit (or after 4 blocks), and is refused
            await until(lambda: failing["refused"] > 0)
            assert observer.projected_height < top
            async with RpcClient(net.rpc_url("observer-0")) as reader:  # answered from the write side meanwhile
                assert (await reader.call("tx_get", hash=done[-1]["hash"]))["height"] == top
                trail = await reader.call("identity_history", identity="bob", to_height=top)
                assert [e["kind"] for e in trail["events"]][-1] == "token.transferred"
                balance = await reader.call("token_balance", token="ACME", address=address("bob").hex(), height=top)
                assert balance["balance"] == "7"
            failing["on"] = False
            await committed(client, alice.transfer("ACME", address("bob"), 1))  # it retries: the idle timer, or 4 blocks
            await until(lambda: observer.projected_height == observer.tip.height)
        validator = net.nodes["validator-0"].ledger
        for who in (validator, observer):
            await until(lambda who=who: who.projected_height == who.tip.height)
        for identity in ("alice", "bob"):
            assert queries.identity_history(observer, identity, to_height=top) == \
                queries.identity_history(validator, identity, to_height=top)
    finally:
        await net.stop()


async def test_a_projector_that_falls_behind_is_caught_up_by_the_commits(tmp_path):
    net = LocalNetwork(tmp_path / "net", validators=1, observers=0)
    await net.start()
    try:
        node = net.nodes["validator-0"]
        [task] = [t for t in node._tasks if t.get_name() == "projection"]
        task.cancel()  # as if the loop never had a free turn for it
        start = node.ledger.tip.height
        await until(lambda: node.ledger.tip.height >= start + 3 * PROJECTION_LAG_BLOCKS_MAX)
        assert node.ledger.tip.height - node.ledger.projected_height <= PROJECTION_LAG_BLOCKS_MAX
        assert node.ledger.projected_height > start
    finally:
        await net.stop()
