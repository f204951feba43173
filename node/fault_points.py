"""Named fault points: places where a test may kill this process on purpose, to prove a crash
there loses nothing. Off unless the environment variable `SECLEDGER_TEST_FAULT` names one (never
the config file, so an operator cannot switch one on by a typo); off, each costs one comparison.

- `kill_before_send:N`: the driver kills the process with SIGKILL as it is about to hand the Nth
  message this validator signed to its peer links, after the double-sign guard saved it. A
  restart must then sign nothing that conflicts with it (tests/e2e/test_processes.py).
- `kill_after_block_commit:N`: the ledger kills the process right after the Nth block's write
  transaction committed, before the projector wrote anything of it (ledger/projections.py).
- `kill_in_projection:N`: the projector kills the process in its Nth slice, its writes and position
  written but not committed. After either, a restart resumes the projection from its recorded
  position and every query answers as on a node that never crashed
  (tests/e2e/test_projection_crash.py; the ledger's own points: tests/unit/ledger/test_projections.py).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

ENVIRONMENT_VARIABLE = "SECLEDGER_TEST_FAULT"
POINTS = ("kill_before_send", "kill_after_block_commit", "kill_in_projection")
#: The ledger's fault point (`ledger.projections.FAULT_POINTS`) each node point arms.
LEDGER_POINTS = {"kill_after_block_commit": "block_committed", "kill_in_projection": "slice_written"}


class FaultSwitchError(Exception):
    """A test-only environment variable (this one, or `SECLEDGER_TEST_BYZANTINE`) holds a value
    the node does not know: it refuses to start, naming the variable."""


class FaultPoint:
    """One armed point: kill the process the Nth time it is reached."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.remaining = count

    def reached(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def from_environment(name: str) -> FaultPoint | None:
    """The point `name` if the environment arms it, else None."""
    spec = os.environ.get(ENVIRONMENT_VARIABLE)
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise FaultSwitchError(f"{ENVIRONMENT_VARIABLE}={spec!r}: expected one of {', '.join(POINTS)} as NAME:N, N >= 1")
    return FaultPoint(point, int(count)) if point == name else None


def ledger_hook() -> Callable[[str], None] | None:
    """The ledger's fault hook (`Ledger.fault`) if the environment arms one of its points, else None."""
    for name, ledger_point in LEDGER_POINTS.items():
        point = from_environment(name)
        if point is not None:
            return lambda reached, point=point, ledger_point=ledger_point: (
                point.reached() if reached == ledger_point else None)
    return None
