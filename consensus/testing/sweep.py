"""Sweeping a range of seeds, in one process or split over several.

Each seed is a run of its own (``run_seed``), so splitting the range changes nothing about what a
seed does: seed S gives the same run in any process and any order. Chunks of the range go to the
workers in order; the report is the first failure in seed order among the chunks that finished
(the sweep stops handing out work after a failure).

    passed, failure = sweep(range(10_000, 110_000), jobs=2)
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from consensus.testing.sim import InvariantViolation, run_seed

#: Seeds per task handed to a worker: big enough to keep the pool's overhead out of the figure.
CHUNK_SEEDS = 100


@dataclass(frozen=True, slots=True)
class Failure:
    """An ``InvariantViolation`` in a form that crosses process boundaries."""

    kind: str
    seed: int
    detail: str
    replay: str

    def error(self) -> InvariantViolation:
        return InvariantViolation(self.kind, self.seed, self.detail, self.replay)


def _run_chunk(task: tuple[int, int, int | None, tuple[str, ...] | None, dict[str, object]]
               ) -> tuple[int, Failure | None]:
    start, stop, validators, byzantine, overrides = task
    for seed in range(start, stop):
        try:
            run_seed(seed, validators, byzantine, **overrides)
        except InvariantViolation as exc:
            return seed - start, Failure(exc.kind, exc.seed, exc.detail, exc.replay)
    return stop - start, None


def default_jobs() -> int:
    """``SECLEDGER_SIM_JOBS`` if set, else every core of the machine."""
    return max(1, int(os.environ.get("SECLEDGER_SIM_JOBS") or os.cpu_count() or 1))


def sweep(seeds: range, jobs: int = 1, validators: int | None = None,
          byzantine: tuple[str, ...] | None = None, progress: Callable[[int, float], None] | None = None,
          **overrides: object) -> tuple[int, Failure | None]:
    """Run every seed of ``seeds`` (step 1) over ``jobs`` processes. Returns how many passed
    before the first failure (in seed order) and that failure, or (len(seeds), None).
    ``progress(passed, elapsed_s)`` is called after each chunk, in seed order."""
    tasks = [(start, min(start + CHUNK_SEEDS, seeds.stop), validators, byzantine, overrides)
             for start in range(seeds.start, seeds.stop, CHUNK_SEEDS)]
    began = time.monotonic()
    if jobs <= 1:
        return _collect(map(_run_chunk, tasks), progress, began)
    # "spawn": workers import the simulator afresh rather than inherit a forked test process.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        passed, failure = _collect(pool.imap(_run_chunk, tasks), progress, began)
        pool.terminate()
    return passed, failure


def _collect(results, progress: Callable[[int, float], None] | None, began: float
             ) -> tuple[int, Failure | None]:
    passed = 0
    for count, failure in results:
        passed += count
        if failure is not None:
            return passed, failure
        if progress is not None:
            progress(passed, time.monotonic() - began)
    return passed, None


def print_progress(every: int) -> Callable[[int, float], None]:
    """A ``progress`` callback printing a line to stderr every ``every`` seeds."""
    last = [0]

    def report(passed: int, elapsed: float) -> None:
        if passed - last[0] >= every:
            last[0] = passed
            print(f"{passed} seeds passed, {elapsed:.0f}s, {passed / max(elapsed, 1e-9):.1f} seeds/s",
                  file=sys.stderr, flush=True)

    return report


__all__ = ["CHUNK_SEEDS", "Failure", "default_jobs", "print_progress", "sweep"]
