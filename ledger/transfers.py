"""A token's life and its transfers: creation, agents and rules, issue and redemption, holders'
transfers and agents' forced transfers, freezes, pause, and recovery of lost wallets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import layout
from .compliance import capacity_checks, check_transfer, party_checks, valid_claim
from .context import Context
from .holdings import (
    change_supply,
    credit,
    debit,
    identity_of,
    move_between_own_wallets,
    refuse_lost_wallets,
    set_wallet,
    wallet_of,
)
from .kinds import AMOUNT_MAX
from .permissions import require_agent, require_owner, require_role, require_token
from .reasons import FAILURE, INSUFFICIENT_BALANCE, INVALID_RECEIVER, INVALID_SENDER, refuse


def token_create(ctx: Context, body: dict[str, Any]) -> None:
    require_role(ctx, "token_issuer")
    symbol = body["symbol"]
    if ctx.state.get(layout.token(symbol)) is not None:
        raise refuse(FAILURE, "token_exists")
    ctx.state.set(layout.token(symbol), {
        "name": body["name"], "decimals": body["decimals"], "owner": ctx.signer,
        "paused": body["paused"], "rules": body["rules"], "created_at_s": ctx.time_s,
    })
    ctx.state.set(layout.supply(symbol), (0, 0))
    for agent, roles in body["agents"]:
        ctx.state.set(layout.agent(symbol, agent), tuple(roles))
    ctx.emit("token.created", symbol, (ctx.signer,), symbol=symbol, name=body["name"],
             decimals=body["decimals"], owner=ctx.signer, paused=body["paused"], rules=body["rules"],
             agents=body["agents"])


def token_set_agent(ctx: Context, body: dict[str, Any]) -> None:
    symbol, agent, roles = body["token"], body["agent"], tuple(body["roles"])
    require_owner(ctx, require_token(ctx, symbol))
    if roles:
        ctx.state.set(layout.agent(symbol, agent), roles)
    else:
        ctx.state.delete(layout.agent(symbol, agent))
    ctx.emit("token.agent_set", symbol, (agent,), agent=agent, roles=list(roles))


def token_set_rules(ctx: Context, body: dict[str, Any]) -> None:
    """New rules apply to later transfers only; holdings above a new cap stay, but cannot grow."""
    symbol = body["token"]
    token = require_token(ctx, symbol)
    require_owner(ctx, token)
    ctx.state.set(layout.token(symbol), {**token, "rules": body["rules"]})
    ctx.emit("token.rules_changed", symbol, (), rules=body["rules"])


def token_set_name(ctx: Context, body: dict[str, Any]) -> None:
    """The owner's alone (T-REX `setName` is `onlyOwner`): a name is part of the security's terms."""
    symbol = body["token"]
    token = require_token(ctx, symbol)
    require_owner(ctx, token)
    if token["name"] == body["name"]:
        raise refuse(FAILURE, "name_unchanged")
    ctx.state.set(layout.token(symbol), {**token, "name": body["name"]})
    ctx.emit("token.renamed", symbol, (), old_name=token["name"], name=body["name"])


def token_issue(ctx: Context, body: dict[str, Any]) -> None:
    symbol, to, amount = body["token"], body["to"], body["amount"]
    rules = require_token(ctx, symbol)["rules"]
    require_agent(ctx, symbol, "supply")
    receiver_id = identity_of(ctx.state, to)
    if receiver_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    refuse_lost_wallets(ctx.state, None, to)
    total, _ = ctx.state.get(layout.supply(symbol))
    cap = min(rules.get("supply_cap", AMOUNT_MAX), AMOUNT_MAX)
    if total + amount > cap:
        raise refuse(FAILURE, "supply_cap_exceeded")
    party_checks(ctx.state, rules, receiver_id, "receiver", ctx.time_s)
    capacity_checks(ctx.state, symbol, rules, receiver_id, amount, sender_leaves=False)
    credit(ctx, symbol, to, receiver_id, amount)
    change_supply(ctx.state, symbol, amount, 0)
    ctx.emit("token.issued", symbol, (to,), to=to, amount=amount)


def token_redeem(ctx: Context, body: dict[str, Any]) -> None:
    symbol, wallet, amount = body["token"], body["from"], body["amount"]
    require_token(ctx, symbol)
    require_agent(ctx, symbol, "supply")
    balance, _, _ = wallet_of(ctx.state, symbol, wallet)
    if balance < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    identity_id = identity_of(ctx.state, wallet)
    assert identity_id is not None, "a wallet with a balance has an identity"
    debit(ctx, symbol, wallet, identity_id, amount, unfreeze_excess=True)
    change_supply(ctx.state, symbol, -amount, 0)
    ctx.emit("token.redeemed", symbol, (wallet,), **{"from": wallet, "amount": amount})


def token_transfer(ctx: Context, body: dict[str, Any]) -> None:
    symbol, to, amount = body["token"], body["to"], body["amount"]
    plan = check_transfer(ctx.state, symbol, ctx.signer, to, amount, ctx.time_s)
    if plan.sender_id == plan.receiver_id:
        move_between_own_wallets(ctx.state, symbol, ctx.signer, to, amount)
    else:
        debit(ctx, symbol, ctx.signer, plan.sender_id, amount, unfreeze_excess=False)
        credit(ctx, symbol, to, plan.receiver_id, amount)
    if plan.volume is not None:
        ctx.state.set(layout.volume(symbol, plan.sender_id), plan.volume)
    ctx.emit("token.transferred", symbol, (ctx.signer, to), **{"from": ctx.signer, "to": to, "amount": amount})


def token_force_transfer(ctx: Context, body: dict[str, Any]) -> None:
    """An agent's transfer: no pause, freeze or transfer rule applies, but the receiver must be a
    verified investor (registered, with the token's required claims) and the balance must suffice."""
    symbol, sender, to, amount = body["token"], body["from"], body["to"], body["amount"]
    rules = require_token(ctx, symbol)["rules"]
    require_agent(ctx, symbol, "force_transfer")
    sender_id = identity_of(ctx.state, sender)
    if sender_id is None:
        raise refuse(INVALID_SENDER, "sender_not_registered")
    receiver_id = identity_of(ctx.state, to)
    if receiver_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    if sender == to:
        raise refuse(INVALID_RECEIVER, "receiver_is_sender")
    refuse_lost_wallets(ctx.state, None, to)
    for topic in rules.get("required_claims", ()):
        if valid_claim(ctx.state, receiver_id, topic, ctx.time_s) is None:
            raise refuse(INVALID_RECEIVER, f"receiver_missing_claim:{topic}")
    if wallet_of(ctx.state, symbol, sender)[0] < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    if sender_id == receiver_id:
        balance, frozen, flag = wallet_of(ctx.state, symbol, sender)
        if amount > balance - frozen:
            excess = amount - (balance - frozen)
            set_wallet(ctx.state, symbol, sender, balance, frozen - excess, flag)
            ctx.emit("token.partially_unfrozen", symbol, (sender,), address=sender, amount=excess)
        move_between_own_wallets(ctx.state, symbol, sender, to, amount)
    else:
        debit(ctx, symbol, sender, sender_id, amount, unfreeze_excess=True)
        credit(ctx, symbol, to, receiver_id, amount)
    ctx.emit("token.force_transferred", symbol, (sender, to),
             **{"from": sender, "to": to, "amount": amount, "agent": ctx.signer})


def token_freeze(ctx: Context, body: dict[str, Any]) -> None:
    _set_address_frozen(ctx, body, True)


def token_unfreeze(ctx: Context, body: dict[str, Any]) -> None:
    _set_address_frozen(ctx, body, False)


def _set_address_frozen(ctx: Context, body: dict[str, Any], frozen_flag: bool) -> None:
    symbol, address = body["token"], body["address"]
    require_token(ctx, symbol)
    require_agent(ctx, symbol, "freeze")
    balance, frozen, flag = wallet_of(ctx.state, symbol, address)
    if flag == frozen_flag:
        raise refuse(FAILURE, "address_already_frozen" if flag else "address_not_frozen")
    set_wallet(ctx.state, symbol, address, balance, frozen, frozen_flag)
    ctx.emit("token.frozen" if frozen_flag else "token.unfrozen", symbol, (address,), address=address)


def token_freeze_partial(ctx: Context, body: dict[str, Any]) -> None:
    symbol, address, amount = body["token"], body["address"], body["amount"]
    require_token(ctx, symbol)
    require_agent(ctx, symbol, "freeze")
    balance, frozen, flag = wallet_of(ctx.state, symbol, address)
    if frozen + amount > balance:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    set_wallet(ctx.state, symbol, address, balance, frozen + amount, flag)
    ctx.emit("token.partially_frozen", symbol, (address,), address=address, amount=amount)


def token_unfreeze_partial(ctx: Context, body: dict[str, Any]) -> None:
    symbol, address, amount = body["token"], body["address"], body["amount"]
    require_token(ctx, symbol)
    require_agent(ctx, symbol, "freeze")
    balance, frozen, flag = wallet_of(ctx.state, symbol, address)
    if amount > frozen:
        raise refuse(FAILURE, "unfreeze_exceeds_frozen")
    set_wallet(ctx.state, symbol, address, balance, frozen - amount, flag)
    ctx.emit("token.partially_unfrozen", symbol, (address,), address=address, amount=amount)


def token_pause(ctx: Context, body: dict[str, Any]) -> None:
    _set_paused(ctx, body["token"], True)


def token_unpause(ctx: Context, body: dict[str, Any]) -> None:
    _set_paused(ctx, body["token"], False)


def _set_paused(ctx: Context, symbol: str, paused: bool) -> None:
    token = require_token(ctx, symbol)
    require_agent(ctx, symbol, "pause")
    if token["paused"] == paused:
        raise refuse(FAILURE, "already_paused" if paused else "not_paused")
    ctx.state.set(layout.token(symbol), {**token, "paused": paused})
    ctx.emit("token.paused" if paused else "token.unpaused", symbol, ())


def token_recover(ctx: Context, body: dict[str, Any]) -> None:
    """Move everything a lost wallet holds (balance, frozen part, freeze flag) onto a new wallet
    of the same identity. The identity's holding, lots and the holder count do not change."""
    symbol, lost, new = body["token"], body["lost_wallet"], body["new_wallet"]
    require_token(ctx, symbol)
    require_agent(ctx, symbol, "recovery")
    identity_id = identity_of(ctx.state, lost)
    if identity_id is None:
        raise refuse(INVALID_SENDER, "lost_wallet_not_registered")
    if lost == new or identity_of(ctx.state, new) != identity_id:
        raise refuse(INVALID_RECEIVER, "new_wallet_not_same_identity")
    refuse_lost_wallets(ctx.state, None, new)
    balance, frozen, flag = wallet_of(ctx.state, symbol, lost)
    if balance == 0 and not flag:
        raise refuse(FAILURE, "nothing_to_recover")
    new_balance, new_frozen, new_flag = wallet_of(ctx.state, symbol, new)
    set_wallet(ctx.state, symbol, lost, 0, 0, False)
    set_wallet(ctx.state, symbol, new, new_balance + balance, new_frozen + frozen, new_flag or flag)
    ctx.state.set(layout.lost_wallet(lost), 1)
    ctx.emit("token.recovered", symbol, (lost, new), lost_wallet=lost, new_wallet=new, identity=identity_id,
             amount=balance, frozen_amount=frozen, address_frozen=flag, agent=ctx.signer)



HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "token.create": token_create,
    "token.set_agent": token_set_agent,
    "token.set_rules": token_set_rules,
    "token.set_name": token_set_name,
    "token.issue": token_issue,
    "token.redeem": token_redeem,
    "token.transfer": token_transfer,
    "token.force_transfer": token_force_transfer,
    "token.freeze": token_freeze,
    "token.unfreeze": token_unfreeze,
    "token.freeze_partial": token_freeze_partial,
    "token.unfreeze_partial": token_unfreeze_partial,
    "token.pause": token_pause,
    "token.unpause": token_unpause,
    "token.recover": token_recover,
}
