"""Applying decided blocks, with the store's disk flush off the event loop.

LMDB's commit writes the block's pages and syncs them to disk: tens of milliseconds under load
(a cluster benchmark measured about 50 ms a block), during which an event loop that ran it would
answer no vote, no RPC call and no gossip. Here the write transaction is begun and committed on one
dedicated thread (LMDB's writer lock belongs to the thread that begins the transaction), and the
block's execution, which is Python, runs on the event loop in between. py-lmdb releases the GIL
while it commits, so the loop goes on serving during the flush.

Every block a node applies, decided by consensus or fetched by block sync, goes through its one
`BlockWriter`, one at a time, so two paths never race to apply the same height. An application,
once started, always runs to its end, even if the caller is cancelled: a transaction begun on the
writer thread must be committed or aborted there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from ledger import Block, BlockResult, Ledger, Transaction


class WriterClosed(Exception):
    """The node is stopping: no more blocks are applied."""


class BlockWriter:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[BlockResult | None]] = set()
        self.closed = False

    async def apply(self, block: Block, certificate: bytes, *,
                    known: Mapping[bytes, Transaction] | None = None) -> BlockResult | None:
        """Apply `block` on top of the tip and return its result; None if the tip is already at its
        height (the other path applied it first). Raises what `Ledger.stage_block` raises."""
        if self.closed:
            raise WriterClosed("the node is stopping")
        task = asyncio.get_running_loop().create_task(self._apply(block, certificate, known))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Wait for the application under way, then stop the thread."""
        self.closed = True
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._thread.shutdown(wait=True)

    async def _apply(self, block: Block, certificate: bytes,
                     known: Mapping[bytes, Transaction] | None) -> BlockResult | None:
        async with self._lock:
            if block.height <= self.ledger.tip.height:
                return None
            loop = asyncio.get_running_loop()
            txn = await loop.run_in_executor(self._thread, self.ledger.store.write)
            try:
                result = self.ledger.stage_block(txn, block, certificate, known=known)
            except BaseException:
                await loop.run_in_executor(self._thread, txn.abort)
                raise
            await loop.run_in_executor(self._thread, txn.commit)
            self.ledger.block_committed(block)
            return result
