"""The simulator's seed sweep: 300 seeds over n = 4 and n = 7, every invariant on every step; about
half of them change their validator set (add, remove, power, key rotation) while the faults go on.

``SECLEDGER_SIM_SEEDS=5000`` adds a soak of that many more seeds (validator count drawn per seed),
over ``SECLEDGER_SIM_JOBS`` processes (default: every core). A failure prints the one command that
replays its seed.
"""

import os

import pytest

from consensus.core import TendermintCore
from consensus.testing import InvariantViolation, Simulation, run_seed
from consensus.testing.membership import (
    ADD,
    KINDS,
    POWER,
    REMOVE,
    ROTATE,
    Change,
    apply_changes,
    moved_power,
    rule_violation,
)
from consensus.testing.sweep import default_jobs, sweep

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


def test_membership_changes_are_really_exercised() -> None:
    """Guard against worlds that silently stopped changing their set: over 40 seeds every kind of
    change is decided, each takes effect before the run ends (the new set decides), added
    validators and rotated keys sign certificates, and removed validators keep following."""
    kinds: set[str] = set()
    added_signed = rotated_signed = removed_followed = 0
    for seed in range(40):
        sim = Simulation(seed, crash_pct=20, partition_pct=20)
        result = sim.run()
        for height, step in result.membership:
            kinds.update(step)
            assert height + 2 <= result.heights_decided
        for step in sim.schedule:
            for change in step.changes:
                node = sim.nodes[change.node]
                added_signed += change.kind == ADD and change.key in sim.new_signers
                rotated_signed += change.kind == ROTATE and change.new_key in sim.new_signers
                if change.kind == REMOVE and node.role == "honest":
                    removed_followed += node.disk.height >= sim.target_height
    assert kinds == set(KINDS)
    assert added_signed > 0 and rotated_signed > 0 and removed_followed > 0


def test_drawn_schedules_obey_the_ledger_rules() -> None:
    """Every drawn step is one the ledger accepts against the set it changes, and keeps the
    Byzantine under a third of the power."""
    for seed in range(200):
        sim = Simulation(seed, membership_steps=4, joiners=2)
        current = sim.validator_set
        for step in sim.schedule:
            assert rule_violation(current, step.changes) is None
            current = apply_changes(current, step.changes)
            faulty = sum(v.power for v in current if v.public_key in sim.byzantine_keys)
            assert 3 * faulty < current.total_power


def test_the_rules_themselves() -> None:
    """Moved power and the one-third rule, on a genesis set of 4 x 10 (total 40)."""
    validators = Simulation(0, validators=4, membership_steps=0).validator_set
    a, b = (v.public_key for v in list(validators)[:2])
    new = bytes(range(32))
    assert moved_power(validators, [Change(ROTATE, 0, a, 0, new)]) == 0
    assert moved_power(validators, [Change(POWER, 0, a, 3), Change(ADD, 9, new, 5)]) == 7 + 5
    assert rule_violation(validators, [Change(ADD, 9, new, 13)]) is None  # 3 x 13 = 39 < 40
    assert "one third" in rule_violation(validators, [Change(ADD, 9, new, 14)])  # 42 >= 40
    assert "one third" in rule_violation(validators, [Change(REMOVE, 0, a), Change(REMOVE, 1, b)])
    assert rule_violation(validators, [Change(ROTATE, 0, a, 0, new), Change(REMOVE, 1, b)]) is None
    single = Simulation(0, validators=1, byzantine=(), membership_steps=0).validator_set
    key = next(iter(single)).public_key
    assert rule_violation(single, [Change(REMOVE, 0, key)]) == "the change empties the set"


def test_a_sweep_over_two_processes_finds_what_one_finds() -> None:
    world = dict(validators=4, byzantine=("silent",))
    assert sweep(range(0, 6), 1, **world) == sweep(range(0, 6), 2, **world) == (6, None)


@pytest.mark.soak
@pytest.mark.skipif(not os.environ.get("SECLEDGER_SIM_SEEDS"), reason="set SECLEDGER_SIM_SEEDS=N to soak")
def test_soak() -> None:
    count = int(os.environ["SECLEDGER_SIM_SEEDS"])
    passed, failure = sweep(range(10_000, 10_000 + count), default_jobs())
    if failure is not None:
        pytest.fail(str(failure.error()), pytrace=False)
    assert passed == count
