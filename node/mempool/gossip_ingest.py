"""Peers' gossiped transactions, admitted in the background in slices of a few milliseconds.

Gossip arrives in batches from every peer; checking a batch (decode, Ed25519, nonce) must never
hold up the votes that arrive behind it, so admission yields to the event loop between slices.
A slice is measured in time and takes whatever batches are queued, not one batch per turn: under
load each yield waits a whole turn of the loop (an apply, an RPC batch), and one small batch per
turn let gossip queue for 140 ms on average and up to a second, so a third of each proposal was
still unchecked when it arrived, and was checked then, on the critical path.
(Checking signatures on worker threads was tried and measured slower: the GIL hand-offs delay the
event loop.)
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from ..p2p.wire import TX_BATCH_MAX

#: Gossiped batches waiting to be admitted; past this a batch is refused (its origin proposes it).
BATCHES_MAX: int = 256
#: Time spent admitting between two looks at the other inputs (votes, RPC).
SLICE_S: float = 0.005
#: Transactions taken out of the queue ahead of admission: one batch's worth, so the queue's bound
#: still bounds the backlog.
HELD_MAX: int = TX_BATCH_MAX


class GossipIngest:
    def __init__(self, admit: Callable[[bytes], None], after_slice: Callable[[], None], *,
                 batches_max: int = BATCHES_MAX, slice_s: float = SLICE_S, held_max: int = HELD_MAX) -> None:
        self._admit = admit  # admits one transaction or ignores it; never raises for a refusal
        self._after_slice = after_slice
        self._queue: asyncio.Queue[tuple[bytes, ...]] = asyncio.Queue(batches_max)
        self._held: collections.deque[bytes] = collections.deque()
        self._slice_s = slice_s
        self._held_max = held_max

    def offer(self, batch: tuple[bytes, ...]) -> bool:
        """Queue a peer's batch; False when the backlog is full (the batch is dropped)."""
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            return False
        return True

    async def run(self) -> None:
        held = self._held
        while True:
            if not held:  # a proposer's drain may have left part of a batch here
                held.extend(await self._queue.get())
            while held:
                self._admit_until(time.perf_counter() + self._slice_s)
                self._after_slice()
                await asyncio.sleep(0)
                self._take_queued()

    def drain(self, budget_s: float) -> int:
        """Admit what is queued now, for up to `budget_s`, without yielding; returns how many were
        admitted. A proposer calls this before it reaps: gossip that piled up while it applied the
        last block (its loop was busy, so the ingest could not run) goes into its block instead of
        waiting a whole height for the next one."""
        self._take_queued()
        return self._admit_until(time.perf_counter() + budget_s)

    def _admit_until(self, deadline: float) -> int:
        """Admit held and queued transactions, ten between looks at the clock, until none are left
        or `deadline` (perf_counter) passes; returns how many were admitted."""
        held, admitted = self._held, 0
        while held and time.perf_counter() < deadline:
            for _ in range(min(10, len(held))):
                self._admit(held.popleft())
                admitted += 1
            self._take_queued()
        return admitted

    def _take_queued(self) -> None:
        while len(self._held) < self._held_max and not self._queue.empty():
            self._held.extend(self._queue.get_nowait())
