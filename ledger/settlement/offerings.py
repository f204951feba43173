"""Primary offerings: an issuer sells newly issued units of a token for cash, to the investors the
token's own rules admit (an accredited-only offering under Reg D 506(c) is an offering of a token
whose rules require the `accredited` claim). docs/SETTLEMENT.md, "Primary offerings", is the
counsel's version of this page, with a worked example that a test runs.

Everything that changes an offering lives here. Its life, as data (`TRANSITIONS`):

    offering.open -> open --offering.close--> closed   (units issued, cash paid)
                          --offering.close--> failed   (minimum raise not reached: all refunded)
                          --offering.cancel-> cancelled (all refunded)

Only an `open` offering takes a transaction; every other status is final.

- **Who.** The token's owner or an agent with the token's `supply` role opens, closes and cancels
  (an offering issues units: the power to issue is the power to offer). Investors subscribe and
  withdraw from their own wallets.
- **Price** is in cash base units per whole unit of the offered token (10^decimals base units).
  Units are bought whole base units at a time: `units = floor(cash x 10^d / price)`, and the
  investor pays `ceil(units x price / 10^d)`, never less than the exact price and never more than
  the cash allocated to it.
- **Escrow is a reservation** (`holdings.reserve`) of the subscribed amount on the investor's own
  cash wallet: the cash never leaves the wallet before the close and no total changes; only the
  holder's own transfers (and other reservations) cannot take it. An agent's legal order still can;
  the close then excludes the subscriber.
- **Eligibility** is the offered token's rules for receiving units (as an issue checks them) and the
  cash token's rules for the investor's payment to the issuer's cash wallet (`check_transfer`), so a
  subscription is refused with the very code a transfer would get. The close checks them again.
- **The close**, in one transaction: every reservation is released; each subscriber, in
  subscription order, is checked again and excluded (fully refunded) if it fails; the demand left
  is allocated pro rata when over the maximum raise (each allocation rounded down); the units must
  fit the supply cap (otherwise the close is refused); then in a savepoint each subscriber in order
  gets its units and pays its price, or is excluded if that would break a cap. If what was raised
  is below the minimum, the savepoint is undone and every subscriber refunded.

Nothing here reads a clock, draws a random number, or depends on the order of a dict or a set:
subscribers are kept as a tuple in subscription order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .. import layout
from ..compliance import TransferPlan, capacity_checks, check_transfer, party_checks
from ..context import Context
from ..holdings import (
    change_supply,
    credit,
    debit,
    identity_of,
    move_between_own_wallets,
    refuse_lost_wallets,
    release,
    reserve,
    wallet_of,
)
from ..kinds import AMOUNT_MAX
from ..permissions import require_token
from ..reasons import FAILURE, FUNDS_LOCKED, INVALID_OPERATOR, INVALID_RECEIVER, Refusal, refuse
from ..state import State

OPEN, CLOSED, FAILED, CANCELLED = "open", "closed", "failed", "cancelled"
#: Every status an offering may have, and the transactions that move it on. All but `open` are final.
TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    OPEN: ("offering.subscribe", "offering.withdraw", "offering.close", "offering.cancel"),
    CLOSED: (), FAILED: (), CANCELLED: (),
}
STATUSES: Final[tuple[str, ...]] = tuple(TRANSITIONS)

#: Most subscriptions one offering holds at a time: the close re-checks, allocates and settles every
#: one in a single transaction, so this bounds its work (about 0.2 ms each). One per identity.
SUBSCRIBERS_MAX: Final[int] = 500
#: After the window closes the subscriptions bind (the issuer accepts them by closing). An issuer
#: that has not closed within this time releases the investors: they may withdraw again.
CLOSE_GRACE_S: Final[int] = 30 * 86_400

#: Why a subscriber got some of its escrow back (`offering.refunded`): excluded at the close,
#: the part not allocated (pro-rata scaling, rounding down to whole base units), the minimum raise
#: not reached, or the offering cancelled.
EXCLUDED, NOT_ALLOCATED, MINIMUM_NOT_REACHED, REFUND_CANCELLED = (
    "excluded", "not_allocated", "minimum_not_reached", "cancelled")


# --- prices -------------------------------------------------------------------------------------


def units_for(cash: int, price: int, scale: int) -> int:
    """Base units of the offered token that `cash` buys at `price` per whole unit: rounded down."""
    return cash * scale // price


def cost_of(units: int, price: int, scale: int) -> int:
    """Cash base units the investor pays for `units`: the exact price rounded up to a cash base unit.
    For `units = units_for(cash, ...)` it never exceeds `cash`."""
    return -(-units * price // scale)


def allocation(subscribed: int, demand: int, raise_max: int) -> int:
    """The cash allocated to one subscription: all of it when the demand fits the maximum raise,
    else pro rata `floor(subscribed x raise_max / demand)`; the allocations then add up to at most
    the maximum raise."""
    return subscribed if demand <= raise_max else subscribed * raise_max // demand


# --- transactions -----------------------------------------------------------------------------------


def open_offering(ctx: Context, body: dict[str, Any]) -> None:
    offering_id, symbol, cash = body["id"], body["token"], body["cash_token"]
    token = require_token(ctx, symbol)
    _require_issuer_agent(ctx, symbol, token)
    state = ctx.state
    if state.get(layout.offering(offering_id)) is not None:
        raise refuse(FAILURE, "offering_exists")
    cash_token = state.get(layout.token(cash))
    if cash_token is None:
        raise refuse(FAILURE, "unknown_cash_token")
    if cash == symbol:
        raise refuse(FAILURE, "cash_token_is_offered_token")
    if not body["opens_at"] < body["closes_at"] or body["closes_at"] <= ctx.time_s:
        raise refuse(FAILURE, "bad_window")
    if body["raise_min"] > body["raise_max"]:
        raise refuse(FAILURE, "bad_raise_limits")
    price, scale = body["price"], 10 ** token["decimals"]
    if body["investor_min"] > body["investor_max"] or body["investor_min"] > body["raise_max"] \
            or units_for(body["investor_min"], price, scale) == 0:
        raise refuse(FAILURE, "bad_investor_limits")
    total, _ = state.get(layout.supply(symbol))
    if total + units_for(body["raise_max"], price, scale) > _supply_cap(token):
        raise refuse(FAILURE, "supply_cap_exceeded")
    cash_wallet = body["cash_wallet"]
    issuer_id = identity_of(state, cash_wallet)
    if issuer_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    refuse_lost_wallets(state, None, cash_wallet)
    if wallet_of(state, cash, cash_wallet)[2]:
        raise refuse(INVALID_RECEIVER, "receiver_frozen")
    party_checks(state, cash_token["rules"], issuer_id, "receiver", ctx.time_s)
    terms = {k: body[k] for k in ("cash_token", "price", "raise_min", "raise_max", "investor_min",
                                  "investor_max", "opens_at", "closes_at", "cash_wallet")}
    state.set(layout.offering(offering_id), {
        "token": symbol, **terms, "opened_by": ctx.signer, "opened_at_s": ctx.time_s, "status": OPEN, "subscribers": 0,
        "subscribed": 0, "closed_at_s": 0, "excluded": 0, "raised": 0, "units": 0,
    })
    ctx.emit("offering.opened", symbol, (ctx.signer, cash_wallet), id=offering_id, agent=ctx.signer, **terms)


def subscribe(ctx: Context, body: dict[str, Any]) -> None:
    offering_id, amount, wallet = body["id"], body["amount"], ctx.signer
    record = _offering(ctx.state, offering_id, "offering.subscribe")
    if ctx.time_s < record["opens_at"]:
        raise refuse(FAILURE, "offering_not_open")
    if ctx.time_s >= record["closes_at"]:
        raise refuse(FAILURE, "offering_window_closed")
    state = ctx.state
    identity_id = identity_of(state, wallet)
    if identity_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    refuse_lost_wallets(state, wallet, None)  # a lost wallet does not act for its identity
    if state.get(layout.offering_subscription(offering_id, identity_id)) is not None:
        raise refuse(FAILURE, "already_subscribed")
    if amount < record["investor_min"]:
        raise refuse(FAILURE, "below_investor_min")
    if amount > record["investor_max"]:
        raise refuse(FAILURE, "above_investor_max")
    if record["subscribers"] >= SUBSCRIBERS_MAX or record["subscribed"] + amount > AMOUNT_MAX:
        raise refuse(FAILURE, "offering_full")
    symbol = record["token"]
    token = state.get(layout.token(symbol))
    units = units_for(amount, record["price"], 10 ** token["decimals"])
    # the offered token: may this investor receive these units? (the checks of an issue)
    _check_receiver(state, symbol, token["rules"], wallet, identity_id, ctx.time_s)
    total, _ = state.get(layout.supply(symbol))
    if total + units > _supply_cap(token):
        raise refuse(FAILURE, "supply_cap_exceeded")
    capacity_checks(state, symbol, token["rules"], identity_id, units, sender_leaves=False)
    # the cash token: may this investor pay the issuer? (every rule of a holder's transfer)
    check_transfer(state, record["cash_token"], wallet, record["cash_wallet"], amount, ctx.time_s)
    reserve(state, record["cash_token"], wallet, amount)
    state.set(layout.offering_subscription(offering_id, identity_id), {
        "wallet": wallet, "amount": amount, "subscribed_at_s": ctx.time_s, "status": "pending", "reason": "",
        "allocated": 0, "units": 0, "paid": 0, "refunded": 0,
    })
    order = state.get(layout.offering_subscribers(offering_id), ())
    state.set(layout.offering_subscribers(offering_id), (*order, identity_id))
    state.set(layout.offering(offering_id), {**record, "subscribers": record["subscribers"] + 1,
                                             "subscribed": record["subscribed"] + amount})
    ctx.emit("offering.subscribed", symbol, (wallet,), id=offering_id, identity=identity_id, wallet=wallet,
             amount=amount)


def withdraw(ctx: Context, body: dict[str, Any]) -> None:
    """Allowed while the window is open, and again once the issuer has let `CLOSE_GRACE_S` pass after
    it without closing; from any wallet of the subscribing identity."""
    offering_id = body["id"]
    state = ctx.state
    record = _offering(state, offering_id, "offering.withdraw")
    refuse_lost_wallets(state, ctx.signer, None)  # the identity withdraws from another of its wallets
    identity_id = identity_of(state, ctx.signer)
    sub = None if identity_id is None else state.get(layout.offering_subscription(offering_id, identity_id))
    if identity_id is None or sub is None:
        raise refuse(FAILURE, "not_subscribed")
    if record["closes_at"] <= ctx.time_s < record["closes_at"] + CLOSE_GRACE_S:
        raise refuse(FUNDS_LOCKED, "subscription_locked")
    release(state, record["cash_token"], sub["wallet"], sub["amount"])
    state.delete(layout.offering_subscription(offering_id, identity_id))
    order = tuple(i for i in state.get(layout.offering_subscribers(offering_id)) if i != identity_id)
    if order:
        state.set(layout.offering_subscribers(offering_id), order)
    else:
        state.delete(layout.offering_subscribers(offering_id))
    state.set(layout.offering(offering_id), {**record, "subscribers": record["subscribers"] - 1,
                                             "subscribed": record["subscribed"] - sub["amount"]})
    addresses = (sub["wallet"],) if sub["wallet"] == ctx.signer else (sub["wallet"], ctx.signer)
    ctx.emit("offering.withdrawn", record["token"], addresses, id=offering_id, identity=identity_id,
             wallet=sub["wallet"], amount=sub["amount"])


@dataclass(frozen=True, slots=True)
class Allotment:
    """One eligible subscriber's share: the cash allocated to it, the units that buys, their price."""

    identity: str
    sub: dict[str, Any]
    allocated: int
    units: int
    paid: int


def close(ctx: Context, body: dict[str, Any]) -> None:
    offering_id = body["id"]
    state = ctx.state
    record = _offering(state, offering_id, "offering.close", agent=ctx)
    if ctx.time_s < record["closes_at"] and record["subscribed"] < record["raise_max"]:
        raise refuse(FUNDS_LOCKED, "offering_not_ended")
    symbol, cash = record["token"], record["cash_token"]
    token = state.get(layout.token(symbol))
    price, scale = record["price"], 10 ** token["decimals"]
    # 1. every reservation is released; a subscriber who now fails either token's rules is excluded
    eligible: list[tuple[str, dict[str, Any]]] = []
    excluded = 0
    for identity_id in state.get(layout.offering_subscribers(offering_id), ()):
        sub = state.get(layout.offering_subscription(offering_id, identity_id))
        release(state, cash, sub["wallet"], sub["amount"])
        try:
            _check_receiver(state, symbol, token["rules"], sub["wallet"], identity_id, ctx.time_s)
            check_transfer(state, cash, sub["wallet"], record["cash_wallet"], sub["amount"], ctx.time_s)
        except Refusal as refusal:
            _exclude(ctx, offering_id, record, identity_id, sub, refusal)
            excluded += 1
            continue
        eligible.append((identity_id, sub))
    # 2. pro rata over the maximum raise, rounded down; whole base units at the price, rounded up
    demand = sum(sub["amount"] for _, sub in eligible)
    allotments = []
    for identity_id, sub in eligible:
        allocated = allocation(sub["amount"], demand, record["raise_max"])
        bought = units_for(allocated, price, scale)
        allotments.append(Allotment(identity_id, sub, allocated, bought, cost_of(bought, price, scale)))
    total, _ = state.get(layout.supply(symbol))
    if total + sum(a.units for a in allotments) > _supply_cap(token):
        raise refuse(FAILURE, "supply_cap_exceeded")
    # 3. issue and pay, all or nothing: below the minimum raise the savepoint is undone
    mark = len(ctx.events)
    state.begin_transaction()
    try:
        settled = [_settle(ctx, offering_id, record, token["rules"], a) for a in allotments]
    except BaseException:
        state.rollback_transaction()
        raise
    raised = sum(paid for paid in settled if paid is not None)
    if raised >= record["raise_min"]:
        state.commit_transaction()
        status = CLOSED
        excluded += sum(1 for paid in settled if paid is None)
        units = sum(a.units for a, paid in zip(allotments, settled, strict=True) if paid is not None)
    else:
        state.rollback_transaction()
        del ctx.events[mark:]
        status, raised, units = FAILED, 0, 0
        for a in allotments:
            _refund(ctx, offering_id, record, a.identity, a.sub, "refunded", MINIMUM_NOT_REACHED)
    state.delete(layout.offering_subscribers(offering_id))
    state.set(layout.offering(offering_id), {**record, "status": status, "closed_at_s": ctx.time_s,
                                             "excluded": excluded, "raised": raised, "units": units})
    ctx.emit("offering.closed", symbol, (ctx.signer, record["cash_wallet"]), id=offering_id, result=status,
             subscribers=record["subscribers"], excluded=excluded, subscribed=record["subscribed"], raised=raised,
             units=units, refunded=record["subscribed"] - raised)


def cancel(ctx: Context, body: dict[str, Any]) -> None:
    offering_id = body["id"]
    state = ctx.state
    record = _offering(state, offering_id, "offering.cancel", agent=ctx)
    for identity_id in state.get(layout.offering_subscribers(offering_id), ()):
        sub = state.get(layout.offering_subscription(offering_id, identity_id))
        release(state, record["cash_token"], sub["wallet"], sub["amount"])
        _refund(ctx, offering_id, record, identity_id, sub, "refunded", REFUND_CANCELLED)
    state.delete(layout.offering_subscribers(offering_id))
    state.set(layout.offering(offering_id), {**record, "status": CANCELLED, "closed_at_s": ctx.time_s})
    ctx.emit("offering.cancelled", record["token"], (ctx.signer,), id=offering_id,
             subscribers=record["subscribers"], refunded=record["subscribed"])


# --- private ----------------------------------------------------------------------------------------


def _require_issuer_agent(ctx: Context, symbol: str, token: dict[str, Any]) -> None:
    """Offerings are the token owner's, or an agent's with the `supply` role."""
    if token["owner"] != ctx.signer and "supply" not in ctx.state.get(layout.agent(symbol, ctx.signer), ()):
        raise refuse(INVALID_OPERATOR, "not_authorized:agent.supply")


def _offering(state: State, offering_id: str, kind: str, *, agent: Context | None = None) -> dict[str, Any]:
    """The offering, if it exists, the signer may act on it (`agent`: the issuer's side) and its
    status takes `kind`; else the refusal, in that order."""
    record = state.get(layout.offering(offering_id))
    if record is None:
        raise refuse(FAILURE, "unknown_offering")
    if agent is not None:
        _require_issuer_agent(agent, record["token"], state.get(layout.token(record["token"])))
    if kind not in TRANSITIONS[record["status"]]:
        raise refuse(FAILURE, f"offering_{record['status']}")
    return record


def _supply_cap(token: dict[str, Any]) -> int:
    return min(token["rules"].get("supply_cap", AMOUNT_MAX), AMOUNT_MAX)


def _check_receiver(state: State, symbol: str, rules: dict[str, Any], wallet: bytes, identity_id: str,
                    now_s: int) -> None:
    """May this wallet receive units of the offered token: not lost, not frozen, and the identity's
    claims, country and investor type as the token's rules require (the codes of a transfer)."""
    refuse_lost_wallets(state, None, wallet)
    if wallet_of(state, symbol, wallet)[2]:
        raise refuse(INVALID_RECEIVER, "receiver_frozen")
    party_checks(state, rules, identity_id, "receiver", now_s)


def _settle(ctx: Context, offering_id: str, record: dict[str, Any], rules: dict[str, Any],
            a: Allotment) -> int | None:
    """Issue one subscriber's units and take its price; what it paid, or None if it was excluded
    (its units would break a cap of the offered token, or its payment a rule of the cash token)."""
    state, symbol, cash, wallet = ctx.state, record["token"], record["cash_token"], a.sub["wallet"]
    if a.units == 0:
        _refund(ctx, offering_id, record, a.identity, a.sub, "refunded", NOT_ALLOCATED)
        return 0
    try:
        capacity_checks(state, symbol, rules, a.identity, a.units, sender_leaves=False)
        plan = check_transfer(state, cash, wallet, record["cash_wallet"], a.paid, ctx.time_s)
    except Refusal as refusal:
        _exclude(ctx, offering_id, record, a.identity, a.sub, refusal)
        return None
    credit(ctx, symbol, wallet, a.identity, a.units)
    change_supply(state, symbol, a.units, 0)
    ctx.emit("token.issued", symbol, (wallet,), to=wallet, amount=a.units)
    _pay(ctx, cash, wallet, record["cash_wallet"], a.paid, plan)
    state.set(layout.offering_subscription(offering_id, a.identity), {
        **a.sub, "status": "allocated", "reason": "", "allocated": a.allocated, "units": a.units, "paid": a.paid,
        "refunded": a.sub["amount"] - a.paid})
    ctx.emit("offering.allocated", symbol, (wallet, record["cash_wallet"]), id=offering_id, identity=a.identity,
             wallet=wallet, subscribed=a.sub["amount"], allocated=a.allocated, units=a.units, paid=a.paid)
    if a.sub["amount"] > a.paid:
        ctx.emit("offering.refunded", symbol, (wallet,), id=offering_id, identity=a.identity, wallet=wallet,
                 amount=a.sub["amount"] - a.paid, reason=NOT_ALLOCATED)
    return a.paid


def _pay(ctx: Context, cash: str, sender: bytes, receiver: bytes, amount: int, plan: TransferPlan) -> None:
    """The investor's payment: a holder's transfer that passed `check_transfer` (`plan`)."""
    if plan.sender_id == plan.receiver_id:
        move_between_own_wallets(ctx.state, cash, sender, receiver, amount)
    else:
        debit(ctx, cash, sender, plan.sender_id, amount, unfreeze_excess=False)
        credit(ctx, cash, receiver, plan.receiver_id, amount)
    if plan.volume is not None:
        ctx.state.set(layout.volume(cash, plan.sender_id), plan.volume)
    ctx.emit("token.transferred", cash, (sender, receiver), **{"from": sender, "to": receiver, "amount": amount})


def _exclude(ctx: Context, offering_id: str, record: dict[str, Any], identity_id: str, sub: dict[str, Any],
             refusal: Refusal) -> None:
    outcome = refusal.outcome
    ctx.emit("offering.excluded", record["token"], (sub["wallet"],), id=offering_id, identity=identity_id,
             wallet=sub["wallet"], code=outcome.code, reason=outcome.reason)
    _refund(ctx, offering_id, record, identity_id, sub, "excluded", outcome.reason)


def _refund(ctx: Context, offering_id: str, record: dict[str, Any], identity_id: str, sub: dict[str, Any],
            status: str, reason: str) -> None:
    """Record that the whole escrow of `sub` went back (its reservation is already released)."""
    ctx.state.set(layout.offering_subscription(offering_id, identity_id), {
        **sub, "status": status, "reason": reason, "allocated": 0, "units": 0, "paid": 0, "refunded": sub["amount"]})
    why = EXCLUDED if status == "excluded" else reason
    ctx.emit("offering.refunded", record["token"], (sub["wallet"],), id=offering_id, identity=identity_id,
             wallet=sub["wallet"], amount=sub["amount"], reason=why)


HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "offering.open": open_offering,
    "offering.subscribe": subscribe,
    "offering.withdraw": withdraw,
    "offering.close": close,
    "offering.cancel": cancel,
}
