"""Break the protocol on purpose and show that the simulator catches each break.

Every test plants one bug by subclassing the core (or the signer), sweeps seeds until a checker
fires, and asserts it was the expected invariant, within a stated number of seeds. The runs are
deterministic, so "within N seeds" is a fixed fact, re-checked on every `make test`.
"""

import pytest

from consensus.core import TendermintCore
from consensus.signing import Signer, SignState
from consensus.testing import InvariantViolation, Simulation
from consensus.testing.membership import ADD, REMOVE
from consensus.validators import ValidatorSet

#: Where lock bugs show: an amnesiac validator (it ignores locks and precommits to one node only),
#: some clogged messages, and gossip slow enough (4 s) that a node that missed a decision starts
#: the next round before block sync tells it about the decision.
LOCK_ATTACK = dict(validators=4, byzantine=("amnesiac",), slow_pct=10, gossip_ms=4000, fault_ms=6000,
                   crash_pct=0, partition_pct=0, loss_pct=5)


def first_violation(seeds: int, **kwargs: object) -> InvariantViolation:
    for seed in range(seeds):
        try:
            Simulation(seed, **kwargs).run()  # type: ignore[arg-type]
        except InvariantViolation as exc:
            return exc
    pytest.fail(f"planted bug not caught within {seeds} seeds")


class HalfQuorum(TendermintCore):
    """Counts a quorum as more than half of the power instead of more than two thirds."""

    def _has_quorum(self, power: int) -> bool:
        return 2 * power > self.validators.total_power


class SkipLockCheck(TendermintCore):
    """Prevotes any valid proposal, whatever it is locked on (lines 23 and 29 dropped)."""

    def _lock_allows(self, block_id: bytes, pol_round: int) -> bool:
        return True


class SkipLocking(TendermintCore):
    """Precommits a block without locking on it or recording it as the valid value (line 36-43)."""

    def _try_precommit_block(self, out: list) -> bool:
        fired = super()._try_precommit_block(out)
        self.locked_value, self.locked_round, self.valid_value, self.valid_round = None, -1, None, -1
        return fired


class AcceptEveryBlock(TendermintCore):
    """Treats every proposed block as valid, whatever the node answered."""

    def block_validity(self, height: int, block_id: bytes, valid: bool) -> list:
        return super().block_validity(height, block_id, True)


class ForgetfulSigner(Signer):
    """Loses its persisted record on restart and has no guard: signs whatever it is asked."""

    def __init__(self, signing_key, chain_id: str, state: SignState | None = None) -> None:
        super().__init__(signing_key, chain_id, None)

    def check(self, height: int, round_: int, step, data: bytes) -> bytes | None:
        return None


class NoPrecommitTimeout(TendermintCore):
    """Never schedules the precommit timeout (lines 47-48), so a failed round never ends."""

    def _try_precommit_timeout(self, out: list) -> bool:
        return False


class IgnoresSetChanges(TendermintCore):
    """Keeps the validator set it was built with: ignores the set the node hands it for each new
    height, as a node that does not follow governance would. (A restart, or a key rotation, builds
    a new core, which then keeps the set of that height.)"""

    def start_height(self, height: int, validators: ValidatorSet) -> list:
        return super().start_height(height, self.validators)


def test_quorum_counted_as_half_is_caught() -> None:
    exc = first_violation(20, validators=7, byzantine=("equivocator", "double-voter"), core_class=HalfQuorum)
    assert exc.kind in ("certificate", "agreement")


def test_skipping_the_lock_is_caught() -> None:
    exc = first_violation(100, **LOCK_ATTACK, core_class=SkipLocking)
    assert exc.kind == "agreement"


def test_ignoring_the_lock_is_caught() -> None:
    exc = first_violation(300, **LOCK_ATTACK, core_class=SkipLockCheck)
    assert exc.kind == "agreement"


def test_accepting_invalid_blocks_is_caught() -> None:
    exc = first_violation(20, validators=4, byzantine=("garbage",), core_class=AcceptEveryBlock)
    assert exc.kind == "validity"


def test_losing_the_double_sign_record_is_caught() -> None:
    exc = first_violation(30, validators=4, byzantine=(), signer_class=ForgetfulSigner)
    assert exc.kind == "double-sign"


def test_missing_precommit_timeout_is_caught_as_liveness() -> None:
    exc = first_violation(20, validators=4, byzantine=(), core_class=NoPrecommitTimeout)
    assert exc.kind == "liveness"


def test_ignoring_validator_set_changes_is_caught() -> None:
    """The default worlds (half of them change their set) catch it within 5 seeds (at seed 1: a
    removed validator's core keeps voting)."""
    exc = first_violation(5, core_class=IgnoresSetChanges)
    assert exc.kind == "membership"


def test_ignoring_validator_set_changes_is_caught_wherever_a_member_comes_or_goes() -> None:
    """Not a lucky seed: over 20 default worlds, every run the bug survives decided no add and no
    remove (only power changes or rotations small enough to leave every quorum as it was)."""
    caught = 0
    for seed in range(20):
        try:
            result = Simulation(seed, core_class=IgnoresSetChanges).run()
        except InvariantViolation as exc:
            assert exc.kind in ("membership", "certificate", "evidence", "liveness"), str(exc)
            caught += 1
            continue
        kinds = {kind for _, step in result.membership for kind in step}
        assert not kinds & {ADD, REMOVE}, f"seed {seed} added or removed a member and the bug survived"
    assert caught >= 8


@pytest.mark.parametrize(
    ("seeds", "settings"),
    [
        (20, dict(validators=7, byzantine=("equivocator", "double-voter"))),
        (100, LOCK_ATTACK),
        (20, dict(validators=4, byzantine=("garbage",))),
        (30, dict(validators=4, byzantine=())),
        (20, dict()),
    ],
)
def test_control_the_same_seeds_pass_without_the_bug(seeds: int, settings: dict) -> None:
    for seed in range(seeds):
        try:
            Simulation(seed, **settings).run()
        except InvariantViolation as exc:
            pytest.fail(str(exc), pytrace=False)
