"""Distributions: dividends and coupons, paid in a payment token per unit held at a record height.

- `distribution.declare` (token owner or corporate-actions agent): fixes the record height and the
  rate (`rate_num / rate_den` payment units per security unit), and funds it up front from the
  declarer's wallet: floor(supply at the record height x rate). The funds sit in escrow.
- `distribution.claim` (a holder, from any wallet of its identity) and `distribution.pay` (the
  declarer or an agent, in batches of [identity, wallet]): each identity is paid once,
  floor(its balance at the record height x rate). Per-holder floors never add up to more than
  the floor of the total, so a distribution never pays out more than was funded.
- `distribution.reclaim` (the declarer, after expiry): the unpaid remainder goes back.

Policy for holders who cannot receive (documented in docs/CORPORATE_ACTIONS.md): the payment is
*held*, not forfeited. A wallet frozen on the security or the payment token, or an identity the
payment token's receiver rules refuse, is not paid; the entitlement stays until the obstacle is
gone or the distribution expires, when it returns to the declarer with the remainder.
A liquidation (`liquidation`) is a distribution whose entitlements come from a table.
"""

from __future__ import annotations

from typing import Any

from .. import layout
from ..compliance import capacity_checks, party_checks
from ..context import Context
from ..holdings import credit, debit, identity_of, wallet_of
from ..permissions import require_token
from ..reasons import (
    FAILURE,
    FUNDS_LOCKED,
    INSUFFICIENT_BALANCE,
    INVALID_OPERATOR,
    INVALID_RECEIVER,
    Refusal,
    refuse,
)
from .common import require_issuer_side, require_past_record_height


def distribution_key(action_id: str) -> bytes:
    return b"dist:" + action_id.encode()


def paid_key(action_id: str, identity_id: str) -> bytes:
    """-> amount paid to this identity (present once paid)."""
    return b"dist_paid:" + action_id.encode() + layout.SEP + identity_id.encode()


def table_key(action_id: str, identity_id: str) -> bytes:
    """-> the identity's entitlement, for distributions computed up front (liquidations)."""
    return b"dist_table:" + action_id.encode() + layout.SEP + identity_id.encode()


def escrow_key(symbol: str) -> bytes:
    """-> payment-token units held in escrow by open distributions (part of the total supply)."""
    return b"escrow:" + symbol.encode()


def entitlement(ctx: Context, record: dict[str, Any], action_id: str, identity_id: str) -> int:
    if record["kind"] == "table":
        return ctx.state.get(table_key(action_id, identity_id), 0)
    assert ctx.state.history is not None, "distributions need the store's history"
    held = ctx.state.history.holding_at(record["tokens"][0], identity_id, record["record_height"])
    return held * record["rate_num"] // record["rate_den"]


def fund(ctx: Context, payment_token: str, amount: int) -> None:
    """Move `amount` of the payment token from the signer's wallet into escrow."""
    require_token(ctx, payment_token)
    payer_id = identity_of(ctx.state, ctx.signer)
    balance, frozen, _ = wallet_of(ctx.state, payment_token, ctx.signer)
    if payer_id is None or balance - frozen < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_funding_balance")
    debit(ctx, payment_token, ctx.signer, payer_id, amount, unfreeze_excess=False)
    ctx.state.set(escrow_key(payment_token), ctx.state.get(escrow_key(payment_token), 0) + amount)


def open_distribution(ctx: Context, action_id: str, record: dict[str, Any]) -> None:
    if ctx.state.get(distribution_key(action_id)) is not None:
        raise refuse(FAILURE, "distribution_exists")
    if record["funded"] > 0:
        fund(ctx, record["payment_token"], record["funded"])
    ctx.state.set(distribution_key(action_id), record)


def declare(ctx: Context, body: dict[str, Any]) -> None:
    symbol, payment_token = body["token"], body["payment_token"]
    require_issuer_side(ctx, symbol, require_token(ctx, symbol))
    require_past_record_height(ctx, body["record_height"])
    if body["expires_at"] <= ctx.time_s:
        raise refuse(FAILURE, "expiry_in_the_past")
    assert ctx.state.history is not None
    units = ctx.state.history.supply_at(symbol, body["record_height"])
    funded = units * body["rate_num"] // body["rate_den"]
    if funded == 0:
        raise refuse(FAILURE, "nothing_to_distribute")
    record = {"kind": "rate", "tokens": (symbol,), "payment_token": payment_token,
              "record_height": body["record_height"], "rate_num": body["rate_num"], "rate_den": body["rate_den"],
              "funded": funded, "paid": 0, "expires_at": body["expires_at"], "declarer": ctx.signer,
              "closed": False}
    open_distribution(ctx, body["id"], record)
    ctx.emit("distribution.declared", symbol, (ctx.signer,), id=body["id"], payment_token=payment_token,
             record_height=body["record_height"], rate_num=body["rate_num"], rate_den=body["rate_den"],
             units=units, funded=funded, expires_at=body["expires_at"])


def _open(ctx: Context, action_id: str) -> dict[str, Any]:
    record = ctx.state.get(distribution_key(action_id))
    if record is None:
        raise refuse(FAILURE, "unknown_distribution")
    if record["closed"]:
        raise refuse(FAILURE, "distribution_closed")
    return record


def _payable(ctx: Context, action_id: str) -> dict[str, Any]:
    """An open distribution that still pays: from its expiry on, only the declarer's reclaim works
    (the same second at which `reclaim` starts to be allowed, so no moment allows both)."""
    record = _open(ctx, action_id)
    if ctx.time_s >= record["expires_at"]:
        raise refuse(FAILURE, "distribution_expired")
    return record


def _pay(ctx: Context, action_id: str, record: dict[str, Any], identity_id: str, wallet: bytes) -> int:
    """Pay one identity into `wallet`; raises `Refusal` (nothing changed) if it cannot be paid."""
    if ctx.state.get(paid_key(action_id, identity_id)) is not None:
        raise refuse(FAILURE, "already_paid")
    amount = entitlement(ctx, record, action_id, identity_id)
    if amount == 0:
        raise refuse(INVALID_RECEIVER, "not_entitled")
    payment_token = record["payment_token"]
    if ctx.state.get(layout.lost_wallet(wallet)) is not None:
        raise refuse(INVALID_RECEIVER, "receiver_wallet_lost")
    for symbol in (*record["tokens"], payment_token):
        if wallet_of(ctx.state, symbol, wallet)[2]:
            raise refuse(INVALID_RECEIVER, "payment_held:wallet_frozen")
    rules = require_token(ctx, payment_token)["rules"]
    try:
        party_checks(ctx.state, rules, identity_id, "receiver", ctx.time_s)
        capacity_checks(ctx.state, payment_token, rules, identity_id, amount, sender_leaves=False)
    except Refusal as refusal:
        raise refuse(refusal.outcome.code, f"payment_held:{refusal.outcome.reason}") from None
    credit(ctx, payment_token, wallet, identity_id, amount)
    ctx.state.set(escrow_key(payment_token), ctx.state.get(escrow_key(payment_token)) - amount)
    ctx.state.set(paid_key(action_id, identity_id), amount)
    ctx.state.set(distribution_key(action_id), {**record, "paid": record["paid"] + amount})
    ctx.emit("distribution.paid", record["tokens"][0], (wallet,), id=action_id, identity=identity_id,
             wallet=wallet, amount=amount, payment_token=payment_token)
    return amount


def claim(ctx: Context, body: dict[str, Any]) -> None:
    record = _payable(ctx, body["id"])
    identity_id = identity_of(ctx.state, ctx.signer)
    if identity_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    _pay(ctx, body["id"], record, identity_id, ctx.signer)


def pay(ctx: Context, body: dict[str, Any]) -> None:
    """Push payments; each pair is paid, held (with an event saying why) or skipped."""
    action_id = body["id"]
    record = _payable(ctx, action_id)
    for symbol in record["tokens"]:
        require_issuer_side(ctx, symbol, require_token(ctx, symbol))
    for identity_id, wallet in body["payments"]:
        if identity_of(ctx.state, wallet) != identity_id:
            ctx.emit("distribution.payment_skipped", record["tokens"][0], (wallet,), id=action_id,
                     identity=identity_id, wallet=wallet, reason="wallet_not_of_identity")
            continue
        record = ctx.state.get(distribution_key(action_id))
        try:
            _pay(ctx, action_id, record, identity_id, wallet)
        except Refusal as refusal:
            kind = "distribution.payment_held" if refusal.outcome.reason.startswith("payment_held") \
                else "distribution.payment_skipped"
            ctx.emit(kind, record["tokens"][0], (wallet,), id=action_id, identity=identity_id, wallet=wallet,
                     reason=refusal.outcome.reason)


def reclaim(ctx: Context, body: dict[str, Any]) -> None:
    action_id = body["id"]
    record = _open(ctx, action_id)
    if record["declarer"] != ctx.signer:
        raise refuse(INVALID_OPERATOR, "not_authorized:declarer")
    if ctx.time_s < record["expires_at"]:
        raise refuse(FUNDS_LOCKED, "distribution_not_expired")
    remainder = record["funded"] - record["paid"]
    payment_token = record["payment_token"]
    if remainder > 0:
        payer_id = identity_of(ctx.state, ctx.signer)
        assert payer_id is not None, "the declarer funded it from a registered wallet"
        credit(ctx, payment_token, ctx.signer, payer_id, remainder)
        ctx.state.set(escrow_key(payment_token), ctx.state.get(escrow_key(payment_token)) - remainder)
    ctx.state.set(distribution_key(action_id), {**record, "closed": True})
    ctx.emit("distribution.reclaimed", record["tokens"][0], (ctx.signer,), id=action_id, amount=remainder,
             payment_token=payment_token)


HANDLERS = {"distribution.declare": declare, "distribution.claim": claim, "distribution.pay": pay,
            "distribution.reclaim": reclaim}
