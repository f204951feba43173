"""JSON-RPC methods of settlement (docs/SETTLEMENT.md, docs/RPC.md): settlement instructions, and
primary offerings. Read-only: instructions are created, affirmed and settled by transactions
(`tx_submit`); these methods answer what the ledger holds and what settling would do.

Registered by one line of `node.rpc.api.build_registry` (`register(registry, node)`). Like the
other methods, addresses travel as lower-case hex and amounts as decimal strings (a u64 does not
fit a JavaScript number); ids, heights, times and leg indexes are JSON integers; reason codes are
ERC-1066 bytes as "0x57".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ledger import NotFound as LedgerNotFound
from ledger import queries
from ledger.kinds import HEIGHT_MAX, TIME_MAX_S
from ledger.settlement.instructions import STATUSES
from ledger.settlement.offerings import STATUSES as OFFERING_STATUSES

from . import ErrorCode, MethodRegistry, NotFound, Param, RpcMethod

if TYPE_CHECKING:
    from ledger import Ledger

_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes as lower-case hex"}
_SYMBOL = {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9.\\-]{0,15}$"}
_IDENTITY = {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$"}
_HEIGHT = {"type": "integer", "minimum": 0, "maximum": HEIGHT_MAX}
_INSTRUCTION = {"type": "integer", "minimum": 1, "maximum": HEIGHT_MAX, "description": "instruction id"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": queries.PAGE_LIMIT_MAX}
_OBJECT = {"type": "object"}


class _NodeWithLedger(Protocol):
    ledger: Ledger


def register(registry: MethodRegistry, node: _NodeWithLedger) -> None:
    """Add the settlement methods to `registry`; the ledger is read at call time."""
    register_instructions(registry, node)
    register_offerings(registry, node)


# --- settlement instructions ---------------------------------------------------------------------------


def register_instructions(registry: MethodRegistry, node: _NodeWithLedger) -> None:
    async def settlement_get(id: int) -> dict[str, Any]:
        try:
            return plain(queries.settlement_instruction(node.ledger, id))
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    async def settlement_list(wallet: str | None = None, identity: str | None = None, token: str | None = None,
                              status: str | None = None, from_height: int = 0, to_height: int | None = None,
                              after: int | None = None, limit: int = 100) -> dict[str, Any]:
        try:
            return plain(queries.settlement_instructions(
                node.ledger, wallet=bytes.fromhex(wallet) if wallet else None, identity=identity, token=token,
                status=status, from_height=from_height, to_height=to_height, after=after, limit=limit))
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    async def settlement_check(id: int, time_s: int | None = None) -> dict[str, Any]:
        try:
            return plain(queries.settlement_check(node.ledger, id, time_s=time_s))
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    registry.add(RpcMethod("settlement_get", "A settlement instruction: legs with their affirmations, settlement "
                           "type, expiry, status, and the last failed attempt (leg, code, reason).",
                           (Param("id", _INSTRUCTION),), _OBJECT, settlement_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("settlement_list", "Settlement instructions in ascending id, filtered by a wallet or an "
                           "identity taking part (sender, receiver, creator or venue), a token, the status and the "
                           "height of creation, paginated (`next` is the `after` of the next page).",
                           (Param("wallet", _HEX32, required=False),
                            Param("identity", _IDENTITY, required=False, description="any of its wallets"),
                            Param("token", _SYMBOL, required=False),
                            Param("status", {"type": "string", "enum": list(STATUSES)}, required=False),
                            Param("from_height", _HEIGHT, required=False), Param("to_height", _HEIGHT, required=False),
                            Param("after", _INSTRUCTION, required=False), Param("limit", _LIMIT, required=False)),
                           _OBJECT, settlement_list, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("settlement_check", "Dry run of a whole instruction: what settling it in the next block "
                           "would do (ok, or the first obstacle: the instruction's state or the first failing leg with "
                           "its code and reason), computed by the settlement's own code on a rolled-back state.",
                           (Param("id", _INSTRUCTION),
                            Param("time_s", {"type": "integer", "minimum": 0, "maximum": TIME_MAX_S}, required=False,
                                  description="block time to check at (default: the last block's)")),
                           _OBJECT, settlement_check, errors=(ErrorCode.NOT_FOUND,)))


# --- primary offerings (ledger/settlement/offerings.py) --------------------------------------------------

_OFFERING = {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$", "description": "offering id"}


def register_offerings(registry: MethodRegistry, node: _NodeWithLedger) -> None:
    """`offering_get`, `offering_list`, `offering_subscriptions`. Amounts (price, raise and investor
    limits, escrow, raised, units, paid, refunded) become decimal strings at the registry's boundary
    (`rpc_api.AMOUNT_FIELDS`)."""

    async def offering_get(id: str, identity: str | None = None) -> dict[str, Any]:
        try:
            return queries.offering(node.ledger, id, identity)
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    async def offering_list(token: str | None = None, status: str | None = None, after: str | None = None,
                            limit: int = 100) -> dict[str, Any]:
        return queries.offerings(node.ledger, token=token, status=status, after=after, limit=limit)

    async def offering_subscriptions(id: str, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        try:
            return queries.offering_subscriptions(node.ledger, id, after=after, limit=limit)
        except LedgerNotFound as exc:
            raise NotFound(str(exc)) from None

    registry.add(RpcMethod("offering_get", "A primary offering: terms (price per whole unit, raise and investor "
                           "limits, window, the issuer's cash wallet), status and totals; with an identity, its "
                           "subscription.",
                           (Param("id", _OFFERING), Param("identity", _IDENTITY, required=False)),
                           _OBJECT, offering_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("offering_list", "Primary offerings in ascending id, filtered by offered token and "
                           "status, paginated (`next` is the `after` of the next page).",
                           (Param("token", _SYMBOL, required=False),
                            Param("status", {"type": "string", "enum": list(OFFERING_STATUSES)}, required=False),
                            Param("after", _OFFERING, required=False), Param("limit", _LIMIT, required=False)),
                           _OBJECT, offering_list))
    registry.add(RpcMethod("offering_subscriptions", "An offering's subscriptions in ascending identity id: wallet, "
                           "escrow, status and, once closed, units, price paid and refund; paginated (`next` is the "
                           "`after` of the next page).",
                           (Param("id", _OFFERING), Param("after", _IDENTITY, required=False),
                            Param("limit", _LIMIT, required=False)),
                           _OBJECT, offering_subscriptions, errors=(ErrorCode.NOT_FOUND,)))


def plain(value: Any, field: str | None = None) -> Any:
    """JSON values: bytes as hex, tuples as lists, amounts as decimal strings, codes as "0x57"."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if field == "amount":
            return str(value)
        return f"0x{value:02x}" if field == "code" else value
    if isinstance(value, dict):
        return {k: plain(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
