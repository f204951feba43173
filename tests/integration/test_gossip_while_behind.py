"""Gossiped transactions a node cannot use are dropped before any check, and said once, not per batch.

A node catching up (four or more heights behind its peers) would check every gossiped
transaction against a state far behind, refuse it as a nonce gap, and spend on its signature the
CPU the catch-up needs: under the fault campaign's load a wiped validator did exactly that, and
logged a warning for each of thousands of dropped batches.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from node import service
from node.p2p import wire
from node.service import Node
from node.setup.keys import load_key
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio

JUNK = b"\x93not a transaction"


async def _settle() -> None:
    for _ in range(20):  # the background admission takes queued batches on its next turns
        await asyncio.sleep(0.01)


async def test_a_node_far_behind_its_peers_drops_gossip_unchecked(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path, validators=4, observers=0)
    node = Node(net.configs["validator-0"])
    peer = bytes(load_key(net.configs["validator-1"].node.node_key_file).verify_key)
    await node.start()
    try:
        tip = node.ledger.tip.height
        node.sync.peer_heights[peer] = tip + service.GOSSIP_IGNORED_BEHIND_HEIGHTS
        assert node.behind_peers()
        await node._on_peer_message(peer, wire.encode(wire.Txs((JUNK, JUNK + b"2"))))
        await _settle()
        assert node.gossip_ignored["behind"] == 2
        assert not any(source == "peer" for source, _ in node.mempool.refusals)  # never decoded

        node.sync.peer_heights[peer] = tip + service.GOSSIP_IGNORED_BEHIND_HEIGHTS - 1  # close enough
        assert not node.behind_peers()
        await node._on_peer_message(peer, wire.encode(wire.Txs((JUNK,))))
        await _settle()
        assert node.gossip_ignored["behind"] == 2
        assert node.mempool.refusals["peer", "malformed"] + node.mempool.refusals["peer", "non_canonical"] == 1

        # one peer announcing a height far ahead (it may lie) is not enough while another is close;
        # a second one far ahead is
        other = bytes(load_key(net.configs["validator-2"].node.node_key_file).verify_key)
        node.sync.peer_heights[peer] = tip + 1000
        node.sync.peer_heights[other] = tip + 1
        assert not node.behind_peers()
        node.sync.peer_heights[other] = tip + service.GOSSIP_IGNORED_BEHIND_HEIGHTS
        assert node.behind_peers()
    finally:
        await node.stop()


class _FullBacklog:
    def offer(self, batch: tuple[bytes, ...]) -> bool:
        return False


async def test_a_full_gossip_backlog_is_reported_once_per_interval(tmp_path: Path, caplog, monkeypatch) -> None:
    net = LocalNetwork(tmp_path, validators=4, observers=0)
    node = Node(net.configs["validator-0"])
    peer = bytes(load_key(net.configs["validator-1"].node.node_key_file).verify_key)
    await node.start()
    try:
        monkeypatch.setattr(node, "_ingest", _FullBacklog())
        with caplog.at_level(logging.WARNING, logger="secledger.node"):
            for _ in range(50):
                await node._on_peer_message(peer, wire.encode(wire.Txs((JUNK, JUNK))))
        assert node.gossip_ignored["backlog_full"] == 100
        lines = [r.getMessage() for r in caplog.records if "gossip backlog full" in r.getMessage()]
        assert lines == [f"gossip backlog full: dropped 2 transactions since the last report (the latest from "
                         f"{peer.hex()[:12]}); their origins keep them"]
    finally:
        await node.stop()
