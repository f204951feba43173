"""Round timeouts: how long each step waits, growing linearly with the round up to a cap.

Defaults follow CometBFT's config (timeout_propose 3 s + 500 ms per round, prevote and precommit
1 s + 500 ms per round). CometBFT has no cap; we add one (60 s by default) so that after a long
outage a validator never waits hours for a round that the others, back again, would finish in
seconds (the failure seen in Besu's QBFT, whose round timer doubles without bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consensus.errors import UsageError


class Step(IntEnum):
    """The steps of one round. COMMIT means this height is decided and the core waits for
    ``start_height``; it never has a timeout."""

    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMIT = 4


#: Upper bound on any configured duration: one day is far beyond any sane round.
DURATION_MS_MAX: int = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Base durations and per-round increments of the three step timeouts, in milliseconds."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    #: No step timeout ever exceeds this, whatever the round.
    cap_ms: int = 60_000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= DURATION_MS_MAX:
                raise UsageError(f"TimeoutConfig.{name} must be an int in [0, {DURATION_MS_MAX}]")
        if self.cap_ms == 0:
            raise UsageError("TimeoutConfig.cap_ms must be positive")

    def duration_ms(self, step: Step, round_: int) -> int:
        """The timeout of ``step`` in round ``round_``: base + delta * round, at most ``cap_ms``."""
        if step == Step.PROPOSE:
            base, delta = self.propose_ms, self.propose_delta_ms
        elif step == Step.PREVOTE:
            base, delta = self.prevote_ms, self.prevote_delta_ms
        elif step == Step.PRECOMMIT:
            base, delta = self.precommit_ms, self.precommit_delta_ms
        else:
            raise UsageError(f"no timeout for step {step!r}")
        return min(base + delta * round_, self.cap_ms)

    def round_ms(self, round_: int) -> int:
        """Upper bound of one whole round spent waiting on all three timeouts."""
        return sum(self.duration_ms(s, round_) for s in (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT))
