"""The simulator's seed sweep: 300 seeds over n = 4 and n = 7, every invariant on every step.

``SECLEDGER_SIM_SEEDS=5000`` adds a soak of that many more seeds (validator count drawn per seed).
A failure prints the one command that replays its seed.
"""

import os

import pytest

from consensus.core import TendermintCore
from consensus.testing import InvariantViolation, Simulation, run_seed

SEEDS_PER_SIZE = 150
CHUNK = 25


@pytest.mark.parametrize("validators", [4, 7])
@pytest.mark.parametrize("start", range(0, SEEDS_PER_SIZE, CHUNK))
def test_seed_sweep(validators: int, start: int) -> None:
    for seed in range(start, start + CHUNK):
        try:
            result = run_seed(seed, validators)
        except InvariantViolation as exc:
            pytest.fail(str(exc), pytrace=False)
        assert result.heights_decided >= 1


def test_same_seed_same_run() -> None:
    for seed in (3, 11):
        a, b = run_seed(seed), run_seed(seed)
        assert a == b


def test_replay_command_reproduces_a_drawn_run() -> None:
    for seed in (5, 8, 13):
        drawn = Simulation(seed)
        result = drawn.run()
        cfg = drawn.config
        assert f"--validators {cfg.validators}" in drawn.replay_command
        assert run_seed(seed, cfg.validators, cfg.byzantine) == result


def test_faults_are_really_exercised() -> None:
    """Guard against a simulator that silently stopped injecting faults."""
    evidence = rounds = crashes_seen = 0
    for seed in range(40):
        sim = Simulation(seed, 4, ("double-voter",), crash_pct=30, loss_pct=10)
        result = sim.run()
        evidence += result.evidence
        rounds = max(rounds, result.max_round)
        crashes_seen += any(node.epoch > 0 for node in sim.nodes)
    assert evidence > 0 and rounds >= 2 and crashes_seen > 0


def test_failure_names_the_replay_command() -> None:
    class NeverPrecommitTimeout(TendermintCore):
        def _try_precommit_timeout(self, out: list) -> bool:
            return False

    with pytest.raises(InvariantViolation) as caught:
        for seed in range(50):
            Simulation(seed, 4, core_class=NeverPrecommitTimeout).run()
    assert "replay: .venv/bin/python -m consensus.testing --seed" in str(caught.value)


@pytest.mark.soak
@pytest.mark.skipif(not os.environ.get("SECLEDGER_SIM_SEEDS"), reason="set SECLEDGER_SIM_SEEDS=N to soak")
def test_soak() -> None:
    count = int(os.environ["SECLEDGER_SIM_SEEDS"])
    for seed in range(10_000, 10_000 + count):
        try:
            run_seed(seed)
        except InvariantViolation as exc:
            pytest.fail(str(exc), pytrace=False)
