"""The block writer: blocks commit on its thread, one at a time, and the event loop runs meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger import Block, InvalidBlock, queries
from ledger.testing import LedgerHarness
from node.block_writer import BlockWriter, WriterClosed

pytestmark = pytest.mark.asyncio


@pytest.fixture
def harness(tmp_path: Path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    yield h
    h.close()


def next_block(h: LedgerHarness):
    return h.block([h.signer("admin").grant_role("token_issuer", h.address("issuer-2"))])


async def test_a_block_commits_and_moves_the_tip(harness: LedgerHarness) -> None:
    writer = BlockWriter(harness.ledger)
    block = next_block(harness)
    result = await writer.apply(block, b"cert")
    assert result is not None and result.height == block.height
    assert harness.ledger.tip.height == block.height
    assert queries.block(harness.ledger, block.height) == (block.encode(), b"cert")
    # A second application of the same height (block sync racing consensus) changes nothing.
    assert await writer.apply(block, b"cert") is None
    await writer.close()


async def test_two_paths_applying_one_height_at_once_apply_it_once(harness: LedgerHarness) -> None:
    writer = BlockWriter(harness.ledger)
    block = next_block(harness)
    results = await asyncio.gather(writer.apply(block, b"a"), writer.apply(block, b"b"))
    assert sum(r is not None for r in results) == 1
    assert harness.ledger.tip.height == block.height
    await writer.close()


async def test_a_failing_block_leaves_the_store_as_it_was_and_the_writer_usable(harness: LedgerHarness) -> None:
    writer = BlockWriter(harness.ledger)
    good = next_block(harness)
    tip_before = harness.ledger.tip
    wrong = Block.build(chain_id=harness.ledger.chain_id, height=tip_before.height + 1,
                        time_ms=tip_before.time_ms + 1, previous_block_hash=b"\x01" * 32,
                        previous_state_root=tip_before.state_root, proposer=b"\x00" * 32, txs=())
    with pytest.raises(InvalidBlock):
        await writer.apply(wrong, b"cert")
    assert harness.ledger.tip == tip_before
    # The aborted transaction released the writer lock on its thread: the next block goes through.
    assert (await writer.apply(good, b"cert")) is not None
    await writer.close()


class SlowCommit:
    """A write transaction whose commit takes a while, as a disk flush under load does."""

    def __init__(self, txn: Any, seconds: float) -> None:
        self._txn, self._seconds = txn, seconds
        self.committed_on: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)

    def commit(self) -> None:
        time.sleep(self._seconds)
        self.committed_on = threading.current_thread().name
        self._txn.commit()


async def test_the_event_loop_runs_while_the_block_commits(harness: LedgerHarness) -> None:
    store = harness.ledger.store
    made: list[SlowCommit] = []
    original = store.write

    def slow_write() -> SlowCommit:
        made.append(SlowCommit(original(), 0.3))
        return made[-1]

    store.write = slow_write  # type: ignore[method-assign]
    writer = BlockWriter(harness.ledger)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    await writer.apply(next_block(harness), b"cert")
    ticking.cancel()
    assert ticks >= 10  # about 30 turns of the loop during a 0.3 s commit; none if it blocked
    assert made[0].committed_on is not None and made[0].committed_on != threading.current_thread().name
    await writer.close()


async def test_a_cancelled_caller_does_not_cut_the_commit_short(harness: LedgerHarness) -> None:
    store = harness.ledger.store
    original = store.write
    store.write = lambda: SlowCommit(original(), 0.2)  # type: ignore[method-assign]
    writer = BlockWriter(harness.ledger)
    block = next_block(harness)
    caller = asyncio.create_task(writer.apply(block, b"cert"))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await writer.close()  # waits for the application under way
    assert harness.ledger.tip.height == block.height
    with pytest.raises(WriterClosed):
        await writer.apply(next_block(harness), b"cert")
