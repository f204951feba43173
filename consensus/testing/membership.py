"""Validator set changes in the simulated worlds: what a change is, the rules a ledger enforces on
it, and the seeded schedule of changes a run decides on chain.

A change decided in the block of height H takes effect at H+2 (CometBFT's rule): the set of
height H+2 is the set of H+1 with the changes of block H applied. The rules (those the ledger
refuses with a reason code):

- a change never empties the set;
- the power it moves is less than one third of the total of the set it changes: moved is the sum
  over validators of |new power - old power|, adds and removes counting fully, a key rotation
  moving nothing (same validator, same power, new key).

One block carries at most one step of the schedule (a ``GovernanceStep`` is one governance
proposal: one or two actions), so each step is judged against exactly the set it changes.

On top of those rules the simulator keeps its own model assumption: in every set the Byzantine
validators hold less than one third of the power (Tendermint's assumption, per height).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consensus.validators import Validator, ValidatorSet

ADD = "add"
REMOVE = "remove"
POWER = "power"
ROTATE = "rotate"
KINDS: tuple[str, ...] = (ADD, REMOVE, POWER, ROTATE)
#: Genesis power of each validator in the simulated worlds (room for power changes under 1/3).
GENESIS_POWER = 10
#: A power change or an added validator draws its power from 1 to this.
POWER_DRAW_MAX = 30


@dataclass(frozen=True, slots=True)
class Change:
    """One action on the set. ``node`` is the simulated node it concerns (for the checkers only;
    the set itself knows keys). ``power`` is the new power (add, power), ``new_key`` the rotated
    key (rotate)."""

    kind: str
    node: int
    key: bytes
    power: int = 0
    new_key: bytes = b""


@dataclass(frozen=True, slots=True)
class GovernanceStep:
    """One governance proposal: its actions, and from when (simulated ms) a proposer may include it
    in a block (the proposal reached its threshold and sits in the mempool)."""

    due_ms: int
    changes: tuple[Change, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(c.kind for c in self.changes)


def apply_changes(validators: ValidatorSet, changes: Sequence[Change]) -> ValidatorSet:
    """The set with ``changes`` applied; raises ValueError if one does not apply."""
    powers = {v.public_key: v.power for v in validators}
    for c in changes:
        if c.kind == ADD:
            if c.key in powers:
                raise ValueError("add: already a validator")
            powers[c.key] = c.power
        elif c.kind == REMOVE:
            if powers.pop(c.key, None) is None:
                raise ValueError("remove: not a validator")
        elif c.kind == POWER:
            if c.key not in powers or powers[c.key] == c.power:
                raise ValueError("power: not a validator, or the same power")
            powers[c.key] = c.power
        elif c.kind == ROTATE:
            if c.key not in powers or c.new_key in powers:
                raise ValueError("rotate: old key not a validator, or new key already one")
            powers[c.new_key] = powers.pop(c.key)
        else:
            raise ValueError(f"unknown change {c.kind!r}")
    if not powers:
        raise ValueError("the change empties the set")
    return ValidatorSet(Validator(k, p) for k, p in powers.items())


def moved_power(validators: ValidatorSet, changes: Sequence[Change]) -> int:
    """Power moved by ``changes``: sum over validators of |new - old|; rotation moves nothing."""
    after = dict((v.public_key, v.power) for v in validators)
    renamed: dict[bytes, bytes] = {}
    for c in changes:
        if c.kind == ADD:
            after[c.key] = c.power
        elif c.kind == REMOVE:
            after.pop(c.key, None)
        elif c.kind == POWER:
            after[c.key] = c.power
        elif c.kind == ROTATE and c.key in after:
            after[c.new_key] = after.pop(c.key)
            renamed[c.new_key] = c.key
    before = {v.public_key: v.power for v in validators}
    moved = 0
    for key in before.keys() | after.keys():
        if key in renamed.values():
            continue  # the old name of a rotated validator: counted under its new key
        moved += abs(after.get(key, 0) - before.get(renamed.get(key, key), 0))
    return moved


def rule_violation(validators: ValidatorSet, changes: Sequence[Change]) -> str | None:
    """Why the ledger would refuse ``changes`` on ``validators`` (None: it would not)."""
    try:
        apply_changes(validators, changes)
    except ValueError as exc:
        return str(exc)
    moved = moved_power(validators, changes)
    if 3 * moved >= validators.total_power:
        return f"moves {moved} of {validators.total_power} power: one third or more"
    return None


def byzantine_share_ok(validators: ValidatorSet, byzantine_keys: set[bytes] | frozenset[bytes]) -> bool:
    """The model's assumption for one set: the Byzantine hold less than one third of the power."""
    faulty = sum(v.power for v in validators if v.public_key in byzantine_keys)
    return 3 * faulty < validators.total_power


def draw_schedule(rng: random.Random, genesis: ValidatorSet, owner: dict[bytes, int],
                  byzantine_nodes: frozenset[int], joiners: Sequence[tuple[int, bytes]],
                  new_key: Callable[[int], bytes], steps: int, due_until_ms: int) -> list[GovernanceStep]:
    """Draw up to ``steps`` valid steps from ``genesis``: each obeys the rules against the set
    left by the steps before it and keeps the Byzantine share under one third. ``owner`` maps a
    key to its node (extended here with rotated keys); ``joiners`` are the nodes that may be
    added, with their keys; ``new_key(node)`` makes a fresh key for a rotation. A step for which
    no valid draw is found in a few tries is left out."""
    current = genesis
    waiting = list(joiners)
    byzantine_keys = {k for k, n in owner.items() if n in byzantine_nodes}
    drawn: list[tuple[Change, ...]] = []
    for _ in range(steps):
        for _attempt in range(8):
            changes = _draw_changes(rng, current, owner, waiting, 2 if rng.random() < 0.25 else 1, new_key)
            if changes is None or rule_violation(current, changes) is not None:
                continue
            rotated = {c.new_key for c in changes if c.kind == ROTATE and owner[c.key] in byzantine_nodes}
            after = apply_changes(current, changes)
            if not byzantine_share_ok(after, byzantine_keys | rotated):
                continue
            byzantine_keys |= rotated
            for c in changes:
                if c.kind == ADD:
                    waiting = [(n, k) for n, k in waiting if n != c.node]
                elif c.kind == ROTATE:
                    owner[c.new_key] = c.node
            current = after
            drawn.append(changes)
            break
    dues = sorted(rng.randint(0, due_until_ms) for _ in drawn)
    return [GovernanceStep(due, changes) for due, changes in zip(dues, drawn, strict=True)]


def _draw_changes(rng: random.Random, current: ValidatorSet, owner: dict[bytes, int],
                  waiting: list[tuple[int, bytes]], size: int,
                  new_key: Callable[[int], bytes]) -> tuple[Change, ...] | None:
    changes: list[Change] = []
    touched: set[int] = set()
    for _ in range(size):
        addable = [(n, k) for n, k in waiting if n not in touched]
        kind = rng.choice(KINDS if addable else KINDS[1:])
        if kind == ADD:
            node, key = rng.choice(addable)
            changes.append(Change(ADD, node, key, rng.randint(1, POWER_DRAW_MAX)))
        else:
            candidates = [v for v in current if owner[v.public_key] not in touched]
            if not candidates:
                return None
            v = rng.choice(candidates)
            node = owner[v.public_key]
            if kind == REMOVE:
                changes.append(Change(REMOVE, node, v.public_key))
            elif kind == POWER:
                power = rng.randint(1, POWER_DRAW_MAX)
                if power == v.power:
                    return None
                changes.append(Change(POWER, node, v.public_key, power))
            else:
                changes.append(Change(ROTATE, node, v.public_key, 0, new_key(node)))
        touched.add(changes[-1].node)
    return tuple(changes)


__all__ = ["ADD", "GENESIS_POWER", "KINDS", "POWER", "REMOVE", "ROTATE", "Change", "GovernanceStep",
           "apply_changes", "byzantine_share_ok", "draw_schedule", "moved_power", "rule_violation"]
