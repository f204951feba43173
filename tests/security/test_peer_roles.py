"""Who counts as a validator on the peer links: decided by inclusion, not by exclusion.

A key that a node's config lists only in `p2p.peers` (a follower, a monitoring node, a typo) is
let in as a peer, but it is not a validator of any height. The review found the node treats it as
one, because validators were found by exclusion (every peer that is not a listed observer): it
gets the consensus votes and proposals, and its own votes are taken. This test runs a network in
which validator-0's config names such a follower, and checks that the follower hears the chain's
status but no consensus traffic.

It needs the change to node/service.py described in docs/P2P.md (section 2.3, "Roles"): until
then it is an expected failure, strict, so it turns red the day the change lands and the marker
is due to go.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import nacl.signing
import pytest

from node.p2p import PeerManager, wire
from node.setup.config import Address, Peer
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio

VALIDATORS = ["validator-0", "validator-1", "validator-2", "validator-3"]
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def test_a_key_listed_only_in_p2p_peers_gets_no_consensus_traffic(tmp_path) -> None:
    follower_key = nacl.signing.SigningKey.generate()
    follower_public = bytes(follower_key.verify_key)
    net = LocalNetwork(tmp_path / "net", observers=1)
    received: list[wire.WireMessage] = []

    async def on_message(peer: bytes, data: bytes) -> None:
        received.append(wire.decode(data, bytes_max=8 << 20))

    port = _free_port()
    config = net.configs["validator-0"]
    net.configs["validator-0"] = dataclasses.replace(
        config,
        p2p=dataclasses.replace(
            config.p2p, peers=(*config.p2p.peers, Peer(follower_public.hex(), Address(HOST, port)))
        ),
    )
    follower: PeerManager | None = None
    try:
        for name in VALIDATORS:
            await net.start(name)
        validator = net.nodes["validator-0"].peers
        validator_key = validator.node_key
        # On the same chain as the node (whatever network id it states), so only its role is in question.
        follower = PeerManager(
            follower_key, allowed_keys={validator_key}, on_message=on_message, network_id=validator.network_id
        )
        await follower.listen(HOST, port)
        await follower.start()
        async with asyncio.timeout(30):
            while validator_key not in follower.connected_peers():
                await asyncio.sleep(0.05)
        start = net.nodes["validator-0"].ledger.tip.height
        await net.wait_for_height(start + 3, names=VALIDATORS, timeout_s=30)
    finally:
        if follower is not None:
            await follower.stop()
        await net.stop()
    kinds = {type(message).__name__ for message in received}
    assert "Status" in kinds  # it is a peer, and hears where the chain is
    assert not kinds & {"ConsensusMessage", "ProposalBlock", "Txs"}, kinds
