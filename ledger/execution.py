"""What each transaction does to the state: the rules of securities, as plain Python.

`execute_transaction` checks the nonce, runs the kind's handler inside a state transaction, and
either keeps every write (success) or drops them all and records a rejection with its reason code
(the nonce is consumed either way, so a refused transaction cannot be replayed).

Handlers check first and write after, in the order the reason codes are documented in
docs/LEDGER.md; the first failing check gives the code. `check_transfer` is shared by execution
and by `compliance_check`, so the dry run returns exactly the code execution would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import layout
from .errors import NonceMismatch
from .events import Event
from .kinds import AMOUNT_MAX
from .reasons import (
    FAILURE,
    FUNDS_LOCKED,
    INSUFFICIENT_BALANCE,
    INVALID_OPERATOR,
    INVALID_RECEIVER,
    INVALID_SENDER,
    OK,
    TRANSFERS_HALTED,
    Outcome,
    Refusal,
    refuse,
)
from .state import State
from .tx import Transaction

#: Most acquisition lots kept per identity and token for the holding-period rule. Past this the
#: two newest merge under the later date: a holder may wait longer than needed, never shorter.
LOTS_MAX: int = 64

#: Acquisition lots, oldest first, flat: (acquired_s, amount, acquired_s, amount, ...). Flat because
#: a holder with all 64 lots then costs one array to encode and hash at every write (about 5 us),
#: where 64 nested pairs cost 60 us, twice for every transfer between busy holders.
Lots = tuple[int, ...]


@dataclass(slots=True)
class Context:
    """What a handler may see: the state, the block's time and height, the signer, its events."""

    state: State
    time_s: int
    height: int
    signer: bytes
    events: list[Event] = field(default_factory=list)

    def emit(self, kind: str, token: str | None = None, addresses: tuple[bytes, ...] = (), **data: Any) -> None:
        self.events.append(Event(kind, token, addresses, data))


@dataclass(frozen=True, slots=True)
class TxResult:
    outcome: Outcome
    events: tuple[Event, ...]


def execute_transaction(state: State, tx: Transaction, *, time_s: int, height: int) -> TxResult:
    """Apply one decoded transaction. Raises `NonceMismatch` (the block is invalid); never a rule."""
    nonce_key = _check_nonce(state, tx)
    state.begin_transaction()
    ctx = Context(state, time_s, height, tx.signer)
    try:
        HANDLERS[tx.kind](ctx, tx.body)
        outcome, events = OK, tuple(ctx.events)
    except Refusal as refusal:
        state.rollback_transaction()
        outcome = refusal.outcome
        token = tx.body.get("token") if tx.kind.startswith("token.") else None
        if tx.kind == "token.create":
            token = tx.body["symbol"]
        events = (Event("tx.rejected", token, (tx.signer,),
                        {"kind": tx.kind, "code": outcome.code, "reason": outcome.reason}),)
    state.set(nonce_key, tx.nonce + 1)
    state.commit_transaction()
    return TxResult(outcome, events)


def _check_nonce(state: State, tx: Transaction) -> bytes:
    """The signer's nonce key, once `tx` is shown to carry the signer's next nonce."""
    nonce_key = layout.nonce(tx.signer)
    expected = state.get(nonce_key, 0)
    if tx.nonce != expected:
        raise NonceMismatch(f"nonce {tx.nonce}, expected {expected}", expected=expected, got=tx.nonce)
    return nonce_key


def dry_run(state: State, tx: Transaction, *, time_s: int, height: int) -> Outcome:
    """The outcome `tx` would have, leaving `state` as it was (nonce included)."""
    state.begin_transaction()
    try:
        HANDLERS[tx.kind](Context(state, time_s, height, tx.signer), tx.body)
        return OK
    except Refusal as refusal:
        return refusal.outcome
    finally:
        state.rollback_transaction()


def execute_if_accepted(state: State, tx: Transaction, *, time_s: int, height: int) -> Outcome:
    """Execute `tx` only if the rules accept it; a refusal leaves `state` as it was, nonce included.
    For a pending state (the mempool's): one run instead of a dry run and then an execution."""
    nonce_key = _check_nonce(state, tx)
    state.begin_transaction()
    try:
        HANDLERS[tx.kind](Context(state, time_s, height, tx.signer), tx.body)
    except Refusal as refusal:
        state.rollback_transaction()
        return refusal.outcome
    state.set(nonce_key, tx.nonce + 1)
    state.commit_transaction()
    return OK


# --- reads shared by the handlers -----------------------------------------------------------------


def valid_claim(state: State, identity_id: str, topic: str, now_s: int) -> str | None:
    """The claim's value if it exists, has not expired, and its issuer is still a claim issuer."""
    claim = state.get(layout.claim(identity_id, topic))
    if claim is None:
        return None
    value, issuer, expires_at_s = claim
    if expires_at_s <= now_s or state.get(layout.role("claim_issuer", issuer)) is None:
        return None
    return value


def _token(ctx: Context, symbol: str) -> dict[str, Any]:
    token = ctx.state.get(layout.token(symbol))
    if token is None:
        raise refuse(FAILURE, "unknown_token")
    return token


def _require_role(ctx: Context, role: str) -> None:
    if ctx.state.get(layout.role(role, ctx.signer)) is None:
        raise refuse(INVALID_OPERATOR, f"not_authorized:{role}")


def _require_agent(ctx: Context, symbol: str, role: str) -> None:
    if role not in ctx.state.get(layout.agent(symbol, ctx.signer), ()):
        raise refuse(INVALID_OPERATOR, f"not_authorized:agent.{role}")


def _require_owner(ctx: Context, token: dict[str, Any]) -> None:
    if token["owner"] != ctx.signer:
        raise refuse(INVALID_OPERATOR, "not_authorized:owner")


def _wallet(state: State, symbol: str, address: bytes) -> tuple[int, int, bool]:
    return state.get(layout.balance(symbol, address), (0, 0, False))


def _holding(state: State, symbol: str, identity_id: str) -> tuple[int, Lots]:
    return state.get(layout.holding(symbol, identity_id), (0, ()))


def _identity_of(state: State, address: bytes) -> str | None:
    return state.get(layout.wallet(address))


def _refuse_lost_wallets(state: State, sender: bytes | None, receiver: bytes | None) -> None:
    """A wallet a recovery declared lost may neither send nor receive: its key is presumed in
    the wrong hands (T-REX retires it the same way)."""
    if sender is not None and state.get(layout.lost_wallet(sender)) is not None:
        raise refuse(INVALID_SENDER, "sender_wallet_lost")
    if receiver is not None and state.get(layout.lost_wallet(receiver)) is not None:
        raise refuse(INVALID_RECEIVER, "receiver_wallet_lost")


# --- compliance -------------------------------------------------------------------------------------


def _party_checks(state: State, rules: dict[str, Any], identity_id: str, side: str, now_s: int) -> None:
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


def _capacity_checks(state: State, symbol: str, rules: dict[str, Any], receiver_id: str, amount: int,
                     *, sender_leaves: bool) -> None:
    """Maximum balance per identity, and maximum holders counted per identity."""
    held, _ = _holding(state, symbol, receiver_id)
    balance_max = rules.get("balance_max_per_identity")
    if balance_max is not None and held + amount > balance_max:
        raise refuse(INVALID_RECEIVER, "balance_max_exceeded")
    holders_max = rules.get("holders_max")
    if holders_max is not None and held == 0:
        _, holders = state.get(layout.supply(symbol))
        # At the cap a holder may still sell out to a new holder: the count does not change.
        if holders + 1 - (1 if sender_leaves else 0) > holders_max:
            raise refuse(INVALID_RECEIVER, "holders_max_reached")


def unlocked_amount(lots: Lots, now_s: int, holding_period_s: int) -> int:
    acquired_by = now_s - holding_period_s
    return sum(lots[i + 1] for i in range(0, len(lots), 2) if lots[i] <= acquired_by)


def _volume_after(state: State, symbol: str, rules: dict[str, Any], identity_id: str, amount: int,
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
    sender_id = _identity_of(state, sender)
    if sender_id is None:
        raise refuse(INVALID_SENDER, "sender_not_registered")
    receiver_id = _identity_of(state, receiver)
    if receiver_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    if sender == receiver:
        raise refuse(INVALID_RECEIVER, "receiver_is_sender")
    _refuse_lost_wallets(state, sender, receiver)
    balance, frozen, sender_frozen = _wallet(state, symbol, sender)
    if sender_frozen:
        raise refuse(INVALID_SENDER, "sender_frozen")
    if _wallet(state, symbol, receiver)[2]:
        raise refuse(INVALID_RECEIVER, "receiver_frozen")
    if balance < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    if balance - frozen < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_free_balance")
    if sender_id == receiver_id:
        # Between wallets of one investor: beneficial ownership does not change, so the
        # investor-level rules (lock-up, volume, eligibility, caps) have nothing to say.
        return TransferPlan(sender_id, receiver_id, None)
    rules = token["rules"]
    held, lots = _holding(state, symbol, sender_id)
    period = rules.get("holding_period_s")
    if period is not None and unlocked_amount(lots, now_s, period) < amount:
        raise refuse(FUNDS_LOCKED, "holding_period")
    volume = _volume_after(state, symbol, rules, sender_id, amount, now_s)
    if rules.get("check_sender"):
        _party_checks(state, rules, sender_id, "sender", now_s)
    _party_checks(state, rules, receiver_id, "receiver", now_s)
    _capacity_checks(state, symbol, rules, receiver_id, amount, sender_leaves=held == amount)
    return TransferPlan(sender_id, receiver_id, volume)


# --- moving balances --------------------------------------------------------------------------------


def _add_lot(lots: Lots, acquired_s: int, amount: int) -> Lots:
    if lots and lots[-2] == acquired_s:
        lots = lots[:-1] + (lots[-1] + amount,)
    else:
        lots = lots + (acquired_s, amount)
    if len(lots) > 2 * LOTS_MAX:
        # the two newest merge under the later date
        lots = lots[:-4] + (lots[-2], lots[-3] + lots[-1])
    return lots


def _take_lots(lots: Lots, amount: int) -> Lots:
    """Remove `amount` oldest first (FIFO): sales use the units whose lock-up ends first."""
    start = 0
    while amount:
        lot = lots[start + 1]
        if lot <= amount:
            amount -= lot
            start += 2
        else:
            return (lots[start], lot - amount) + lots[start + 2:]
    return lots[start:]


def _set_wallet(state: State, symbol: str, address: bytes, balance: int, frozen: int, flag: bool) -> None:
    assert 0 <= frozen <= balance or (frozen == 0 and balance >= 0), "frozen exceeds balance"
    key = layout.balance(symbol, address)
    if balance == 0 and frozen == 0 and not flag:
        state.delete(key)
    else:
        state.set(key, (balance, frozen, flag))


def _change_supply(state: State, symbol: str, supply_delta: int, holders_delta: int) -> None:
    total, holders = state.get(layout.supply(symbol))
    state.set(layout.supply(symbol), (total + supply_delta, holders + holders_delta))


def _debit(ctx: Context, symbol: str, wallet: bytes, identity_id: str, amount: int, *,
           unfreeze_excess: bool) -> None:
    """Take `amount` from a wallet; callers have checked the balance (and the free part if needed)."""
    state = ctx.state
    balance, frozen, flag = _wallet(state, symbol, wallet)
    assert balance >= amount, "debit beyond balance"
    free = balance - frozen
    if amount > free:
        assert unfreeze_excess, "debit beyond free balance"
        # Agents may take frozen units; exactly the excess over the free balance is unfrozen.
        excess = amount - free
        frozen -= excess
        ctx.emit("token.partially_unfrozen", symbol, (wallet,), address=wallet, amount=excess)
    _set_wallet(state, symbol, wallet, balance - amount, frozen, flag)
    held, lots = _holding(state, symbol, identity_id)
    if held == amount:
        state.delete(layout.holding(symbol, identity_id))
        _change_supply(state, symbol, 0, -1)
    else:
        state.set(layout.holding(symbol, identity_id), (held - amount, _take_lots(lots, amount)))


def _credit(ctx: Context, symbol: str, wallet: bytes, identity_id: str, amount: int) -> None:
    state = ctx.state
    balance, frozen, flag = _wallet(state, symbol, wallet)
    _set_wallet(state, symbol, wallet, balance + amount, frozen, flag)
    held, lots = _holding(state, symbol, identity_id)
    if held == 0:
        _change_supply(state, symbol, 0, +1)
    state.set(layout.holding(symbol, identity_id), (held + amount, _add_lot(lots, ctx.time_s, amount)))


def _move_between_own_wallets(state: State, symbol: str, sender: bytes, receiver: bytes, amount: int) -> None:
    balance, frozen, flag = _wallet(state, symbol, sender)
    _set_wallet(state, symbol, sender, balance - amount, frozen, flag)
    balance, frozen, flag = _wallet(state, symbol, receiver)
    _set_wallet(state, symbol, receiver, balance + amount, frozen, flag)


# --- handlers: chain-wide roles ------------------------------------------------------------------


def _require_admin_rule(ctx: Context) -> None:
    """Administrators change chain roles only on a chain without members; where the genesis names
    members, roles change by proposals of class `roles` (docs/GOVERNANCE.md)."""
    if ctx.state.get(layout.gov_members()):
        raise refuse(INVALID_OPERATOR, "governance_required")
    _require_role(ctx, "admin")


def role_grant(ctx: Context, body: dict[str, Any]) -> None:
    _require_admin_rule(ctx)
    grant_role(ctx, body["role"], body["account"])


def role_revoke(ctx: Context, body: dict[str, Any]) -> None:
    _require_admin_rule(ctx)
    revoke_role(ctx, body["role"], body["account"])


def grant_role(ctx: Context, role: str, account: bytes, **event_data: Any) -> None:
    """Give `account` a chain role (an administrator's `role.grant`, or a governance action)."""
    if ctx.state.get(layout.role(role, account)) is not None:
        raise refuse(FAILURE, "role_already_held")
    ctx.state.set(layout.role(role, account), 1)
    ctx.state.set(layout.role_count(role), ctx.state.get(layout.role_count(role), 0) + 1)
    ctx.emit("role.granted", None, (account,), role=role, account=account, **event_data)


def revoke_role(ctx: Context, role: str, account: bytes, **event_data: Any) -> None:
    """Take a chain role from `account`; the last administrator stays."""
    if ctx.state.get(layout.role(role, account)) is None:
        raise refuse(FAILURE, "role_not_held")
    count = ctx.state.get(layout.role_count(role), 0)
    if role == "admin" and count == 1:
        raise refuse(FAILURE, "last_admin")
    ctx.state.delete(layout.role(role, account))
    ctx.state.set(layout.role_count(role), count - 1)
    ctx.emit("role.revoked", None, (account,), role=role, account=account, **event_data)


# --- handlers: identities and claims ---------------------------------------------------------------


def identity_register(ctx: Context, body: dict[str, Any]) -> None:
    _require_role(ctx, "claim_issuer")
    identity_id, wallets = body["identity"], tuple(body["wallets"])
    if ctx.state.get(layout.identity(identity_id)) is not None:
        raise refuse(FAILURE, "identity_exists")
    for wallet in wallets:
        if ctx.state.get(layout.wallet(wallet)) is not None:
            raise refuse(FAILURE, "wallet_already_registered")
    ctx.state.set(layout.identity(identity_id), wallets)
    for wallet in wallets:
        ctx.state.set(layout.wallet(wallet), identity_id)
    ctx.emit("identity.registered", None, wallets, identity=identity_id, wallets=list(wallets))


def identity_add_wallet(ctx: Context, body: dict[str, Any]) -> None:
    _require_role(ctx, "claim_issuer")
    identity_id, wallet = body["identity"], body["wallet"]
    wallets = ctx.state.get(layout.identity(identity_id))
    if wallets is None:
        raise refuse(FAILURE, "unknown_identity")
    if ctx.state.get(layout.wallet(wallet)) is not None:
        raise refuse(FAILURE, "wallet_already_registered")
    ctx.state.set(layout.identity(identity_id), tuple(sorted(wallets + (wallet,))))
    ctx.state.set(layout.wallet(wallet), identity_id)
    ctx.emit("identity.wallet_added", None, (wallet,), identity=identity_id, wallet=wallet)


def claim_grant(ctx: Context, body: dict[str, Any]) -> None:
    """Grant or renew: a later grant of the same topic replaces the earlier one."""
    _require_role(ctx, "claim_issuer")
    identity_id, topic = body["identity"], body["topic"]
    if ctx.state.get(layout.identity(identity_id)) is None:
        raise refuse(FAILURE, "unknown_identity")
    if body["expires_at"] <= ctx.time_s:
        raise refuse(FAILURE, "claim_already_expired")
    ctx.state.set(layout.claim(identity_id, topic), (body["value"], ctx.signer, body["expires_at"]))
    ctx.emit("claim.granted", None, (), identity=identity_id, topic=topic, value=body["value"],
             issuer=ctx.signer, expires_at=body["expires_at"])


def claim_revoke(ctx: Context, body: dict[str, Any]) -> None:
    _require_role(ctx, "claim_issuer")
    identity_id, topic = body["identity"], body["topic"]
    claim = ctx.state.get(layout.claim(identity_id, topic))
    if claim is None:
        raise refuse(FAILURE, "unknown_claim")
    if claim[1] != ctx.signer:
        raise refuse(INVALID_OPERATOR, "not_authorized:claim_issuer_of_claim")
    ctx.state.delete(layout.claim(identity_id, topic))
    ctx.emit("claim.revoked", None, (), identity=identity_id, topic=topic, issuer=ctx.signer)


# --- handlers: tokens ------------------------------------------------------------------------------


def token_create(ctx: Context, body: dict[str, Any]) -> None:
    _require_role(ctx, "token_issuer")
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
    _require_owner(ctx, _token(ctx, symbol))
    if roles:
        ctx.state.set(layout.agent(symbol, agent), roles)
    else:
        ctx.state.delete(layout.agent(symbol, agent))
    ctx.emit("token.agent_set", symbol, (agent,), agent=agent, roles=list(roles))


def token_set_rules(ctx: Context, body: dict[str, Any]) -> None:
    """New rules apply to later transfers only; holdings above a new cap stay, but cannot grow."""
    symbol = body["token"]
    token = _token(ctx, symbol)
    _require_owner(ctx, token)
    ctx.state.set(layout.token(symbol), {**token, "rules": body["rules"]})
    ctx.emit("token.rules_changed", symbol, (), rules=body["rules"])


def token_issue(ctx: Context, body: dict[str, Any]) -> None:
    symbol, to, amount = body["token"], body["to"], body["amount"]
    rules = _token(ctx, symbol)["rules"]
    _require_agent(ctx, symbol, "supply")
    receiver_id = _identity_of(ctx.state, to)
    if receiver_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    _refuse_lost_wallets(ctx.state, None, to)
    total, _ = ctx.state.get(layout.supply(symbol))
    cap = min(rules.get("supply_cap", AMOUNT_MAX), AMOUNT_MAX)
    if total + amount > cap:
        raise refuse(FAILURE, "supply_cap_exceeded")
    _party_checks(ctx.state, rules, receiver_id, "receiver", ctx.time_s)
    _capacity_checks(ctx.state, symbol, rules, receiver_id, amount, sender_leaves=False)
    _credit(ctx, symbol, to, receiver_id, amount)
    _change_supply(ctx.state, symbol, amount, 0)
    ctx.emit("token.issued", symbol, (to,), to=to, amount=amount)


def token_redeem(ctx: Context, body: dict[str, Any]) -> None:
    symbol, wallet, amount = body["token"], body["from"], body["amount"]
    _token(ctx, symbol)
    _require_agent(ctx, symbol, "supply")
    balance, _, _ = _wallet(ctx.state, symbol, wallet)
    if balance < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    identity_id = _identity_of(ctx.state, wallet)
    assert identity_id is not None, "a wallet with a balance has an identity"
    _debit(ctx, symbol, wallet, identity_id, amount, unfreeze_excess=True)
    _change_supply(ctx.state, symbol, -amount, 0)
    ctx.emit("token.redeemed", symbol, (wallet,), **{"from": wallet, "amount": amount})


def token_transfer(ctx: Context, body: dict[str, Any]) -> None:
    symbol, to, amount = body["token"], body["to"], body["amount"]
    plan = check_transfer(ctx.state, symbol, ctx.signer, to, amount, ctx.time_s)
    if plan.sender_id == plan.receiver_id:
        _move_between_own_wallets(ctx.state, symbol, ctx.signer, to, amount)
    else:
        _debit(ctx, symbol, ctx.signer, plan.sender_id, amount, unfreeze_excess=False)
        _credit(ctx, symbol, to, plan.receiver_id, amount)
    if plan.volume is not None:
        ctx.state.set(layout.volume(symbol, plan.sender_id), plan.volume)
    ctx.emit("token.transferred", symbol, (ctx.signer, to), **{"from": ctx.signer, "to": to, "amount": amount})


def token_force_transfer(ctx: Context, body: dict[str, Any]) -> None:
    """An agent's transfer: no pause, freeze or transfer rule applies, but the receiver must be a
    verified investor (registered, with the token's required claims) and the balance must suffice."""
    symbol, sender, to, amount = body["token"], body["from"], body["to"], body["amount"]
    rules = _token(ctx, symbol)["rules"]
    _require_agent(ctx, symbol, "force_transfer")
    sender_id = _identity_of(ctx.state, sender)
    if sender_id is None:
        raise refuse(INVALID_SENDER, "sender_not_registered")
    receiver_id = _identity_of(ctx.state, to)
    if receiver_id is None:
        raise refuse(INVALID_RECEIVER, "receiver_not_registered")
    if sender == to:
        raise refuse(INVALID_RECEIVER, "receiver_is_sender")
    _refuse_lost_wallets(ctx.state, None, to)
    for topic in rules.get("required_claims", ()):
        if valid_claim(ctx.state, receiver_id, topic, ctx.time_s) is None:
            raise refuse(INVALID_RECEIVER, f"receiver_missing_claim:{topic}")
    if _wallet(ctx.state, symbol, sender)[0] < amount:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    if sender_id == receiver_id:
        balance, frozen, flag = _wallet(ctx.state, symbol, sender)
        if amount > balance - frozen:
            excess = amount - (balance - frozen)
            _set_wallet(ctx.state, symbol, sender, balance, frozen - excess, flag)
            ctx.emit("token.partially_unfrozen", symbol, (sender,), address=sender, amount=excess)
        _move_between_own_wallets(ctx.state, symbol, sender, to, amount)
    else:
        _debit(ctx, symbol, sender, sender_id, amount, unfreeze_excess=True)
        _credit(ctx, symbol, to, receiver_id, amount)
    ctx.emit("token.force_transferred", symbol, (sender, to),
             **{"from": sender, "to": to, "amount": amount, "agent": ctx.signer})


def token_freeze(ctx: Context, body: dict[str, Any]) -> None:
    _set_address_frozen(ctx, body, True)


def token_unfreeze(ctx: Context, body: dict[str, Any]) -> None:
    _set_address_frozen(ctx, body, False)


def _set_address_frozen(ctx: Context, body: dict[str, Any], frozen_flag: bool) -> None:
    symbol, address = body["token"], body["address"]
    _token(ctx, symbol)
    _require_agent(ctx, symbol, "freeze")
    balance, frozen, flag = _wallet(ctx.state, symbol, address)
    if flag == frozen_flag:
        raise refuse(FAILURE, "address_already_frozen" if flag else "address_not_frozen")
    _set_wallet(ctx.state, symbol, address, balance, frozen, frozen_flag)
    ctx.emit("token.frozen" if frozen_flag else "token.unfrozen", symbol, (address,), address=address)


def token_freeze_partial(ctx: Context, body: dict[str, Any]) -> None:
    symbol, address, amount = body["token"], body["address"], body["amount"]
    _token(ctx, symbol)
    _require_agent(ctx, symbol, "freeze")
    balance, frozen, flag = _wallet(ctx.state, symbol, address)
    if frozen + amount > balance:
        raise refuse(INSUFFICIENT_BALANCE, "insufficient_balance")
    _set_wallet(ctx.state, symbol, address, balance, frozen + amount, flag)
    ctx.emit("token.partially_frozen", symbol, (address,), address=address, amount=amount)


def token_unfreeze_partial(ctx: Context, body: dict[str, Any]) -> None:
    symbol, address, amount = body["token"], body["address"], body["amount"]
    _token(ctx, symbol)
    _require_agent(ctx, symbol, "freeze")
    balance, frozen, flag = _wallet(ctx.state, symbol, address)
    if amount > frozen:
        raise refuse(FAILURE, "unfreeze_exceeds_frozen")
    _set_wallet(ctx.state, symbol, address, balance, frozen - amount, flag)
    ctx.emit("token.partially_unfrozen", symbol, (address,), address=address, amount=amount)


def token_pause(ctx: Context, body: dict[str, Any]) -> None:
    _set_paused(ctx, body["token"], True)


def token_unpause(ctx: Context, body: dict[str, Any]) -> None:
    _set_paused(ctx, body["token"], False)


def _set_paused(ctx: Context, symbol: str, paused: bool) -> None:
    token = _token(ctx, symbol)
    _require_agent(ctx, symbol, "pause")
    if token["paused"] == paused:
        raise refuse(FAILURE, "already_paused" if paused else "not_paused")
    ctx.state.set(layout.token(symbol), {**token, "paused": paused})
    ctx.emit("token.paused" if paused else "token.unpaused", symbol, ())


def token_recover(ctx: Context, body: dict[str, Any]) -> None:
    """Move everything a lost wallet holds (balance, frozen part, freeze flag) onto a new wallet
    of the same identity. The identity's holding, lots and the holder count do not change."""
    symbol, lost, new = body["token"], body["lost_wallet"], body["new_wallet"]
    _token(ctx, symbol)
    _require_agent(ctx, symbol, "recovery")
    identity_id = _identity_of(ctx.state, lost)
    if identity_id is None:
        raise refuse(INVALID_SENDER, "lost_wallet_not_registered")
    if lost == new or _identity_of(ctx.state, new) != identity_id:
        raise refuse(INVALID_RECEIVER, "new_wallet_not_same_identity")
    _refuse_lost_wallets(ctx.state, None, new)
    balance, frozen, flag = _wallet(ctx.state, symbol, lost)
    if balance == 0 and not flag:
        raise refuse(FAILURE, "nothing_to_recover")
    new_balance, new_frozen, new_flag = _wallet(ctx.state, symbol, new)
    _set_wallet(ctx.state, symbol, lost, 0, 0, False)
    _set_wallet(ctx.state, symbol, new, new_balance + balance, new_frozen + frozen, new_flag or flag)
    ctx.state.set(layout.lost_wallet(lost), 1)
    ctx.emit("token.recovered", symbol, (lost, new), lost_wallet=lost, new_wallet=new, identity=identity_id,
             amount=balance, frozen_amount=frozen, address_frozen=flag, agent=ctx.signer)



# --- the verbs the other handler modules share (corporate actions, governance) -----------------------
# Public names for what those modules call; the definitions above keep their names, which the
# mutation run's list of equivalent mutants refers to (tools/mutants.toml).
capacity_checks = _capacity_checks
credit = _credit
debit = _debit
identity_of = _identity_of
party_checks = _party_checks
require_token = _token
wallet_of = _wallet
require_owner = _require_owner

HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "role.grant": role_grant,
    "role.revoke": role_revoke,
    "identity.register": identity_register,
    "identity.add_wallet": identity_add_wallet,
    "claim.grant": claim_grant,
    "claim.revoke": claim_revoke,
    "token.create": token_create,
    "token.set_agent": token_set_agent,
    "token.set_rules": token_set_rules,
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


def _register_corporate_actions() -> None:
    # Corporate actions build on the helpers above, so they are imported last; their handlers
    # join this one table, the single place a kind finds its handler.
    from .corporate import HANDLERS as CORPORATE_HANDLERS

    HANDLERS.update(CORPORATE_HANDLERS)


def _register_governance() -> None:
    # Governance grants and revokes roles through `grant_role` / `revoke_role` above, and the chain
    # reads the validator set through it, so it may be imported before or after this module: it
    # joins its handlers to this table itself, at the end of its import (`governance._register`).
    from . import governance  # noqa: F401


_register_corporate_actions()
_register_governance()
