"""The transfer rules of a token, as checks that write nothing: claims, countries and investor
types of each side, balance and holder caps, lock-up, volume windows, freezes and pause.

`check_transfer` is the whole list for a holder's transfer, in the documented order
(docs/LEDGER.md); execution, `compliance_check`, settlement legs and offering subscriptions all
ask it, so a dry run and the real thing give the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import layout
from .holdings import holding_of, identity_of, refuse_lost_wallets, reserved_of, unlocked_amount, wallet_of
from .reasons import (
    FAILURE,
    FUNDS_LOCKED,
    INSUFFICIENT_BALANCE,
    INVALID_RECEIVER,
    INVALID_SENDER,
    TRANSFERS_HALTED,
    refuse,
)
from .state import State


def valid_claim(state: State, identity_id: str, topic: str, now_s: int) -> str | None:
    """The claim's value if it exists, has not expired, and its issuer is still a claim issuer."""
    claim = state.get(layout.claim(identity_id, topic))
    if claim is None:
        return None
    value, issuer, expires_at_s = claim
    if expires_at_s <= now_s or state.get(layout.role("claim_issuer", issuer)) is None:
        return None
    return value


def party_checks(state: State, rules: dict[str, Any], identity_id: str, side: str, now_s: int) -> None:
    """Claims, country and investor type of one side of a transfer (`side` is sender or receiver)."""
    code = INVALID_SENDER if side == "sender" else INVALID_RECEIVER
    for topic in rules.get("required_claims", ()):
        if valid_claim(state, identity_id, topic, now_s) is None:
            raise refuse(code, f"{side}_missing_claim:{topic}")
    allow, block = rules.get("country_allow"), rules.get("country_block")
    if allow or block:
        country = valid_claim(state, identity_id, "country", now_s)
        if country is None:
            raise refuse(code, f"{side}_missing_claim:country")
        if block and country in block:
            raise refuse(code, f"{side}_country_blocked:{country}")
        if allow and country not in allow:
            raise refuse(code, f"{side}_country_not_allowed:{country}")
    types = rules.get("investor_types_allow")
    if types:
        kind = valid_claim(state, identity_id, "investor_type", now_s)
        if kind is None:
            raise refuse(code, f"{side}_missing_claim:investor_type")
        if kind not in types:
            raise refuse(code, f"{side}_investor_type_not_allowed:{kind}")


def capacity_checks(state: State, symbol: str, rules: dict[str, Any], receiver_id: str, amount: int,
                     *, sender_leaves: bool) -> None:
    """Maximum balance per identity, and maximum holders counted per identity."""
    held, _ = holding_of(state, symbol, receiver_id)
    balance_max = rules.get("balance_max_per_identity")
    if balance_max is not None and held + amount > balance_max:
        raise refuse(INVALID_RECEIVER, "balance_max_exceeded")
    holders_max = rules.get("holders_max")
    if holders_max is not None and held == 0:
        _, holders = state.get(layout.supply(symbol))
        # At the cap a holder may still sell out to a new holder: the count does not change.
        if holders + 1 - (1 if sender_leaves else 0) > holders_max:
            raise refuse(INVALID_RECEIVER, "holders_max_reached")


def volume_after(state: State, symbol: str, rules: dict[str, Any], identity_id: str, amount: int,
                  now_s: int) -> tuple[int, int] | None:
    """The sender's volume window after this transfer, or a refusal; None when there is no rule."""
    limit = rules.get("volume_limit")
    if limit is None:
        return None
    start_s, sent = state.get(layout.volume(symbol, identity_id), (now_s, 0))
    if now_s >= start_s + limit["window_s"]:
        start_s, sent = now_s, 0
    if sent + amount > limit["amount_max"]:
        raise refuse(FUNDS_LOCKED, "volume_limit_exceeded")
    return (start_s, sent + amount)


def is_agent_wallet(state: State, symbol: str, wallet: bytes) -> bool:
    """Whether `wallet` holds any agent role on the token."""
    return bool(state.get(layout.agent(symbol, wallet), ()))


@dataclass(frozen=True, slots=True)
class TransferPlan:
    """A transfer that passed every check, with what it will write."""

    sender_id: str
    receiver_id: str
    volume: tuple[int, int] | None


def check_transfer(state: State, symbol: str, sender: bytes, receiver: bytes, amount: int,
                   now_s: int) -> TransferPlan:
    """Every rule a holder's transfer must pass, in the documented order; raises `Refusal`."""
    token = state.get(layout.token(symbol))
    if token is None:
        raise refuse(FAILURE, "unknown_token")
    if token["paused"]:
        raise refuse(TRANSFERS_HALTED, "token_paused")
    sender_id = identity_of(state, sender)
    if sender_id is None:
        raise refuse(INVALID_SENDER, "sender_not_registered")
    receiver_id = identity_of(state, receiver)
    if receiver_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    if sender == receiver:
        raise refuse(INVALID_RECEIVER, "receiver_is_sender")
    refuse_lost_wallets(state, sender, receiver)
    balance, frozen, sender_frozen = wallet_of(state, symbol, sender)
    if sender_frozen:
        raise refuse(INVALID_SENDER, "sender_frozen")
    if wallet_of(state, symbol, receiver)[2]:
        raise refuse(INVALID_RECEIVER, "receiver_frozen")
    if balance < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    if balance - frozen < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_free_balance")
    if balance - frozen - reserved_of(state, symbol, sender) < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_unreserved_balance")
    if sender_id == receiver_id:
        # Between wallets of one investor: beneficial ownership does not change, so the
        # investor-level rules (lock-up, volume, eligibility, caps) have nothing to say.
        return TransferPlan(sender_id, receiver_id, None)
    rules = token["rules"]
    held, lots = holding_of(state, symbol, sender_id)
    period = rules.get("holding_period_s")
    if period is not None and unlocked_amount(lots, now_s, period) < amount:
        raise refuse(FUNDS_LOCKED, "holding_period")
    # A token agent's own wallet is outside the volume window, as T-REX's time-transfer limit
    # modules exempt token agents: the window limits how fast investors may sell, and an agent's
    # wallet moves the issuer's own inventory (docs/LEDGER.md, "Volume windows and agents").
    volume = None if is_agent_wallet(state, symbol, sender) else volume_after(
        state, symbol, rules, sender_id, amount, now_s)
    if rules.get("check_sender"):
        party_checks(state, rules, sender_id, "sender", now_s)
    party_checks(state, rules, receiver_id, "receiver", now_s)
    capacity_checks(state, symbol, rules, receiver_id, amount, sender_leaves=held == amount)
    return TransferPlan(sender_id, receiver_id, volume)

