"""The register of holdings: wallets' balances and frozen parts, each identity's holding with its
acquisition lots, the supply and holder count, and the two verbs that move units, `debit` and
`credit`. Every handler that moves units (transfers, corporate actions, settlement, offerings)
moves them through these, so the holder count, the lots and the freeze rules stay one story.

Checks live in `ledger.compliance`; these verbs assume the caller has checked.
"""

from __future__ import annotations

from . import layout
from .context import Context
from .reasons import INVALID_RECEIVER, INVALID_SENDER, refuse
from .state import State

#: Most acquisition lots kept per identity and token for the holding-period rule. Past this the
#: two newest merge under the later date: a holder may wait longer than needed, never shorter.
LOTS_MAX: int = 64

#: Acquisition lots, oldest first, flat: (acquired_s, amount, acquired_s, amount, ...). Flat because
#: a holder with all 64 lots then costs one array to encode and hash at every write (about 5 us),
#: where 64 nested pairs cost 60 us, twice for every transfer between busy holders.
Lots = tuple[int, ...]


def wallet_of(state: State, symbol: str, address: bytes) -> tuple[int, int, bool]:
    return state.get(layout.balance(symbol, address), (0, 0, False))


def holding_of(state: State, symbol: str, identity_id: str) -> tuple[int, Lots]:
    return state.get(layout.holding(symbol, identity_id), (0, ()))


def identity_of(state: State, address: bytes) -> str | None:
    return state.get(layout.wallet(address))


def reserved_of(state: State, symbol: str, address: bytes) -> int:
    return state.get(layout.reserved(symbol, address), 0)


def unreserved_free(state: State, symbol: str, address: bytes) -> int:
    """What the holder may still send or reserve: the balance less its frozen and reserved parts.
    Never below zero: an agent's forced transfer, redemption or freeze may take reserved units
    (a legal order outranks a pending trade); the settlement then fails its own re-check."""
    balance, frozen, _ = wallet_of(state, symbol, address)
    return max(0, balance - frozen - reserved_of(state, symbol, address))


def reserve(state: State, symbol: str, address: bytes, amount: int) -> None:
    """Set `amount` aside for a pending settlement or subscription; the caller checked that it is
    free (`unreserved_free`)."""
    state.set(layout.reserved(symbol, address), reserved_of(state, symbol, address) + amount)


def release(state: State, symbol: str, address: bytes, amount: int) -> None:
    """Give back units `reserve` set aside (exactly what that reservation took)."""
    held = reserved_of(state, symbol, address)
    assert held >= amount, "release beyond reservation"
    if held == amount:
        state.delete(layout.reserved(symbol, address))
    else:
        state.set(layout.reserved(symbol, address), held - amount)


def refuse_lost_wallets(state: State, sender: bytes | None, receiver: bytes | None) -> None:
    """A wallet a recovery declared lost may neither send nor receive: its key is presumed in
    the wrong hands (T-REX retires it the same way)."""
    if sender is not None and state.get(layout.lost_wallet(sender)) is not None:
        raise refuse(INVALID_SENDER, "sender_wallet_lost")
    if receiver is not None and state.get(layout.lost_wallet(receiver)) is not None:
        raise refuse(INVALID_RECEIVER, "receiver_wallet_lost")


def unlocked_amount(lots: Lots, now_s: int, holding_period_s: int) -> int:
    acquired_by = now_s - holding_period_s
    return sum(lots[i + 1] for i in range(0, len(lots), 2) if lots[i] <= acquired_by)


def add_lot(lots: Lots, acquired_s: int, amount: int) -> Lots:
    if lots and lots[-2] == acquired_s:
        lots = lots[:-1] + (lots[-1] + amount,)
    else:
        lots = lots + (acquired_s, amount)
    if len(lots) > 2 * LOTS_MAX:
        # the two newest merge under the later date
        lots = lots[:-4] + (lots[-2], lots[-3] + lots[-1])
    return lots


def take_lots(lots: Lots, amount: int) -> Lots:
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


def set_wallet(state: State, symbol: str, address: bytes, balance: int, frozen: int, flag: bool) -> None:
    assert 0 <= frozen <= balance or (frozen == 0 and balance >= 0), "frozen exceeds balance"
    key = layout.balance(symbol, address)
    if balance == 0 and frozen == 0 and not flag:
        state.delete(key)
    else:
        state.set(key, (balance, frozen, flag))


def change_supply(state: State, symbol: str, supply_delta: int, holders_delta: int) -> None:
    total, holders = state.get(layout.supply(symbol))
    state.set(layout.supply(symbol), (total + supply_delta, holders + holders_delta))


def debit(ctx: Context, symbol: str, wallet: bytes, identity_id: str, amount: int, *,
           unfreeze_excess: bool) -> None:
    """Take `amount` from a wallet; callers have checked the balance (and the free part if needed)."""
    state = ctx.state
    balance, frozen, flag = wallet_of(state, symbol, wallet)
    assert balance >= amount, "debit beyond balance"
    free = balance - frozen
    if amount > free:
        assert unfreeze_excess, "debit beyond free balance"
        # Agents may take frozen units; exactly the excess over the free balance is unfrozen.
        excess = amount - free
        frozen -= excess
        ctx.emit("token.partially_unfrozen", symbol, (wallet,), address=wallet, amount=excess)
    set_wallet(state, symbol, wallet, balance - amount, frozen, flag)
    held, lots = holding_of(state, symbol, identity_id)
    if held == amount:
        state.delete(layout.holding(symbol, identity_id))
        change_supply(state, symbol, 0, -1)
    else:
        state.set(layout.holding(symbol, identity_id), (held - amount, take_lots(lots, amount)))


def credit(ctx: Context, symbol: str, wallet: bytes, identity_id: str, amount: int) -> None:
    state = ctx.state
    balance, frozen, flag = wallet_of(state, symbol, wallet)
    set_wallet(state, symbol, wallet, balance + amount, frozen, flag)
    held, lots = holding_of(state, symbol, identity_id)
    if held == 0:
        change_supply(state, symbol, 0, +1)
    state.set(layout.holding(symbol, identity_id), (held + amount, add_lot(lots, ctx.time_s, amount)))


def move_between_own_wallets(state: State, symbol: str, sender: bytes, receiver: bytes, amount: int) -> None:
    balance, frozen, flag = wallet_of(state, symbol, sender)
    set_wallet(state, symbol, sender, balance - amount, frozen, flag)
    balance, frozen, flag = wallet_of(state, symbol, receiver)
    set_wallet(state, symbol, receiver, balance + amount, frozen, flag)

