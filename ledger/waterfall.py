"""The liquidation preference waterfall: how an amount is split across a company's share classes.

Pure arithmetic on integers and exact fractions (no floats), the same on every machine.

1. Preferred classes that do not convert are paid their preference (units x preference per unit)
   by seniority, most senior first; classes of equal seniority share pari passu, pro rata to
   their preference amounts, when the money does not cover them all.
2. What remains is shared pro rata by units among common, converted preferred, and participating
   preferred (on top of their preference). A participating class with a cap stops at
   cap x units in total; the excess is shared among the others.
3. A convertible preferred class converts to common (1:1) when that pays it more, given the
   others' choices; conversions are decided one at a time, cheapest preference per unit first,
   until no class gains by converting (as a rational shareholder would).
4. Class amounts are rounded to integers by the largest-remainder method (ties by class order),
   so the payouts add up exactly to what was distributed; an amount nobody may take (nothing
   left to participate) is returned as `undistributed`.

docs/WATERFALL.md works through venture term-sheet examples with the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class ShareClass:
    """One class of shares (one token). Common stock has no preference and participates."""

    token: str
    units: int
    seniority: int = 0
    preference_per_unit: int = 0  # multiple x original issue price, in payment base units
    participating: bool = True
    cap_per_unit: int | None = None  # total a participating class may receive per unit
    convertible: bool = True  # a preferred class may convert to common 1:1

    @property
    def preferred(self) -> bool:
        return self.preference_per_unit > 0


@dataclass(frozen=True, slots=True)
class Waterfall:
    payouts: dict[str, int]  # token -> amount for the whole class
    converted: tuple[str, ...]  # preferred classes that took the as-converted share
    undistributed: int  # nobody was entitled to it: returned to the funder


def waterfall(amount: int, classes: list[ShareClass]) -> Waterfall:
    if amount < 0:
        raise ValueError("amount must not be negative")
    tokens = [c.token for c in classes]
    if len(set(tokens)) != len(tokens):
        raise ValueError("each class appears once")
    converted: set[str] = set()
    while True:
        shares = _allocate(amount, classes, converted)
        gains = []
        for c in classes:
            if c.preferred and c.convertible and c.token not in converted:
                if _allocate(amount, classes, converted | {c.token})[c.token] > shares[c.token]:
                    gains.append(c)
        if not gains:
            break
        first = min(gains, key=lambda c: (Fraction(c.preference_per_unit), c.token))
        converted.add(first.token)
    payouts = _round(shares, tokens)
    return Waterfall(payouts, tuple(t for t in tokens if t in converted), amount - sum(payouts.values()))


def _allocate(amount: int, classes: list[ShareClass], converted: set[str]) -> dict[str, Fraction]:
    """Exact (fractional) amount per class, for a given set of conversions."""
    out = {c.token: Fraction(0) for c in classes}
    remaining = Fraction(amount)
    preferred = [c for c in classes if c.preferred and c.token not in converted and c.units > 0]
    for seniority in sorted({c.seniority for c in preferred}, reverse=True):
        group = [c for c in preferred if c.seniority == seniority]
        owed = {c.token: Fraction(c.units * c.preference_per_unit) for c in group}
        total = sum(owed.values())
        if total == 0:
            continue
        paid = min(remaining, total)
        for c in group:
            out[c.token] += paid * owed[c.token] / total
        remaining -= paid
    participants = [c for c in classes if c.units > 0 and (
        not c.preferred or c.token in converted or c.participating)]
    # Share the rest by units; classes that reach their cap drop out and the rest is re-shared.
    while remaining > 0 and participants:
        units = sum(c.units for c in participants)
        capped = []
        for c in participants:
            share = remaining * c.units / units
            room = _room(c, out[c.token], converted)
            if room is not None and share >= room:
                capped.append((c, room))
        if not capped:
            for c in participants:
                out[c.token] += remaining * c.units / units
            remaining = Fraction(0)
            break
        for c, room in capped:
            out[c.token] += room
            remaining -= room
            participants.remove(c)
    return out


def _room(c: ShareClass, received: Fraction, converted: set[str]) -> Fraction | None:
    if c.cap_per_unit is None or not c.preferred or c.token in converted:
        return None
    return max(Fraction(0), Fraction(c.cap_per_unit * c.units) - received)


def _round(shares: dict[str, Fraction], order: list[str]) -> dict[str, int]:
    """Largest remainder: floors, then one unit each to the largest fractional parts, so the
    integers add up to the floor of the exact total."""
    floors = {t: int(shares[t]) for t in order}  # shares are non-negative: int() floors
    left = int(sum(shares.values())) - sum(floors.values())
    for t in sorted(order, key=lambda t: (-(shares[t] - floors[t]), order.index(t)))[:left]:
        floors[t] += 1
    return floors


def split_pro_rata(amount: int, weights: list[tuple[str, int]]) -> dict[str, int]:
    """Split `amount` by integer weights, exactly (largest remainder, ties by the given order)."""
    total = sum(w for _, w in weights)
    if total == 0:
        return {k: 0 for k, _ in weights}
    exact = {k: Fraction(amount * w, total) for k, w in weights}
    floors = {k: int(v) for k, v in exact.items()}
    left = amount - sum(floors.values())
    order = [k for k, _ in weights]
    for k in sorted(order, key=lambda k: (-(exact[k] - floors[k]), order.index(k)))[:left]:
        floors[k] += 1
    return floors
