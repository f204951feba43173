"""`tx_wait` must not miss a commit that lands while it starts waiting.

Found by the Byzantine fault campaign (seed 1697260700: a set-up `tx_wait` hung for its whole
timeout although every node had committed the transaction at height 7 or 8). Under Python 3.11,
`asyncio.wait_for(node.wait_for_tx(digest), ...)` wraps the coroutine in a task that only runs on
the next loop iteration, so the waiter is registered one iteration after `tx_wait` looked in the
ledger. A block committed in between wakes nobody, and the call times out (-32003) although the
transaction is committed. This test puts the commit exactly there.
"""

from __future__ import annotations

import asyncio

import pytest

from ledger.client import Signer
from node.rpc.api import build_registry
from node.service import Node
from node.setup.keys import load_key
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio


async def test_tx_wait_sees_a_commit_that_lands_while_it_starts_waiting(tmp_path):
    net = LocalNetwork(tmp_path / "net", validators=1, observers=0)
    node = Node(net.configs["validator-0"])  # not started: the test plays the consensus driver
    try:
        admin = Signer(load_key(net.directory / "keys" / "admin.json"), node.chain_id)
        raw = admin.grant_role("claim_issuer", b"\x01" * 32)
        tx = node.mempool.add(raw)
        tx_wait = next(m for m in build_registry(node) if m.name == "tx_wait").handler
        waiting = asyncio.create_task(tx_wait(hash=tx.hash.hex(), timeout_ms=2000))
        await asyncio.sleep(0)  # tx_wait has looked in the ledger and is about to wait
        block = node.ledger.build_block((raw,), time_ms=node.ledger.tip.time_ms + 1000,
                                        proposer=bytes(node.validator_key.verify_key))
        node._on_commit(node.ledger.apply_block(block, b"certificate"), block)
        result = await waiting
        assert result["status"] == "committed" and result["height"] == block.height
    finally:
        node.mempool.close()
        node.ledger.close()
