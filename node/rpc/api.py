"""The node's JSON-RPC methods: each declared once, with its params' schemas, its handler and the
errors it may raise. The same declarations dispatch calls and generate `rpc.discover`.

Binary values (addresses, hashes, keys) travel as lower-case hex; every u64 ledger quantity
(amounts, balances, supplies, nonces, ...) as a decimal string, both ways: `jsonable` is the one
conversion, applied to every result and subscription payload (the registry's result encoder), and
the `amount` schema (`format: u64`) refuses a JSON number where an amount is due. docs/RPC.md,
"Numbers", says which fields and why the others stay numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ledger import Block, governance, queries
from ledger import NotFound as LedgerNotFound
from ledger.events import EVENT_KINDS
from ledger.kinds import ACTION_CLASSES, AMOUNT_MAX

from ..mempool.pool import MempoolRefusal
from . import (
    ErrorCode,
    MempoolRefused,
    MethodRegistry,
    NotFound,
    Param,
    RpcMethod,
    Timeout,
    Topic,
    TxRejected,
    console_methods,
    settlement_methods,
)
from .protocol import InvalidParams

if TYPE_CHECKING:
    from ledger import Ledger, Transaction

    from ..mempool.pool import Mempool
    from ..validator.evidence_pool import EvidencePool


class NodeApi(Protocol):
    """The narrow door the RPC methods use into the node (`node.service.Node` is one): the RPC
    depends on this, not on the node's module, so the dependency runs one way."""

    ledger: Ledger
    mempool: Mempool
    evidence: EvidencePool

    async def submit(self, raw: bytes) -> Transaction: ...

    def watch_tx(self, tx_hash: bytes) -> asyncio.Future[None]: ...

    def unwatch_tx(self, tx_hash: bytes, future: asyncio.Future[None]) -> None: ...

    def next_nonce(self, address: bytes) -> int: ...

    def status(self) -> dict[str, Any]: ...

    def describe_block(self, height: int) -> dict[str, Any]: ...

    def replaced(self, tx_hash: bytes) -> dict[str, Any] | None: ...

#: Longest a `tx_wait` may wait.
TX_WAIT_MS_MAX: int = 60_000

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes as lower-case hex"}
HEIGHT = {"type": "integer", "minimum": 0, "maximum": 2**62}
SYMBOL = {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9.\\-]{0,15}$"}
IDENTITY = {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$"}
ACTION_ID = IDENTITY
MEMBER = {"type": "string", "pattern": "^[A-Za-z0-9._\\-]{1,64}$"}
#: The API version `rpc.discover` reports (docs/RPC.md, "Changes in version 0.2.0").
API_VERSION: str = "0.2.0"
#: An amount in a param: a u64 as a decimal string, at least 1 (docs/RPC.md, "Numbers").
AMOUNT = {"title": "amount", "type": "string", "format": "u64", "pattern": "^(0|[1-9][0-9]{0,19})$",
          "minimum": 1, "maximum": AMOUNT_MAX,
          "description": 'a u64 ledger quantity as a decimal string, e.g. "1000" (never a JSON number)',
          "examples": ["1000", "18446744073709551615"]}
LIMIT = {"type": "integer", "minimum": 1, "maximum": queries.PAGE_LIMIT_MAX}
OBJECT = {"type": "object"}


#: Fields whose integers are u64 ledger quantities (ledger/kinds.py AMOUNT_MAX, ledger/tx.py
#: NONCE_MAX): in results, events, and decoded transaction bodies they are decimal strings. An
#: integer directly in a list under such a field (`tallies`, the amount of an `entitlements` pair)
#: is one too. tests/unit/node/test_rpc_amounts.py holds this list to the ledger's kinds.
AMOUNT_FIELDS: frozenset[str] = frozenset({
    # balances and supplies
    "amount", "balance", "frozen", "free", "frozen_amount", "total_supply",
    # rules
    "amount_max", "balance_max_per_identity", "supply_cap",
    # nonces
    "nonce", "next_nonce", "committed_nonce",
    # distributions and liquidations
    "rate_num", "rate_den", "units", "funded", "paid", "remaining", "entitlement", "entitlements",
    "distributed", "payout", "preference_per_unit", "cap_per_unit",
    # ballots
    "weight", "tallies",
    # primary offerings (ledger/settlement/offerings.py)
    "price", "raise_min", "raise_max", "investor_min", "investor_max", "subscribed", "raised", "allocated",
    "refunded",
})
#: Lists of positional records with amounts at these indexes, in transaction bodies: the share
#: classes of `liquidation.declare`, [token, seniority, preference_per_unit, participating,
#: cap_per_unit, convertible], and the legs of `settlement.create`, [token, from, to, amount].
#: (The `classes` of a `liquidation.declared` event are objects, with named fields.)
AMOUNT_POSITIONS: dict[str, frozenset[int]] = {"classes": frozenset({2, 4}),
                                               "legs": frozenset({3})}  # settlement legs [token, from, to, amount]


def jsonable(value: Any, field: str | None = None) -> Any:
    """What JSON can carry, recursively: bytes to lower-case hex, tuples to lists, and every integer
    of an `AMOUNT_FIELDS` field to its decimal string. The one conversion of the RPC boundary;
    idempotent (a string stays as it is)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value) if field in AMOUNT_FIELDS else value
    if isinstance(value, dict):
        return {k: jsonable(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        positions = AMOUNT_POSITIONS.get(field) if field is not None else None
        if positions is not None:
            return [[jsonable(v, "amount" if i in positions else None) for i, v in enumerate(item)]
                    if isinstance(item, (list, tuple)) else jsonable(item) for item in value]
        return [jsonable(v, field) for v in value]
    return value


def _not_found(exc: LedgerNotFound) -> NotFound:
    return NotFound(str(exc))


def build_registry(node: NodeApi) -> MethodRegistry:
    registry = MethodRegistry(title="secledger node", version=API_VERSION, result_encoder=jsonable)
    registry.add_schema("amount", AMOUNT)
    registry.extensions["x-amount-fields"] = {
        "fields": sorted(AMOUNT_FIELDS), "positions": {k: sorted(v) for k, v in AMOUNT_POSITIONS.items()},
        "description": "integers of these fields (in results, events and decoded bodies, at any depth, and "
                       "in lists directly under them; for `positions`, at those indexes of each record of "
                       "the list) are u64 decimal strings"}
    ledger = lambda: node.ledger  # noqa: E731 - read at call time

    # --- transactions ------------------------------------------------------------------------------

    async def tx_submit(tx: str) -> dict[str, Any]:
        try:
            raw = bytes.fromhex(tx)
        except ValueError:
            raise MempoolRefused("malformed: tx is not hex") from None
        try:
            admitted = await node.submit(raw)
        except MempoolRefusal as refusal:
            if refusal.outcome is not None:
                raise TxRejected(f"0x{refusal.outcome.code:02x}", refusal.outcome.reason) from None
            raise MempoolRefused(f"{refusal.reason}: {refusal}") from None
        return {"hash": admitted.hash.hex(), "status": "pending"}

    def settled(digest: bytes) -> dict[str, Any] | None:
        """The transaction's receipt once in a block, or how it was replaced; None while neither."""
        try:
            return jsonable(_receipt(queries.transaction(ledger(), digest)))
        except LedgerNotFound:
            replaced = node.replaced(digest)
            return None if replaced is None else jsonable(replaced)

    async def tx_get(hash: str) -> dict[str, Any]:
        digest = bytes.fromhex(hash)
        answer = settled(digest)
        if answer is not None:
            return answer
        if digest in node.mempool:
            return {"hash": hash, "status": "pending"}
        raise NotFound(f"transaction {hash}")

    async def tx_wait(hash: str, timeout_ms: int = 10_000) -> dict[str, Any]:
        digest = bytes.fromhex(hash)
        settling = node.watch_tx(digest)  # before the look, so no commit slips between the two
        try:
            answer = settled(digest)
            if answer is not None:
                return answer
            try:
                await asyncio.wait_for(settling, timeout_ms / 1000)
            except TimeoutError:
                raise Timeout(timeout_ms) from None
            answer = settled(digest)
            if answer is None:  # replaced, then forgotten at once (over seen_txs.REPLACED_MAX in one block)
                raise NotFound(f"transaction {hash}")
            return answer
        finally:
            node.unwatch_tx(digest, settling)

    registry.add(RpcMethod("tx_submit", "Submit a signed transaction (hex of its canonical bytes).",
                           (Param("tx", {"type": "string", "pattern": "^(?:[0-9a-f]{2})+$", "maxLength": 40_000},
                                  description="signed transaction bytes, hex"),),
                           {"type": "object"}, tx_submit, write=True,
                           errors=(ErrorCode.TX_REJECTED, ErrorCode.MEMPOOL_REFUSED)))
    registry.add(RpcMethod("tx_get", "A transaction's status: pending, committed or rejected (with reason), or "
                           "replaced (another transaction of its signer and nonce committed: `replaced_by`).",
                           (Param("hash", HEX32),), OBJECT, tx_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("tx_wait", "Wait until a transaction is in a block or replaced, or the timeout passes.",
                           (Param("hash", HEX32),
                            Param("timeout_ms", {"type": "integer", "minimum": 1, "maximum": TX_WAIT_MS_MAX},
                                  required=False)),
                           OBJECT, tx_wait, errors=(ErrorCode.TIMEOUT, ErrorCode.NOT_FOUND)))

    # --- chain ---------------------------------------------------------------------------------------

    async def chain_status() -> dict[str, Any]:
        return jsonable(node.status())

    async def block_get(height: int) -> dict[str, Any]:
        try:
            return jsonable(node.describe_block(height))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def validators_list(height: int | None = None) -> list[dict[str, Any]]:
        try:
            return jsonable(queries.validators_at(ledger(), height))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def evidence_list() -> list[dict[str, Any]]:
        return node.evidence.describe()

    async def account_nonce(address: str) -> dict[str, Any]:
        return {"address": address, "next_nonce": node.next_nonce(bytes.fromhex(address)),
                "committed_nonce": queries.nonce(ledger(), bytes.fromhex(address))}

    registry.add(RpcMethod("chain_status", "Height, last block, state root, first block held (history_from), peers and sync state of this node.",
                           (), OBJECT, chain_status))
    registry.add(RpcMethod("block_get", "A committed block with its commit certificate.",
                           (Param("height", HEIGHT),), OBJECT, block_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("validators_list", "The validator set effective at a height (default: the next "
                           "block's), ascending by key; heights 1 to the tip + 2 are decided.",
                           (Param("height", {**HEIGHT, "minimum": 1}, required=False),),
                           {"type": "array"}, validators_list, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("evidence_list", "Evidence of validators that signed conflicting messages.", (),
                           {"type": "array"}, evidence_list))
    registry.add(RpcMethod("account_nonce", "The next nonce an account should sign with (pending included).",
                           (Param("address", HEX32),), OBJECT, account_nonce))

    # --- tokens, identities, events ------------------------------------------------------------------

    async def token_get(token: str) -> dict[str, Any]:
        try:
            return jsonable(queries.token_info(ledger(), token))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def token_balance(token: str, address: str, height: int | None = None) -> dict[str, Any]:
        try:
            return jsonable(queries.balance(ledger(), token, bytes.fromhex(address), height))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def token_holders(token: str, height: int | None = None, after: str | None = None,
                            limit: int = 100) -> dict[str, Any]:
        try:
            return jsonable(queries.holders(ledger(), token, height=height, after=after, limit=limit))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def identity_get(identity: str | None = None, address: str | None = None) -> dict[str, Any]:
        if identity is None:
            if address is None:
                raise InvalidParams("identity", "give an identity or an address")
            identity = queries.wallet_identity(ledger(), bytes.fromhex(address))
            if identity is None:
                raise NotFound(f"no identity owns wallet {address}")
        try:
            return jsonable(queries.identity(ledger(), identity))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def events_query(token: str | None = None, address: str | None = None, kind: str | None = None,
                           from_height: int = 0, to_height: int | None = None, after: str | None = None,
                           limit: int = 100, identity: str | None = None) -> dict[str, Any]:
        try:
            page = queries.events(ledger(), token=token, address=bytes.fromhex(address) if address else None,
                                  kind=kind, from_height=from_height, to_height=to_height,
                                  after=bytes.fromhex(after) if after else None, limit=limit, identity=identity)
        except LedgerNotFound as exc:
            raise _not_found(exc) from None
        return jsonable(page)

    async def identity_history(identity: str, kind: str | None = None, from_height: int = 0,
                               to_height: int | None = None, after: str | None = None,
                               limit: int = 100) -> dict[str, Any]:
        try:
            page = queries.identity_history(ledger(), identity, kind=kind, from_height=from_height,
                                            to_height=to_height, after=bytes.fromhex(after) if after else None,
                                            limit=limit)
        except LedgerNotFound as exc:
            raise _not_found(exc) from None
        return jsonable(page)

    async def compliance_check(token: str, sender: str, receiver: str, amount: str) -> dict[str, Any]:
        outcome = ledger().compliance_check(token, bytes.fromhex(sender), bytes.fromhex(receiver), int(amount))
        return {"ok": outcome.ok, "code": f"0x{outcome.code:02x}", "reason": outcome.reason}

    registry.add(RpcMethod("token_get", "A token: terms, rules, agents, supply and holder count.",
                           (Param("token", SYMBOL),), OBJECT, token_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("token_balance", "A wallet's balance, now (with frozen and free parts) or at a height.",
                           (Param("token", SYMBOL), Param("address", HEX32), Param("height", HEIGHT, required=False)),
                           OBJECT, token_balance, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("token_holders", "Holders by identity with balances, now or at a height, paginated.",
                           (Param("token", SYMBOL), Param("height", HEIGHT, required=False),
                            Param("after", IDENTITY, required=False), Param("limit", LIMIT, required=False)),
                           OBJECT, token_holders, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("identity_get", "An identity's wallets and claims (by id, or by one of its wallets).",
                           (Param("identity", IDENTITY, required=False), Param("address", HEX32, required=False)),
                           OBJECT, identity_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("events_query", "Events filtered by token, address, kind and height range, paginated.",
                           (Param("token", SYMBOL, required=False), Param("address", HEX32, required=False),
                            Param("kind", {"type": "string", "enum": list(EVENT_KINDS)}, required=False),
                            Param("from_height", HEIGHT, required=False), Param("to_height", HEIGHT, required=False),
                            Param("after", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, required=False),
                            Param("limit", LIMIT, required=False),
                            Param("identity", IDENTITY, required=False,
                                  description="only events that concern this identity (see identity_history)")),
                           OBJECT, events_query, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("identity_history", "An identity's trail, oldest first: its registration, wallets and "
                           "claims, its wallets' transfers, freezes and recoveries, payments to it, and refused "
                           "transactions naming it or its wallets; paginated like events_query.",
                           (Param("identity", IDENTITY),
                            Param("kind", {"type": "string", "enum": list(EVENT_KINDS)}, required=False),
                            Param("from_height", HEIGHT, required=False), Param("to_height", HEIGHT, required=False),
                            Param("after", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, required=False),
                            Param("limit", LIMIT, required=False)),
                           OBJECT, identity_history, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("compliance_check", "Dry run of a transfer: the exact code execution would give.",
                           (Param("token", SYMBOL), Param("sender", HEX32), Param("receiver", HEX32),
                            Param("amount", AMOUNT)), OBJECT, compliance_check))

    # --- corporate actions -----------------------------------------------------------------------------

    async def token_documents(token: str) -> list[dict[str, Any]]:
        try:
            return jsonable(queries.documents(ledger(), token))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def distribution_get(id: str, identity: str | None = None) -> dict[str, Any]:
        try:
            return jsonable(queries.distribution(ledger(), id, identity))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def ballot_get(id: str) -> dict[str, Any]:
        try:
            return jsonable(queries.ballot(ledger(), id))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    registry.add(RpcMethod("token_documents", "A token's current documents (name, URI, content hash).",
                           (Param("token", SYMBOL),), {"type": "array"}, token_documents,
                           errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("distribution_get", "A distribution or liquidation: terms, funding, paid so far; "
                           "with an identity, its entitlement.", (Param("id", ACTION_ID),
                                                                  Param("identity", IDENTITY, required=False)),
                           OBJECT, distribution_get, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("ballot_get", "A ballot: question, options, window and running tallies.",
                           (Param("id", ACTION_ID),), OBJECT, ballot_get, errors=(ErrorCode.NOT_FOUND,)))

    # --- consortium governance (docs/GOVERNANCE.md) ------------------------------------------------------

    async def gov_proposals(**filters: Any) -> dict[str, Any]:
        # `class` is a Python keyword, hence the keyword arguments
        return jsonable(queries.gov_proposals(
            ledger(), status=filters.get("status"), proposer=filters.get("proposer"),
            action_class=filters.get("class"), after=filters.get("after"), limit=filters.get("limit", 100)))

    async def gov_proposal(id: int) -> dict[str, Any]:
        try:
            return jsonable(queries.gov_proposal(ledger(), id))
        except LedgerNotFound as exc:
            raise _not_found(exc) from None

    async def gov_members() -> dict[str, Any]:
        return jsonable(queries.gov_members(ledger()))

    async def chain_params() -> dict[str, Any]:
        return queries.chain_params(ledger())

    proposal_id = {"type": "integer", "minimum": 1, "maximum": 2**62}
    registry.add(RpcMethod("gov_proposals", "Governance proposals in ascending id, filtered by status, proposing "
                           "member and class, paginated (`next` is the `after` of the next page).",
                           (Param("status", {"type": "string", "enum": list(governance.STATUSES)}, required=False),
                            Param("proposer", MEMBER, required=False, description="member id"),
                            Param("class", {"type": "string", "enum": list(ACTION_CLASSES)}, required=False),
                            Param("after", proposal_id, required=False), Param("limit", LIMIT, required=False)),
                           OBJECT, gov_proposals))
    registry.add(RpcMethod("gov_proposal", "One governance proposal with its actions, status, tally and votes.",
                           (Param("id", proposal_id),), OBJECT, gov_proposal, errors=(ErrorCode.NOT_FOUND,)))
    registry.add(RpcMethod("gov_members", "The consortium's current members and the thresholds per class.", (),
                           OBJECT, gov_members))
    registry.add(RpcMethod("chain_params", "The chain parameters: block limits and consensus timeouts.", (),
                           OBJECT, chain_params))

    # --- subscriptions -------------------------------------------------------------------------------

    registry.add_topic(Topic("blocks", "Every committed block: height, hash, state root, time, tx count. "
                             "Resumable: subscribe with from_height.",
                             {"type": "object", "properties": {}, "additionalProperties": False},
                             {"type": "object"}, history=BlocksHistory(ledger)))
    registry.add_topic(Topic("events", "Events of committed blocks, filtered by token, address and kind, each "
                             "as events_query gives it (cursor included). Resumable: subscribe with from_height.",
                             {"type": "object", "properties": {
                                 "token": SYMBOL, "address": HEX32,
                                 "kind": {"type": "string", "enum": list(EVENT_KINDS)}},
                              "additionalProperties": False},
                             {"type": "object"}, history=EventsHistory(ledger)))
    console_methods.register(registry, node)  # the regulator's console's read-only methods (docs/CONSOLE.md)
    settlement_methods.register(registry, node)  # settlement instructions and offerings (docs/SETTLEMENT.md)
    return registry


#: Heights of blocks, and events, one replay step reads before it yields to the event loop.
REPLAY_PAGE_BLOCKS: int = 100
REPLAY_PAGE_EVENTS: int = 500


class _CommittedHistory:
    """What a topic's replay needs of the ledger besides its pages: the tip and the first height held."""

    def __init__(self, ledger: Callable[[], Ledger]) -> None:
        self._ledger = ledger

    def tip(self) -> int:
        return self._ledger().tip.height

    def first_height(self) -> int:
        return self._ledger().history_from


class BlocksHistory(_CommittedHistory):
    """The `blocks` topic's payloads of committed heights, for `subscribe` with `from_height`."""

    def page(self, filter: dict[str, Any], from_height: int, to_height: int,
             after: int | None) -> tuple[list[Any], int | None]:
        start = from_height if after is None else after
        end = min(to_height, start + REPLAY_PAGE_BLOCKS - 1)
        return [block_payload(self._ledger(), h) for h in range(start, end + 1)], (end + 1 if end < to_height else None)


class EventsHistory(_CommittedHistory):
    """The `events` topic's payloads of committed heights, as `events_query` pages them."""

    def page(self, filter: dict[str, Any], from_height: int, to_height: int,
             after: bytes | None) -> tuple[list[Any], bytes | None]:
        # Every filter the topic declares, as events_query takes it, so the replay matches what
        # `event_matches` lets through live (an `identity` filter too, where the topic has one).
        extra = {"identity": filter["identity"]} if "identity" in filter else {}
        page = queries.events(self._ledger(), token=filter.get("token"),
                              address=bytes.fromhex(filter["address"]) if "address" in filter else None,
                              kind=filter.get("kind"), from_height=from_height, to_height=to_height, after=after,
                              limit=REPLAY_PAGE_EVENTS, **extra)
        return jsonable(page["events"]), page["next"]


def block_payload(ledger: Ledger, height: int) -> dict[str, Any]:
    """A `blocks` notification of a committed height, as the node publishes it at commit."""
    raw, _ = queries.block(ledger, height)
    block = Block.decode(raw)
    return jsonable({"height": height, "hash": block.hash, "state_root": queries.state_root_at(ledger, height),
                     "time_ms": block.header.time_ms, "txs": len(block.txs)})


def event_matches(filter: dict[str, Any], event: dict[str, Any]) -> bool:
    if "token" in filter and event.get("token") != filter["token"]:
        return False
    if "kind" in filter and event.get("kind") != filter["kind"]:
        return False
    return not ("address" in filter and filter["address"] not in event.get("addresses", ()))


def _receipt(tx: dict[str, Any]) -> dict[str, Any]:
    return {**tx, "code": f"0x{tx['code']:02x}"}
