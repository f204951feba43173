"""The validator set: who votes, with how much power, and who proposes in each round.

The set is immutable and ordered by public key, so every node derives the same order from the same
members. Proposer selection is a weighted round-robin computed from (height, round) and the set
alone: there is no mutable priority state (as CometBFT keeps) that a restarted node could lose or
that two nodes could disagree on after different histories.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import reduce
from math import gcd

from consensus.errors import UsageError

#: Ed25519 public keys are 32 bytes.
PUBLIC_KEY_BYTES: int = 32
#: One validator's power is at most this (CometBFT bounds total power by MaxInt64 / 8).
POWER_MAX: int = 2**50
#: A set holds at most this many validators.
VALIDATORS_MAX: int = 1000
#: The round-robin schedule has at most this many slots; larger powers are scaled down to fit.
SCHEDULE_SLOTS_MAX: int = 4096


@dataclass(frozen=True, slots=True)
class Validator:
    """One member of the set: an Ed25519 public key and its voting power (> 0)."""

    public_key: bytes
    power: int

    def __post_init__(self) -> None:
        if type(self.public_key) is not bytes or len(self.public_key) != PUBLIC_KEY_BYTES:
            raise UsageError("Validator.public_key must be 32 bytes")
        if type(self.power) is not int or not 1 <= self.power <= POWER_MAX:
            raise UsageError(f"Validator.power must be an int in [1, {POWER_MAX}]")


class ValidatorSet:
    """An immutable, key-ordered set of validators with quorum arithmetic and proposer selection."""

    __slots__ = ("_validators", "_power", "_index", "total_power", "_schedule")

    def __init__(self, validators: Iterable[Validator]) -> None:
        members = sorted(validators, key=lambda v: v.public_key)
        if not members:
            raise UsageError("a validator set needs at least one validator")
        if len(members) > VALIDATORS_MAX:
            raise UsageError(f"at most {VALIDATORS_MAX} validators")
        for v in members:
            if not isinstance(v, Validator):
                raise UsageError("ValidatorSet takes Validator objects")
        self._validators: tuple[Validator, ...] = tuple(members)
        self._power: dict[bytes, int] = {v.public_key: v.power for v in members}
        if len(self._power) != len(members):
            raise UsageError("duplicate validator public key")
        self._index: dict[bytes, int] = {v.public_key: i for i, v in enumerate(members)}
        self.total_power: int = sum(v.power for v in members)
        self._schedule: tuple[int, ...] | None = None

    # --- quorum arithmetic -------------------------------------------------------------------

    @property
    def quorum_power(self) -> int:
        """The least power that is more than two thirds of the total."""
        return self.total_power * 2 // 3 + 1

    @property
    def one_third_power(self) -> int:
        """The least power that is more than one third of the total (the paper's f+1)."""
        return self.total_power // 3 + 1

    def has_quorum(self, power: int) -> bool:
        """True when ``power`` is more than two thirds of the total."""
        return 3 * power > 2 * self.total_power

    def has_one_third(self, power: int) -> bool:
        """True when ``power`` is more than one third of the total."""
        return 3 * power > self.total_power

    # --- membership -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._validators)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self._validators)

    def __contains__(self, public_key: object) -> bool:
        return public_key in self._power

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and self._validators == other._validators

    def __hash__(self) -> int:
        return hash(self._validators)

    def __repr__(self) -> str:
        return f"ValidatorSet({len(self)} validators, total_power={self.total_power})"

    @property
    def validators(self) -> tuple[Validator, ...]:
        return self._validators

    def power_of(self, public_key: bytes) -> int:
        """The power of ``public_key``, 0 if it is not a member."""
        return self._power.get(public_key, 0)

    def index_of(self, public_key: bytes) -> int:
        """Position of ``public_key`` in key order; raises KeyError if it is not a member."""
        return self._index[public_key]

    # --- proposer selection ---------------------------------------------------------------------

    def proposer(self, height: int, round_: int) -> bytes:
        """The public key of the proposer of (height, round).

        Slot ``(height + round) mod L`` of a smooth weighted round-robin schedule of length L
        (the powers divided by their gcd, summed): each validator holds slots in proportion to its
        power, spread out rather than bunched, so consecutive rounds of one height try different
        proposers. Moving one round or one height moves one slot, as CometBFT's priorities do.
        """
        schedule = self._schedule
        if schedule is None:
            schedule = self._schedule = self._build_schedule()
        return self._validators[schedule[(height + round_) % len(schedule)]].public_key

    def _build_schedule(self) -> tuple[int, ...]:
        powers = [v.power for v in self._validators]
        divisor = reduce(gcd, powers)
        weights = [p // divisor for p in powers]
        slots = sum(weights)
        if slots > SCHEDULE_SLOTS_MAX:
            # Proportional scaling keeps every member in the schedule (at least one slot each).
            weights = [max(1, w * SCHEDULE_SLOTS_MAX // slots) for w in weights]
            slots = sum(weights)
        current = [0] * len(weights)
        schedule = []
        for _ in range(slots):
            best = 0
            for i, w in enumerate(weights):
                current[i] += w
                if current[i] > current[best]:
                    best = i
            current[best] -= slots
            schedule.append(best)
        return tuple(schedule)
