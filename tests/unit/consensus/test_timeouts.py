"""Timeouts grow linearly with the round and stop at the cap."""

import pytest

from consensus.errors import UsageError
from consensus.timeouts import Step, TimeoutConfig


def test_defaults_follow_cometbft() -> None:
    t = TimeoutConfig()
    assert t.duration_ms(Step.PROPOSE, 0) == 3000
    assert t.duration_ms(Step.PROPOSE, 1) == 3500
    assert t.duration_ms(Step.PREVOTE, 2) == 2000
    assert t.duration_ms(Step.PRECOMMIT, 4) == 3000


def test_linear_growth_up_to_the_cap() -> None:
    t = TimeoutConfig(propose_ms=100, propose_delta_ms=10, cap_ms=150)
    assert [t.duration_ms(Step.PROPOSE, r) for r in range(8)] == [100, 110, 120, 130, 140, 150, 150, 150]
    # After a very long outage a round still costs at most three caps.
    assert t.round_ms(10**9) <= 3 * 150


def test_bad_configs_are_refused() -> None:
    with pytest.raises(UsageError):
        TimeoutConfig(propose_ms=-1)
    with pytest.raises(UsageError):
        TimeoutConfig(cap_ms=0)
    with pytest.raises(UsageError):
        TimeoutConfig(prevote_ms=1.5)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        TimeoutConfig().duration_ms(Step.COMMIT, 0)
