"""Settlement instructions: delivery versus payment, every leg or none (docs/SETTLEMENT.md).

An instruction is 1 to 16 legs `[token, from wallet, to wallet, amount]`, a settlement type, an
expiry, and optionally a venue. Everything that changes an instruction lives here. The rules, in
the order they bite:

- **Creation**: by a party (the signing wallet, registered to an identity, or another wallet of
  that identity sends or receives in some leg), or by a venue operator (`venue_operator` chain
  role) that names itself as the instruction's venue. Its id comes from a chain counter (1, 2,
  ...): every node gives the same instruction the same id.
- **Affirmation**: every sending wallet affirms, once, for all of its legs; receivers do not (each
  leg re-checks its receiver when it settles, and a receiver that does not want the trade rejects
  it). Affirming reserves each of the wallet's legs (`holdings.reserve`), after the leg passes
  `check_transfer` as it would now, so the units cannot leave by the holder's own transfers until
  the instruction settles. Withdrawing the affirmation, or the instruction's rejection, expiry or
  final failure, releases exactly what the affirmation reserved.
- **Settlement** is atomic: in one savepoint of the state, each leg in order is released from its
  reservation, passes exactly `check_transfer` on the state the earlier legs left, and moves. The
  first leg that fails undoes every leg; the instruction records that leg's index, code and reason
  (`last_failure`). `on_affirmation` settles in the transaction of its last affirmation;
  `at_height` at the first affirmation or `settlement.execute` at or after its height once every
  sender has affirmed; `manual` when its venue (without a venue: a party) executes it. A failed
  `at_height` instruction is final (`failed`, reservations released); the others stay pending,
  retryable by `settlement.execute` or by withdrawing and affirming again.
- **Statuses**: pending -> settled | failed | rejected | expired. Only a pending instruction
  changes; a settled one never settles again.
- **Expiry** is a unix time compared with the block's time: from `expires_at` on, an instruction
  can no longer be affirmed or settled, and anyone may end it with `settlement.expire`, which
  releases its reservations.
- A wallet a recovery declared lost signs nothing here (`0x56 sender_wallet_lost`).

Nothing here reads a clock, draws a random number, or depends on the order of a dict or a set in
anything stored, hashed or emitted: wallets are kept and scanned as sorted tuples.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .. import layout
from ..compliance import check_transfer
from ..context import Context
from ..holdings import (
    credit,
    debit,
    identity_of,
    move_between_own_wallets,
    refuse_lost_wallets,
    release,
    reserve,
)
from ..permissions import require_role, require_token
from ..reasons import FAILURE, INVALID_OPERATOR, SUCCESS, Outcome, Refusal, refuse
from ..state import State

PENDING, SETTLED, FAILED, REJECTED, EXPIRED = "pending", "settled", "failed", "rejected", "expired"
#: Every status an instruction may have; all but `pending` are final.
STATUSES: tuple[str, ...] = (PENDING, SETTLED, FAILED, REJECTED, EXPIRED)
ON_AFFIRMATION, AT_HEIGHT, MANUAL = "on_affirmation", "at_height", "manual"

#: (token, from wallet, to wallet, amount)
Leg = tuple[str, bytes, bytes, int]


@dataclass(frozen=True, slots=True)
class LegFailure:
    """The first leg that would not settle, and the transfer's own outcome for it."""

    leg: int
    outcome: Outcome


# --- who is who in an instruction ------------------------------------------------------------------


def senders(record: dict[str, Any]) -> tuple[bytes, ...]:
    """The wallets that must affirm: every leg's sender, ascending."""
    return tuple(sorted({leg[1] for leg in record["legs"]}))


def parties(legs: Iterable[Leg]) -> tuple[bytes, ...]:
    """Every wallet that sends or receives in a leg, ascending."""
    return tuple(sorted({wallet for leg in legs for wallet in (leg[1], leg[2])}))


def concerned(record: dict[str, Any]) -> tuple[bytes, ...]:
    """The parties, the creator and the venue, ascending: the addresses of the instruction's events
    and of its query index."""
    wallets = set(parties(record["legs"])) | {record["creator"]}
    if record["venue"] is not None:
        wallets.add(record["venue"])
    return tuple(sorted(wallets))


def missing_affirmations(record: dict[str, Any]) -> tuple[bytes, ...]:
    affirmed = record["affirmed"]
    return tuple(wallet for wallet in senders(record) if wallet not in affirmed)


def is_party(state: State, signer: bytes, legs: Iterable[Leg]) -> bool:
    """The signer is a registered wallet that sends or receives in a leg, or another wallet of an
    identity that does. (An unregistered key is nobody's: an instruction it names can never settle.)"""
    identity_id = identity_of(state, signer)
    if identity_id is None:
        return False
    return any(wallet == signer or identity_of(state, wallet) == identity_id for wallet in parties(legs))


def _is_venue(ctx: Context, record: dict[str, Any]) -> bool:
    """The signer is the instruction's venue and still holds `venue_operator`."""
    return record["venue"] == ctx.signer and ctx.state.get(layout.role("venue_operator", ctx.signer)) is not None


# --- checks shared by the handlers and the dry run ---------------------------------------------------


def _load(ctx: Context, instruction_id: int) -> dict[str, Any]:
    refuse_lost_wallets(ctx.state, ctx.signer, None)
    record = ctx.state.get(layout.settle_instruction(instruction_id))
    if record is None:
        raise refuse(FAILURE, "unknown_instruction")
    if record["status"] != PENDING:
        raise refuse(FAILURE, f"instruction_{record['status']}")
    return record


def _require_unexpired(ctx: Context, record: dict[str, Any]) -> None:
    if ctx.time_s >= record["expires_at"]:
        raise refuse(FAILURE, "instruction_expired")


def settle_blocker(record: dict[str, Any], time_s: int, height: int) -> str | None:
    """Why the instruction cannot settle in a block at (`time_s`, `height`), in the order
    `settlement.execute` refuses, or None: every sender affirmed and its time has come."""
    if record["status"] != PENDING:
        return f"instruction_{record['status']}"
    if time_s >= record["expires_at"]:
        return "instruction_expired"
    if record["settlement_type"] == AT_HEIGHT and height < record["settle_at_height"]:
        return "settle_height_not_reached"
    if missing_affirmations(record):
        return "affirmations_missing"
    return None


# --- settling ------------------------------------------------------------------------------------


def run_legs(ctx: Context, instruction_id: int, record: dict[str, Any]) -> LegFailure | None:
    """Settle every leg in order on `ctx.state`: release the leg's reservation (if its sender
    affirmed), check it exactly as a holder's transfer, move it. Returns the first failure, with
    the earlier legs' writes still in the state: the caller runs this in a savepoint and rolls it
    back on failure. A later leg's checks see the earlier legs' effects."""
    affirmed = record["affirmed"]
    for index, (token, sender, receiver, amount) in enumerate(record["legs"]):
        if sender in affirmed:
            release(ctx.state, token, sender, amount)
        try:
            plan = check_transfer(ctx.state, token, sender, receiver, amount, ctx.time_s)
        except Refusal as refusal:
            return LegFailure(index, refusal.outcome)
        if plan.sender_id == plan.receiver_id:
            move_between_own_wallets(ctx.state, token, sender, receiver, amount)
        else:
            debit(ctx, token, sender, plan.sender_id, amount, unfreeze_excess=False)
            credit(ctx, token, receiver, plan.receiver_id, amount)
        if plan.volume is not None:
            ctx.state.set(layout.volume(token, plan.sender_id), plan.volume)
        ctx.emit("token.transferred", token, (sender, receiver),
                 **{"from": sender, "to": receiver, "amount": amount, "instruction": instruction_id, "leg": index})
    return None


def _settle(ctx: Context, instruction_id: int, record: dict[str, Any]) -> None:
    """Try to settle now: every leg moves, or none does and the failure is recorded."""
    ctx.state.begin_transaction()
    mark = len(ctx.events)
    failure = run_legs(ctx, instruction_id, record)
    if failure is None:
        ctx.state.commit_transaction()
        _save(ctx, instruction_id, {**record, "status": SETTLED, "closed_height": ctx.height})
        ctx.emit("settlement.settled", None, concerned(record), id=instruction_id, leg_count=len(record["legs"]))
        return
    ctx.state.rollback_transaction()
    del ctx.events[mark:]  # the legs' transfer events went with their writes
    final = record["settlement_type"] == AT_HEIGHT
    last_failure = (failure.leg, failure.outcome.code, failure.outcome.reason, ctx.height)
    if final:
        _release_all(ctx, record)
        record = {**record, "status": FAILED, "closed_height": ctx.height}
    _save(ctx, instruction_id, {**record, "last_failure": last_failure})
    ctx.emit("settlement.failed", None, concerned(record), id=instruction_id, leg=failure.leg,
             code=failure.outcome.code, reason=failure.outcome.reason, final=final)


def _due(ctx: Context, record: dict[str, Any]) -> bool:
    """Whether an affirmation that completes the set settles the instruction at once."""
    kind = record["settlement_type"]
    return kind == ON_AFFIRMATION or (kind == AT_HEIGHT and ctx.height >= record["settle_at_height"])


def _release_wallet(ctx: Context, record: dict[str, Any], wallet: bytes) -> None:
    for token, sender, _, amount in record["legs"]:
        if sender == wallet:
            release(ctx.state, token, sender, amount)


def _release_all(ctx: Context, record: dict[str, Any]) -> None:
    for wallet in record["affirmed"]:
        _release_wallet(ctx, record, wallet)


def _save(ctx: Context, instruction_id: int, record: dict[str, Any]) -> None:
    ctx.state.set(layout.settle_instruction(instruction_id), record)


def _close(ctx: Context, instruction_id: int, record: dict[str, Any], status: str) -> None:
    _release_all(ctx, record)
    _save(ctx, instruction_id, {**record, "status": status, "closed_height": ctx.height})


# --- handlers ----------------------------------------------------------------------------------------


def create(ctx: Context, body: dict[str, Any]) -> None:
    refuse_lost_wallets(ctx.state, ctx.signer, None)
    legs: tuple[Leg, ...] = tuple((t, f, r, a) for t, f, r, a in body["legs"])
    for token, *_ in legs:
        require_token(ctx, token)
    venue = body["venue"]
    if venue is not None:
        if venue != ctx.signer:
            raise refuse(INVALID_OPERATOR, "not_authorized:venue")
        require_role(ctx, "venue_operator")
    elif not is_party(ctx.state, ctx.signer, legs):
        raise refuse(INVALID_OPERATOR, "not_authorized:party")
    if body["settlement_type"] == AT_HEIGHT and body["settle_at_height"] <= ctx.height:
        raise refuse(FAILURE, "settle_height_passed")
    if body["expires_at"] <= ctx.time_s:
        raise refuse(FAILURE, "expiry_in_the_past")
    instruction_id = ctx.state.get(layout.settle_next_id(), 1)
    ctx.state.set(layout.settle_next_id(), instruction_id + 1)
    record = {
        "creator": ctx.signer, "venue": venue, "settlement_type": body["settlement_type"],
        "settle_at_height": body["settle_at_height"], "expires_at": body["expires_at"],
        "reference": body["reference"], "legs": legs, "created_height": ctx.height, "status": PENDING,
        "closed_height": None, "affirmed": (), "last_failure": None,
    }
    _save(ctx, instruction_id, record)
    for wallet in concerned(record):
        ctx.state.set(layout.settle_by_wallet(wallet, instruction_id), 1)
    for token in sorted({leg[0] for leg in legs}):
        ctx.state.set(layout.settle_by_token(token, instruction_id), 1)
    ctx.emit("settlement.created", None, concerned(record), id=instruction_id, creator=ctx.signer, venue=venue,
             settlement_type=body["settlement_type"], settle_at_height=body["settle_at_height"],
             expires_at=body["expires_at"], reference=body["reference"], legs=[list(leg) for leg in legs])


def affirm(ctx: Context, body: dict[str, Any]) -> None:
    """The signing wallet affirms every leg it sends in, reserving their units."""
    instruction_id = body["id"]
    record = _load(ctx, instruction_id)
    _require_unexpired(ctx, record)
    mine = [(index, leg) for index, leg in enumerate(record["legs"]) if leg[1] == ctx.signer]
    if not mine:
        raise refuse(INVALID_OPERATOR, "not_authorized:sender")
    if ctx.signer in record["affirmed"]:
        raise refuse(FAILURE, "already_affirmed")
    for _, (token, sender, receiver, amount) in mine:
        # refused now with the very code the leg would get as a transfer; the units this affirmation
        # reserved for its earlier legs are already out of the unreserved balance
        check_transfer(ctx.state, token, sender, receiver, amount, ctx.time_s)
        reserve(ctx.state, token, sender, amount)
    record = {**record, "affirmed": tuple(sorted((*record["affirmed"], ctx.signer)))}
    _save(ctx, instruction_id, record)
    missing = missing_affirmations(record)
    ctx.emit("settlement.affirmed", None, concerned(record), id=instruction_id, wallet=ctx.signer,
             leg_indexes=[index for index, _ in mine], missing_affirmations=list(missing))
    if not missing and _due(ctx, record):
        _settle(ctx, instruction_id, record)


def withdraw_affirmation(ctx: Context, body: dict[str, Any]) -> None:
    instruction_id = body["id"]
    record = _load(ctx, instruction_id)
    if ctx.signer not in record["affirmed"]:
        raise refuse(FAILURE, "not_affirmed")
    _release_wallet(ctx, record, ctx.signer)
    record = {**record, "affirmed": tuple(w for w in record["affirmed"] if w != ctx.signer)}
    _save(ctx, instruction_id, record)
    ctx.emit("settlement.affirmation_withdrawn", None, concerned(record), id=instruction_id, wallet=ctx.signer)


def reject(ctx: Context, body: dict[str, Any]) -> None:
    """A party (sender or receiver, through any wallet of its identity) or the venue ends it."""
    instruction_id = body["id"]
    record = _load(ctx, instruction_id)
    if not (_is_venue(ctx, record) or is_party(ctx.state, ctx.signer, record["legs"])):
        raise refuse(INVALID_OPERATOR, "not_authorized:party")
    _close(ctx, instruction_id, record, REJECTED)
    ctx.emit("settlement.rejected", None, concerned(record), id=instruction_id, by=ctx.signer)


def execute(ctx: Context, body: dict[str, Any]) -> None:
    """Settle now: a manual instruction by its venue (without one, by a party); an `at_height` one
    at or after its height, or a pending one whose last attempt failed, by anyone."""
    instruction_id = body["id"]
    record = _load(ctx, instruction_id)
    _require_unexpired(ctx, record)
    if record["settlement_type"] == MANUAL:
        if record["venue"] is not None:
            if record["venue"] != ctx.signer:
                raise refuse(INVALID_OPERATOR, "not_authorized:venue")
            require_role(ctx, "venue_operator")
        elif not is_party(ctx.state, ctx.signer, record["legs"]):
            raise refuse(INVALID_OPERATOR, "not_authorized:party")
    blocker = settle_blocker(record, ctx.time_s, ctx.height)
    if blocker is not None:
        raise refuse(FAILURE, blocker)
    _settle(ctx, instruction_id, record)


def expire(ctx: Context, body: dict[str, Any]) -> None:
    """Anyone ends a pending instruction from its expiry on, releasing its reservations."""
    instruction_id = body["id"]
    record = _load(ctx, instruction_id)
    if ctx.time_s < record["expires_at"]:
        raise refuse(FAILURE, "instruction_not_expired")
    _close(ctx, instruction_id, record, EXPIRED)
    ctx.emit("settlement.expired", None, concerned(record), id=instruction_id)


HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "settlement.create": create,
    "settlement.affirm": affirm,
    "settlement.withdraw_affirmation": withdraw_affirmation,
    "settlement.reject": reject,
    "settlement.execute": execute,
    "settlement.expire": expire,
}


# --- the read side: views, the dry run, selection (called by ledger.queries) --------------------------


def describe(instruction_id: int, record: dict[str, Any], time_s: int) -> dict[str, Any]:
    """An instruction as plain data: terms, legs with their affirmations, status, last failure."""
    affirmed = record["affirmed"]
    failure = record["last_failure"]
    return {
        "id": instruction_id, "status": record["status"], "settlement_type": record["settlement_type"],
        "settle_at_height": record["settle_at_height"], "expires_at": record["expires_at"],
        "past_expiry": record["status"] == PENDING and time_s >= record["expires_at"],
        "creator": record["creator"], "venue": record["venue"], "reference": record["reference"],
        "created_height": record["created_height"], "closed_height": record["closed_height"],
        "legs": [{"leg": i, "token": t, "from": f, "to": r, "amount": a, "affirmed": f in affirmed}
                 for i, (t, f, r, a) in enumerate(record["legs"])],
        "affirmed": list(affirmed), "missing_affirmations": list(missing_affirmations(record)),
        "last_failure": None if failure is None else
        {"leg": failure[0], "code": failure[1], "reason": failure[2], "height": failure[3]},
    }


def preview(state: State, instruction_id: int, *, time_s: int, height: int) -> dict[str, Any] | None:
    """What settling the instruction in a block at (`time_s`, `height`) would do, computed by
    `run_legs` itself on a state transaction that is rolled back (None: no such instruction).

    `ok`: it would settle. `code`/`reason`: 0x51 success, or the first obstacle: the instruction's
    state (0x50 `settle_blocker`) or the first failing leg's transfer code. `legs`: the legs' verdict
    alone, as if the missing senders affirmed now (what a sender checks before affirming); null
    once the instruction is no longer pending."""
    record = state.get(layout.settle_instruction(instruction_id))
    if record is None:
        return None
    blocker = settle_blocker(record, time_s, height)
    failure: LegFailure | None = None
    legs = None
    if record["status"] == PENDING:
        state.begin_transaction()
        try:
            failure = run_legs(Context(state, time_s, height, b""), instruction_id, record)
        finally:
            state.rollback_transaction()
        legs = _verdict(failure)
    if blocker is not None:
        first = {"ok": False, "code": FAILURE, "reason": blocker, "leg": None}
    else:
        assert legs is not None, "only a pending instruction has nothing in its way"
        first = legs
    return {"id": instruction_id, "status": record["status"], **first, "legs": legs,
            "missing_affirmations": list(missing_affirmations(record)), "time_s": time_s, "height": height}


def _verdict(failure: LegFailure | None) -> dict[str, Any]:
    if failure is None:
        return {"ok": True, "code": SUCCESS, "reason": "success", "leg": None}
    return {"ok": False, "code": failure.outcome.code, "reason": failure.outcome.reason, "leg": failure.leg}


#: Scans the committed state from `start` (inclusive) under `prefix`: yields (key, raw value).
Scan = Callable[[bytes, bytes], Iterator[tuple[bytes, bytes]]]


def select(state: State, scan: Scan, *, wallets: tuple[bytes, ...] | None = None, token: str | None = None,
           status: str | None = None, from_height: int = 0, to_height: int | None = None,
           after: int | None = None, limit: int) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """Instructions in ascending id after `after`, that concern one of `wallets` (if given: as a
    sender, receiver, creator or venue), have a leg of `token`, the `status`, and were created
    between the heights; up to `limit`, and whether more follow. The per-wallet and per-token
    indexes drive the scan, so a party's instructions cost a seek, not a walk over every one."""
    first = (after or 0) + 1

    def ids(prefix: bytes) -> Iterator[int]:
        for key, _ in scan(prefix, prefix + first.to_bytes(8, "big")):
            yield int.from_bytes(key[len(prefix):], "big")

    if wallets is not None:
        source: Iterator[int] = _unique(heapq.merge(*(ids(layout.settle_by_wallet_prefix(w)) for w in wallets)))
    elif token is not None:
        source = ids(layout.settle_by_token_prefix(token))
    else:
        source = ids(layout.SETTLE_PREFIX)
    wanted = None if wallets is None else set(wallets)
    out: list[tuple[int, dict[str, Any]]] = []
    for instruction_id in source:
        record = state.get(layout.settle_instruction(instruction_id))
        if to_height is not None and record["created_height"] > to_height:
            break  # ids grow with the height of creation
        if (record["created_height"] < from_height or (status is not None and record["status"] != status)
                or (token is not None and all(leg[0] != token for leg in record["legs"]))
                or (wanted is not None and wanted.isdisjoint(concerned(record)))):
            continue
        if len(out) == limit:
            return out, True
        out.append((instruction_id, record))
    return out, False


def _unique(ids: Iterator[int]) -> Iterator[int]:
    previous = None
    for value in ids:
        if value != previous:
            yield value
        previous = value
