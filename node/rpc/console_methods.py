"""Read-only JSON-RPC methods the regulator's console needs and the rest of the RPC lacked: the list
of tokens, a token's supply and holder count at a height, the wallets behind a page of holders,
an identity's holdings across tokens, and the block of a moment. Public like every other method:
any client may call them (docs/CONSOLE.md, docs/RPC.md).

Registered by one line of `node.rpc.api.build_registry` (`register(registry, node)`). Like the
amounts of the other methods after the u64-as-string change, balances and supplies travel as
decimal strings (a u64 does not fit a JavaScript number); counts and heights are JSON integers.

Every answer is read in one LMDB read transaction, so it is consistent with a single height.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

from ledger import Block, layout, queries
from ledger import NotFound as LedgerNotFound
from ledger.store import height_key

from . import ErrorCode, MethodRegistry, NotFound, Param, RpcMethod
from .protocol import InvalidParams

if TYPE_CHECKING:
    from ledger import Ledger

#: Most identities one `token_holder_wallets` call may name (a page of `token_holders` at most).
IDENTITIES_PER_CALL_MAX: Final[int] = queries.PAGE_LIMIT_MAX

_SYMBOL = {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9.\\-]{0,15}$"}
_IDENTITY = {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$"}
_HEIGHT = {"type": "integer", "minimum": 0, "maximum": 2**62}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": queries.PAGE_LIMIT_MAX}
_TIME_MS = {"type": "integer", "minimum": 0, "maximum": 2**62}
_OBJECT = {"type": "object"}


class _NodeWithLedger(Protocol):
    ledger: Ledger


def register(registry: MethodRegistry, node: _NodeWithLedger) -> None:
    """Add the console's read-only methods to `registry`; the ledger is read at call time."""

    async def token_list(after: str | None = None, limit: int = 100) -> dict[str, Any]:
        return token_list_of(node.ledger, after=after, limit=limit)

    async def token_supply(token: str, height: int | None = None) -> dict[str, Any]:
        try:
            return token_supply_of(node.ledger, token, height)
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    async def token_holder_wallets(token: str, identities: list[str], height: int | None = None) -> dict[str, Any]:
        if len(identities) > IDENTITIES_PER_CALL_MAX:
            raise InvalidParams("identities", f"at most {IDENTITIES_PER_CALL_MAX} identities, got {len(identities)}")
        try:
            return holder_wallets_of(node.ledger, token, identities, height)
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    async def identity_holdings(identity: str, height: int | None = None) -> dict[str, Any]:
        try:
            return identity_holdings_of(node.ledger, identity, height)
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    async def block_at_time(time_ms: int) -> dict[str, Any]:
        try:
            return block_at_time_of(node.ledger, time_ms)
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    registry.add(RpcMethod("token_list", "Every token, ascending by symbol, with name, decimals, paused, supply "
                           "and holder count, paginated (`next` is the `after` of the next page).",
                           (Param("after", _SYMBOL, required=False), Param("limit", _LIMIT, required=False)),
                           _OBJECT, token_list))
    registry.add(RpcMethod("token_supply", "A token's total supply and number of holders (identities), now or "
                           "at a height.", (Param("token", _SYMBOL), Param("height", _HEIGHT, required=False)),
                           _OBJECT, token_supply, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("token_holder_wallets", "The wallets of the given identities with their balance of "
                           "a token, now or at a height, and their frozen parts now.",
                           (Param("token", _SYMBOL),
                            Param("identities", {"type": "array", "items": _IDENTITY},
                                  description=f"at most {IDENTITIES_PER_CALL_MAX} identity ids"),
                            Param("height", _HEIGHT, required=False)),
                           _OBJECT, token_holder_wallets, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("identity_holdings", "An identity's holdings of every token, by wallet, now or at a "
                           "height.", (Param("identity", _IDENTITY), Param("height", _HEIGHT, required=False)),
                           _OBJECT, identity_holdings, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("block_at_time", "The last block whose header time is at or before a moment "
                           "(milliseconds since 1970): the height a cap table 'at that time' is read at.",
                           (Param("time_ms", _TIME_MS),), _OBJECT, block_at_time, errors=(ErrorCode.NOT_FOUND,)))


# --- queries --------------------------------------------------------------------------------------

_TOKEN_PREFIX: Final[bytes] = layout.token("")


def token_list_of(ledger: Ledger, *, after: str | None = None, limit: int = 100) -> dict[str, Any]:
    limit = max(1, min(limit, queries.PAGE_LIMIT_MAX))
    out: list[dict[str, Any]] = []
    more = False
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        start = layout.token(after) + b"\x00" if after else None
        for key, _ in ledger.store.iter_prefix(txn, "state", _TOKEN_PREFIX, start):
            if len(out) == limit:
                more = True
                break
            symbol = key[len(_TOKEN_PREFIX):].decode()
            token = state.get(key)
            total, holders = state.get(layout.supply(symbol), (0, 0))
            out.append({"symbol": symbol, "name": token["name"], "decimals": token["decimals"],
                        "paused": token["paused"], "total_supply": str(total), "holder_count": holders})
    return {"tokens": out, "next": out[-1]["symbol"] if more else None}


def token_supply_of(ledger: Ledger, symbol: str, height: int | None = None) -> dict[str, Any]:
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        if state.get(layout.token(symbol)) is None:
            raise LedgerNotFound(f"no token {symbol!r}")
        tip = ledger.tip.height
        if height is None or height == tip:
            total, holders = state.get(layout.supply(symbol), (0, 0))
            return {"token": symbol, "height": tip, "total_supply": str(total), "holder_count": holders}
        at = _past_height(ledger, height)
        assert state.history is not None
        total = state.history.supply_at(symbol, at)
        holders = len(state.history.holders_at(symbol, at))
    return {"token": symbol, "height": at, "total_supply": str(total), "holder_count": holders}


def holder_wallets_of(ledger: Ledger, symbol: str, identities: list[str], height: int | None = None) -> dict[str, Any]:
    """For each identity: its wallets with their balance at `height` (now if None), and, as of the
    tip (frozen amounts have no history), the frozen part and whether the address is frozen."""
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        if state.get(layout.token(symbol)) is None:
            raise LedgerNotFound(f"no token {symbol!r}")
        tip = ledger.tip.height
        at = tip if height is None else _past_height(ledger, height)
        out = []
        for identity_id in identities:
            wallets = state.get(layout.identity(identity_id)) or ()
            out.append({"identity": identity_id,
                        "wallets": [_wallet(ledger, txn, state, symbol, address, at, tip) for address in wallets]})
    return {"token": symbol, "height": at, "frozen_height": tip, "identities": out}


def identity_holdings_of(ledger: Ledger, identity_id: str, height: int | None = None) -> dict[str, Any]:
    """The identity's holding of every token it holds (or held at `height`), with its wallets."""
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        wallets = state.get(layout.identity(identity_id))
        if wallets is None:
            raise LedgerNotFound(f"no identity {identity_id!r}")
        tip = ledger.tip.height
        at = tip if height is None else _past_height(ledger, height)
        holdings = []
        for key, _ in ledger.store.iter_prefix(txn, "state", _TOKEN_PREFIX):
            symbol = key[len(_TOKEN_PREFIX):].decode()
            if at == tip:
                amount = state.get(layout.holding(symbol, identity_id), (0,))[0]
            else:
                assert state.history is not None
                amount = state.history.holding_at(symbol, identity_id, at)
            if amount:
                holdings.append({"token": symbol, "balance": str(amount),
                                 "wallets": [_wallet(ledger, txn, state, symbol, address, at, tip)
                                             for address in wallets]})
    return {"identity": identity_id, "height": at, "frozen_height": tip, "holdings": holdings}


def block_at_time_of(ledger: Ledger, time_ms: int) -> dict[str, Any]:
    """Binary search over the stored blocks' header times (non-decreasing with height)."""
    tip = ledger.tip.height
    with ledger.store.read() as txn:
        db = ledger.store.dbs["blocks"]
        cursor = txn.cursor(db=db)
        if tip == 0 or not cursor.first():
            raise LedgerNotFound("no block committed yet")
        low = int.from_bytes(cursor.key(), "big")  # the first stored block (1, or a snapshot's)

        def time_at(height: int) -> int:
            raw = txn.get(height_key(height), db=db)
            assert raw is not None, f"block {height} missing between {low} and {tip}"
            return Block.decode(raw).header.time_ms

        if time_at(low) > time_ms:
            raise LedgerNotFound(f"no block at or before {time_ms} ms: block {low} is later")
        high = tip
        while low < high:  # invariant: time_at(low) <= time_ms
            middle = (low + high + 1) // 2
            if time_at(middle) <= time_ms:
                low = middle
            else:
                high = middle - 1
        return {"height": low, "time_ms": time_at(low)}


def _past_height(ledger: Ledger, height: int) -> int:
    if not 0 <= height <= ledger.tip.height:
        raise LedgerNotFound(f"height {height} is not in [0, {ledger.tip.height}]")
    ledger.check_history(height, state=True)  # a node that joined by state sync: PrunedHistory
    return height


def _wallet(ledger: Ledger, txn: Any, state: Any, symbol: str, address: bytes, at: int, tip: int) -> dict[str, Any]:
    amount, frozen, address_frozen = state.get(layout.balance(symbol, address), (0, 0, False))
    if at != tip:
        amount = ledger.store.balance_at(txn, "hist_wallet", symbol.encode() + layout.SEP + address, at)
    return {"address": address.hex(), "balance": str(amount), "frozen": str(frozen), "address_frozen": address_frozen}
