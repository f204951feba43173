"""Gossip admission: queued batches share a slice, slices yield to the loop, the backlog is bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from node.mempool.gossip_ingest import GossipIngest


async def _run_until(ingest: GossipIngest, done) -> None:
    task = asyncio.create_task(ingest.run())
    try:
        for _ in range(2000):
            if done():
                return
            await asyncio.sleep(0.001)
        pytest.fail("the ingest did not finish")
    finally:
        task.cancel()


@pytest.mark.asyncio
async def test_batches_queued_meanwhile_are_admitted_in_one_slice():
    admitted, slices = [], []
    ingest = GossipIngest(admitted.append, lambda: slices.append(len(admitted)), slice_s=1.0)
    batches = [(f"a{i}".encode(), f"b{i}".encode()) for i in range(30)]
    for batch in batches:
        assert ingest.offer(batch)
    await _run_until(ingest, lambda: len(admitted) == 60)
    assert admitted == [raw for batch in batches for raw in batch]  # in arrival order
    assert slices[0] == 60  # one slice, not one turn of the loop per batch


@pytest.mark.asyncio
async def test_a_slice_yields_to_the_loop_when_its_time_is_up():
    turns = []  # what else the loop ran, and when (how many were admitted by then)
    admitted: list[bytes] = []

    def slow_admit(raw: bytes) -> None:
        time.sleep(0.001)  # a signature check under load
        admitted.append(raw)

    ingest = GossipIngest(slow_admit, lambda: None, slice_s=0.005)

    async def other_work() -> None:
        while len(admitted) < 100:
            turns.append(len(admitted))
            await asyncio.sleep(0)

    ingest.offer(tuple(str(i).encode() for i in range(100)))
    other = asyncio.create_task(other_work())
    await _run_until(ingest, lambda: len(admitted) == 100)
    await other
    between = [n for n in turns if 0 < n < 100]
    assert len(set(between)) >= 5  # the loop ran other work between slices of about 5-10 transactions


@pytest.mark.asyncio
async def test_the_backlog_is_bounded_and_refuses_when_full():
    ingest = GossipIngest(lambda raw: None, lambda: None, batches_max=3, held_max=4)
    assert all(ingest.offer((b"x",)) for _ in range(3))
    assert not ingest.offer((b"y",))  # dropped: its origin still proposes it
    held = []
    ingest = GossipIngest(lambda raw: held.append(len(ingest._held)), lambda: None, batches_max=50, held_max=4)
    for _ in range(50):
        ingest.offer((b"a", b"b", b"c"))
    await _run_until(ingest, lambda: len(held) == 150)
    assert max(held) < 4 + 3  # at most held_max plus one batch taken out of the bounded queue


def test_drain_admits_everything_queued_at_once_in_arrival_order():
    admitted = []
    ingest = GossipIngest(admitted.append, lambda: None)
    batches = [(f"a{i}".encode(), f"b{i}".encode()) for i in range(40)]
    for batch in batches:
        assert ingest.offer(batch)
    assert ingest.drain(1.0) == 80  # no loop turn needed: a proposer calls it just before it reaps
    assert admitted == [raw for batch in batches for raw in batch]
    assert ingest.drain(1.0) == 0


@pytest.mark.asyncio
async def test_drain_stops_at_its_budget_and_the_background_admits_the_rest():
    admitted: list[bytes] = []

    def slow_admit(raw: bytes) -> None:
        time.sleep(0.001)
        admitted.append(raw)

    ingest = GossipIngest(slow_admit, lambda: None)
    ingest.offer(tuple(str(i).encode() for i in range(200)))
    drained = ingest.drain(0.01)
    assert 1 <= drained < 100  # a big backlog must not hold up the proposal for long
    await _run_until(ingest, lambda: len(admitted) == 200)
    assert admitted == [str(i).encode() for i in range(200)]  # nothing lost, nothing twice
