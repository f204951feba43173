"""A peer's consensus message that arrives while the node is still starting is taken, not dropped
with an error (the fault campaign once caught a node logging tracebacks for exactly this)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.messages import MessageType, encode_message
from consensus.signing import Signer as ConsensusSigner
from node.p2p import wire
from node.service import Node
from node.setup.keys import load_key
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio


async def test_a_vote_delivered_as_the_peer_links_come_up_reaches_the_core(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path, validators=4, observers=0)
    node = Node(net.configs["validator-0"])
    other = net.configs["validator-1"]
    voter = ConsensusSigner(load_key(other.node.validator_key_file), node.chain_id)
    vote = voter.sign_vote(MessageType.PREVOTE, 1, 0, None)
    peer_key = bytes(load_key(other.node.node_key_file).verify_key)
    start_links = node.peers.start

    async def links_up_with_a_peer_talking_at_once() -> None:
        await start_links()
        await node._on_peer_message(peer_key, wire.encode(wire.ConsensusMessage(encode_message(vote))))

    node.peers.start = links_up_with_a_peer_talking_at_once  # type: ignore[method-assign]
    try:
        await node.start()
        assert node.driver is not None
        assert vote in node.driver.core.round_messages(0)
    finally:
        await node.stop()
