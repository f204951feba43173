"""The read side: what the RPC, the CLI and regulators ask of a ledger.

Every answer is plain data (dicts, lists, ints, str, bytes), read in one LMDB read transaction so it
is consistent with a single height. History (balances and holders at a past height) comes from
versioned keys, one seek per holder, never from a replay.

The indexes (by tx hash, event kind, token, address and identity, and wallet history) are
projections that may trail the tip by a few blocks (`projections`; the node's policy: docs/NODE.md). Queries do
not wait for it: what lies above its position is read from the write side (the blocks' receipts,
events and wallet changes), so every answer is the tip's, projected or not.
"""

from __future__ import annotations

from typing import Any

from . import governance, layout, projections, trail
from .chain import Ledger
from .compliance import valid_claim
from .errors import NotFound
from .events import EVENT_KINDS
from .state import decode_value
from .store import StoreHistory, height_key, unpack_event_key

#: Most items one page of holders or events may hold.
PAGE_LIMIT_MAX: int = 1000


def _limit(limit: int) -> int:
    return max(1, min(limit, PAGE_LIMIT_MAX))


def _check_height(ledger: Ledger, height: int | None) -> int:
    if height is None:
        return ledger.tip.height
    if not 0 <= height <= ledger.tip.height:
        raise NotFound(f"height {height} is not in [0, {ledger.tip.height}]")
    ledger.check_history(height, state=True)  # a node that joined by state sync: PrunedHistory
    return height


def chain_status(ledger: Ledger) -> dict[str, Any]:
    tip = ledger.tip
    return {"chain_id": ledger.chain_id, "height": tip.height, "block_hash": tip.block_hash,
            "time_ms": tip.time_ms, "state_root": tip.state_root, "genesis_hash": ledger.genesis.hash,
            # the first height whose block this node holds: above 1 once it joined by state sync
            "history_from": ledger.history_from}


def token_info(ledger: Ledger, symbol: str) -> dict[str, Any]:
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        token = state.get(layout.token(symbol))
        if token is None:
            raise NotFound(f"no token {symbol!r}")
        total, holders = state.get(layout.supply(symbol))
        agents = [
            {"address": key[len(layout.agent_prefix(symbol)):], "roles": list(decode_value(raw))}
            for key, raw in ledger.store.iter_prefix(txn, "state", layout.agent_prefix(symbol))
        ]
    return {"symbol": symbol, "name": token["name"], "decimals": token["decimals"], "owner": token["owner"],
            "paused": token["paused"], "rules": _plain(token["rules"]), "created_at_s": token["created_at_s"],
            "total_supply": total, "holder_count": holders, "agents": agents}


def balance(ledger: Ledger, symbol: str, address: bytes, height: int | None = None) -> dict[str, Any]:
    """Now: balance, frozen part, free part and the address freeze. At a past height: the balance."""
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        if state.get(layout.token(symbol)) is None:
            raise NotFound(f"no token {symbol!r}")
        if height is None:
            amount, frozen, flag = state.get(layout.balance(symbol, address), (0, 0, False))
            return {"token": symbol, "address": address, "height": ledger.tip.height, "balance": amount,
                    "frozen": frozen, "free": amount - frozen, "address_frozen": flag}
        at = _check_height(ledger, height)
        prefix = symbol.encode() + layout.SEP + address
        amount = ledger.store.balance_at(txn, "hist_wallet", prefix, at)
        return {"token": symbol, "address": address, "height": at, "balance": amount}


def holders(ledger: Ledger, symbol: str, *, height: int | None = None, after: str | None = None,
            limit: int = 100) -> dict[str, Any]:
    """Holders by identity (ascending id), with their balance across wallets; `next` pages on."""
    limit = _limit(limit)
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        if state.get(layout.token(symbol)) is None:
            raise NotFound(f"no token {symbol!r}")
        if height is None:
            at = ledger.tip.height
            items = _holders_now(ledger, txn, symbol, after, limit + 1)
        else:
            at = _check_height(ledger, height)
            items = _holders_at(ledger, txn, symbol, at, after, limit + 1)
    page, more = items[:limit], len(items) > limit
    return {"token": symbol, "height": at, "holders": page, "next": page[-1]["identity"] if more else None}


def _holders_now(ledger: Ledger, txn: Any, symbol: str, after: str | None, count: int) -> list[dict[str, Any]]:
    prefix = layout.holding_prefix(symbol)
    start = prefix + after.encode() + b"\x01" if after else None
    out = []
    for key, raw in ledger.store.iter_prefix(txn, "state", prefix, start):
        out.append({"identity": key[len(prefix):].decode(), "balance": decode_value(raw)[0]})
        if len(out) == count:
            break
    return out


def _holders_at(ledger: Ledger, txn: Any, symbol: str, height: int, after: str | None,
                count: int) -> list[dict[str, Any]]:
    history = StoreHistory(ledger.store, txn)
    return [{"identity": i, "balance": b} for i, b in history.holders_at(symbol, height, after=after, count=count)]


def identity(ledger: Ledger, identity_id: str) -> dict[str, Any]:
    now_s = ledger.tip.time_ms // 1000
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        wallets = state.get(layout.identity(identity_id))
        if wallets is None:
            raise NotFound(f"no identity {identity_id!r}")
        claims = []
        prefix = layout.claim_prefix(identity_id)
        for key, raw in ledger.store.iter_prefix(txn, "state", prefix):
            topic = key[len(prefix):].decode()
            value, issuer, expires_at = decode_value(raw)
            claims.append({"topic": topic, "value": value, "issuer": issuer, "expires_at": expires_at,
                           "valid": valid_claim(state, identity_id, topic, now_s) is not None})
    return {"identity": identity_id, "wallets": list(wallets), "claims": claims}


def wallet_identity(ledger: Ledger, address: bytes) -> str | None:
    with ledger.store.read() as txn:
        return ledger.store.state_over(txn).get(layout.wallet(address))


def accounts_with_role(ledger: Ledger, role: str) -> list[bytes]:
    with ledger.store.read() as txn:
        prefix = layout.role_prefix(role)
        return [key[len(prefix):] for key, _ in ledger.store.iter_prefix(txn, "state", prefix)]


def nonce(ledger: Ledger, address: bytes) -> int:
    return ledger.next_nonce(address)


def transaction(ledger: Ledger, tx_hash: bytes) -> dict[str, Any]:
    """The committed transaction's receipt and events; `NotFound` if it is not in a block."""
    dbs = ledger.store.dbs
    key = ledger.tx_location(tx_hash)  # before the read: a block projected meanwhile is in its snapshot
    if key is None:
        raise NotFound(f"no committed transaction {tx_hash.hex()}")
    with ledger.store.read() as txn:
        receipt = decode_value(txn.get(key, db=dbs["receipts"]))
        events = [_event(raw) for _, raw in ledger.store.iter_prefix(txn, "events", key)]
    height, index = int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big")
    return {"hash": tx_hash, "height": height, "index": index, "kind": receipt["kind"],
            "signer": receipt["signer"], "nonce": receipt["nonce"], "code": receipt["code"],
            "reason": receipt["reason"], "status": "committed" if receipt["code"] == 0x51 else "rejected",
            "events": events}


def events(ledger: Ledger, *, token: str | None = None, address: bytes | None = None,
           kind: str | None = None, from_height: int = 0, to_height: int | None = None,
           after: bytes | None = None, limit: int = 100, identity: str | None = None) -> dict[str, Any]:
    """Events matching every given filter, oldest first. The most selective index drives the scan
    (identity, then token, then address, then kind); `after` is the `next` cursor of the previous
    page. `identity`: the events that concern it (its wallets', its claims', ...: see `trail`)."""
    if kind is not None and kind not in EVENT_KINDS:
        raise NotFound(f"no event kind {kind!r}")
    limit = _limit(limit)
    top = ledger.tip.height if to_height is None else to_height
    if identity is not None:
        index, prefix = "ev_identity", trail.index_prefix(identity)
    elif token is not None:
        index, prefix = "ev_token", token.encode() + layout.SEP
    elif address is not None:
        index, prefix = "ev_address", address
    elif kind is not None:
        index, prefix = "ev_kind", kind.encode() + layout.SEP
    else:
        index, prefix = "events", b""
    first = after + b"\x00" if after is not None else height_key(max(from_height, 0))
    out: list[dict[str, Any]] = []
    more = False
    with ledger.store.read() as txn:
        for ekey, raw in _matching_events(ledger, txn, index, prefix, first, top, identity):
            event = _event(raw)
            if (kind is not None and event["kind"] != kind) or (token is not None and event["token"] != token) \
                    or (address is not None and address not in event["addresses"]):
                continue
            if len(out) == limit:
                more = True
                break
            event["cursor"] = ekey
            out.append(event)
    return {"events": out, "next": out[-1]["cursor"] if more else None}


def _matching_events(ledger: Ledger, txn: Any, index: str, prefix: bytes, first: bytes, top: int,
                     identity: str | None) -> Any:
    """(event key, stored event) from `first` up to height `top`, in log order: through `index`
    up to the projector's position, and above it (the blocks not projected yet) from the events
    themselves (`projections.Tail`). The caller checks the kind, token and address filters."""
    tail = projections.Tail(ledger.store, txn, ledger.chain_id)
    indexed_top = top if index == "events" else min(top, tail.projected)
    events_db = ledger.store.dbs["events"]
    for key, raw in ledger.store.iter_prefix(txn, index, prefix, prefix + first):
        ekey = key[len(prefix):]
        if unpack_event_key(ekey)[0] > indexed_top:
            break
        yield ekey, (raw if index == "events" else txn.get(ekey, db=events_db))
    if indexed_top < top:
        yield from tail.events(first, top, identity)


def identity_history(ledger: Ledger, identity_id: str, *, kind: str | None = None, from_height: int = 0,
                     to_height: int | None = None, after: bytes | None = None, limit: int = 100) -> dict[str, Any]:
    """An identity's trail, oldest first: every event that concerns it (`trail`): its registration,
    wallets and claims, its wallets' transfers, issues, redemptions, freezes and recoveries, the
    payments made to it, and the refused transactions that named it or one of its wallets.
    Paged like `events`. `NotFound` if the identity is not registered."""
    with ledger.store.read() as txn:
        if ledger.store.state_over(txn).get(layout.identity(identity_id)) is None:
            raise NotFound(f"no identity {identity_id!r}")
    page = events(ledger, identity=identity_id, kind=kind, from_height=from_height, to_height=to_height,
                  after=after, limit=limit)
    return {"identity": identity_id, **page}


def block(ledger: Ledger, height: int) -> tuple[bytes, bytes]:
    """(encoded block, commit certificate) at `height`."""
    with ledger.store.read() as txn:
        raw = txn.get(height_key(height), db=ledger.store.dbs["blocks"])
        cert = txn.get(height_key(height), db=ledger.store.dbs["certs"])
    if raw is None or cert is None:
        ledger.check_history(height)  # below a state sync's snapshot: PrunedHistory, which says so
        raise NotFound(f"no block at height {height}")
    return raw, cert


def state_root_at(ledger: Ledger, height: int) -> bytes:
    with ledger.store.read() as txn:
        root = txn.get(height_key(height), db=ledger.store.dbs["roots"])
    if root is None:
        ledger.check_history(height, state=True)
        raise NotFound(f"no state root at height {height}")
    return root


def _event(raw: bytes) -> dict[str, Any]:
    event = decode_value(raw)
    return {**event, "addresses": list(event["addresses"]), "data": _plain(event["data"])}


def _plain(value: Any) -> Any:
    """Tuples (as state decoding gives them) back to lists, for callers that expect JSON shapes."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def documents(ledger: Ledger, symbol: str) -> list[dict[str, Any]]:
    """The token's current documents, by name."""
    from .corporate.documents import document_prefix

    prefix = document_prefix(symbol)
    with ledger.store.read() as txn:
        if ledger.store.state_over(txn).get(layout.token(symbol)) is None:
            raise NotFound(f"no token {symbol!r}")
        out = []
        for key, raw in ledger.store.iter_prefix(txn, "state", prefix):
            uri, content_hash, updated_at_s = decode_value(raw)
            out.append({"name": key[len(prefix):].decode(), "uri": uri, "hash": content_hash,
                        "updated_at_s": updated_at_s})
    return out


def distribution(ledger: Ledger, action_id: str, identity_id: str | None = None) -> dict[str, Any]:
    """A distribution (or liquidation): terms, funding, paid so far; with `identity_id`, that
    identity's entitlement and whether it was paid."""
    from .corporate.distributions import distribution_key, paid_key, table_key

    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        record = state.get(distribution_key(action_id))
        if record is None:
            raise NotFound(f"no distribution {action_id!r}")
        out = {"id": action_id, **_plain(record), "remaining": record["funded"] - record["paid"]}
        if identity_id is not None:
            if record["kind"] == "table":
                entitled = state.get(table_key(action_id, identity_id), 0)
            else:
                held = state.history.holding_at(record["tokens"][0], identity_id, record["record_height"])
                entitled = held * record["rate_num"] // record["rate_den"]
            out["identity"] = {"identity": identity_id, "entitlement": entitled,
                               "paid": state.get(paid_key(action_id, identity_id))}
    return out


def ballot(ledger: Ledger, action_id: str) -> dict[str, Any]:
    from .corporate.ballots import ballot_key

    with ledger.store.read() as txn:
        record = ledger.store.state_over(txn).get(ballot_key(action_id))
    if record is None:
        raise NotFound(f"no ballot {action_id!r}")
    return {"id": action_id, **_plain(record)}


# --- primary offerings (docs/SETTLEMENT.md, "Primary offerings") ------------------------------------


def offering(ledger: Ledger, offering_id: str, identity_id: str | None = None) -> dict[str, Any]:
    """An offering: its terms, status and totals (subscribers and escrow; once closed, how many
    were excluded, the cash raised and the units issued); with `identity_id`, that identity's
    subscription (null if it has none)."""
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        record = state.get(layout.offering(offering_id))
        if record is None:
            raise NotFound(f"no offering {offering_id!r}")
        out = {"id": offering_id, **_plain(record)}
        if identity_id is not None:
            sub = state.get(layout.offering_subscription(offering_id, identity_id))
            out["subscription"] = None if sub is None else {"identity": identity_id, **_plain(sub)}
    return out


def offerings(ledger: Ledger, *, token: str | None = None, status: str | None = None, after: str | None = None,
              limit: int = 100) -> dict[str, Any]:
    """Offerings in ascending id, filtered by offered token and status; `next` is the id to pass as
    `after` for the next page (null on the last page)."""
    from .settlement.offerings import STATUSES

    if status is not None and status not in STATUSES:
        raise NotFound(f"no offering status {status!r}")
    limit = _limit(limit)
    start = layout.offering(after) + layout.SEP if after is not None else None
    out: list[dict[str, Any]] = []
    more = False
    with ledger.store.read() as txn:
        for key, raw in ledger.store.iter_prefix(txn, "state", layout.OFFERING_PREFIX, start):
            record = decode_value(raw)
            if (token is not None and record["token"] != token) or (status is not None and record["status"] != status):
                continue
            if len(out) == limit:
                more = True
                break
            out.append({"id": key[len(layout.OFFERING_PREFIX):].decode(), **_plain(record)})
    return {"offerings": out, "next": out[-1]["id"] if more else None}


def offering_subscriptions(ledger: Ledger, offering_id: str, *, after: str | None = None,
                           limit: int = 100) -> dict[str, Any]:
    """An offering's subscriptions in ascending identity id: wallet, amount escrowed, status
    (pending, allocated, excluded, refunded) and, once closed, units, price paid and refund."""
    limit = _limit(limit)
    prefix = layout.offering_subscription_prefix(offering_id)
    start = prefix + after.encode() + layout.SEP if after is not None else None
    out: list[dict[str, Any]] = []
    with ledger.store.read() as txn:
        if ledger.store.state_over(txn).get(layout.offering(offering_id)) is None:
            raise NotFound(f"no offering {offering_id!r}")
        for key, raw in ledger.store.iter_prefix(txn, "state", prefix, start):
            out.append({"identity": key[len(prefix):].decode(), **_plain(decode_value(raw))})
            if len(out) == limit + 1:
                break
    page, more = out[:limit], len(out) > limit
    return {"id": offering_id, "subscriptions": page, "next": page[-1]["identity"] if more else None}


# --- consortium governance (docs/GOVERNANCE.md) ----------------------------------------------------


def _validator_entries(ledger: Ledger, txn: Any, height: int) -> tuple[Any, ...]:
    """The set effective at `height`: one cursor seek to the latest snapshot at or below it."""
    cursor = txn.cursor(db=ledger.store.dbs["state"])
    target = layout.gov_valset(height + 1)
    found = cursor.prev() if cursor.set_range(target) else cursor.last()  # the greatest key below target
    if found and cursor.key().startswith(layout.GOV_VALSET_PREFIX):
        return decode_value(cursor.value())["validators"]
    if txn.get(layout.gov_valset_latest(), db=ledger.store.dbs["state"]) is None:
        # a store written before governance kept its validator set in the state: the genesis set
        return tuple(sorted((v.validator_key, v.node_key, v.power, "", v.name) for v in ledger.genesis.validators))
    raise AssertionError(f"no validator set at or below height {height}")  # the genesis one is at 1


def _validators_height(ledger: Ledger, height: int | None) -> int:
    """Heights 1 to tip + 2 (the sets scheduled by committed blocks); default: the next height's."""
    top = ledger.tip.height + 2
    if height is None:
        return ledger.tip.height + 1
    if not 1 <= height <= top:
        raise NotFound(f"no validator set decided for height {height}: heights 1 to {top} are")
    return height


def validators_at(ledger: Ledger, height: int | None = None) -> list[dict[str, Any]]:
    """The validator set effective at `height` (default: the next block's), ascending by key.
    A set changed by a proposal executed in block H is effective from H + 2, so tip + 1 and tip + 2
    are known already."""
    at = _validators_height(ledger, height)
    with ledger.store.read() as txn:
        entries = _validator_entries(ledger, txn, at)
    return [{"validator_key": k, "node_key": n, "power": p, "address": a, "name": name} for k, n, p, a, name in entries]


def validators_hash(ledger: Ledger, height: int | None = None) -> bytes:
    """`governance.validators_hash` of the set effective at `height`."""
    at = _validators_height(ledger, height)
    with ledger.store.read() as txn:
        return governance.validators_hash(_validator_entries(ledger, txn, at))


def chain_params(ledger: Ledger) -> dict[str, int]:
    """Block limits and consensus timeouts as the chain's state holds them now."""
    with ledger.store.read() as txn:
        return governance.chain_params(ledger.store.state_over(txn))


def voted_params(ledger: Ledger) -> dict[str, int]:
    """The chain parameters the members have set by proposals (the others are defaults)."""
    with ledger.store.read() as txn:
        return governance.voted_params(ledger.store.state_over(txn))


def gov_members(ledger: Ledger) -> dict[str, Any]:
    """The current members (ascending id) and the thresholds; no members: an empty list and null."""
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        members = []
        for member_id in state.get(layout.gov_members(), ()):
            record = state.get(layout.gov_member(member_id))
            members.append({"id": member_id, "name": record["name"], "keys": list(record["keys"]),
                            "since_height": record["since_height"]})
        thresholds = state.get(layout.gov_thresholds())
    return {"members": members,
            "thresholds": None if thresholds is None else {c: list(f) for c, f in sorted(thresholds.items())}}


def _proposal_view(state: Any, proposal_id: int, proposal: dict[str, Any], next_height: int, *,
                   votes: bool) -> dict[str, Any]:
    approvals, rejections, members = governance.tally(state, proposal)
    failure = proposal["failure"]
    view = {
        "id": proposal_id, "proposer": proposal["proposer"], "proposer_key": proposal["proposer_key"],
        "class": proposal["class"], "actions": _plain(proposal["actions"]),
        "expires_at_height": proposal["expires_at_height"], "created_height": proposal["created_height"],
        "status": governance.status_at(proposal, next_height), "closed_height": proposal["closed_height"] or None,
        "failure": {"code": f"0x{failure[0]:02x}", "reason": failure[1], "action": failure[2]} if failure else None,
        "approvals": approvals, "rejections": rejections, "members": members,
        "threshold": list(governance.threshold(state, proposal["class"])),
    }
    if votes:
        view["votes"] = []
        for member_id in sorted(proposal["votes"]):
            vote, height, serial = proposal["votes"][member_id]
            member = state.get(layout.gov_member(member_id))
            view["votes"].append({"member": member_id, "vote": vote, "height": height,
                                  "counts": member is not None and member["serial"] == serial})
    return view


def gov_proposals(ledger: Ledger, *, status: str | None = None, proposer: str | None = None,
                  action_class: str | None = None, after: int | None = None, limit: int = 100) -> dict[str, Any]:
    """Proposals in ascending id, filtered by status, proposing member and class; `next` is the
    id to pass as `after` for the next page (null on the last page)."""
    limit = _limit(limit)
    next_height = ledger.tip.height + 1
    start = layout.gov_proposal(after + 1) if after is not None else None
    out: list[dict[str, Any]] = []
    more = False
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        for key, raw in ledger.store.iter_prefix(txn, "state", layout.GOV_PROPOSAL_PREFIX, start):
            proposal = decode_value(raw)
            proposal_id = int.from_bytes(key[len(layout.GOV_PROPOSAL_PREFIX):], "big")
            if (status is not None and governance.status_at(proposal, next_height) != status) \
                    or (proposer is not None and proposal["proposer"] != proposer) \
                    or (action_class is not None and proposal["class"] != action_class):
                continue
            if len(out) == limit:
                more = True
                break
            out.append(_proposal_view(state, proposal_id, proposal, next_height, votes=False))
    return {"proposals": out, "next": out[-1]["id"] if more else None}


def gov_proposal(ledger: Ledger, proposal_id: int) -> dict[str, Any]:
    """One proposal with every member's vote (`counts`: whether it counts toward the threshold now)."""
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        proposal = state.get(layout.gov_proposal(proposal_id))
        if proposal is None:
            raise NotFound(f"no proposal {proposal_id}")
        return _proposal_view(state, proposal_id, proposal, ledger.tip.height + 1, votes=True)


# --- settlement instructions (docs/SETTLEMENT.md) -----------------------------------------------------


def settlement_instruction(ledger: Ledger, instruction_id: int) -> dict[str, Any]:
    """One instruction: terms, legs with their affirmations, status and last failure."""
    from .settlement.instructions import describe

    with ledger.store.read() as txn:
        record = ledger.store.state_over(txn).get(layout.settle_instruction(instruction_id))
    if record is None:
        raise NotFound(f"no settlement instruction {instruction_id}")
    return _plain(describe(instruction_id, record, ledger.tip.time_ms // 1000))


def settlement_instructions(ledger: Ledger, *, wallet: bytes | None = None, identity: str | None = None,
                            token: str | None = None, status: str | None = None, from_height: int = 0,
                            to_height: int | None = None, after: int | None = None,
                            limit: int = 100) -> dict[str, Any]:
    """Instructions in ascending id, filtered by a wallet or an identity (any of its wallets) taking
    part (sender, receiver, creator or venue), a token in a leg, the status and the height of
    creation; `next` is the id to pass as `after` for the next page (null on the last page)."""
    from .settlement.instructions import describe, select

    time_s = ledger.tip.time_ms // 1000
    with ledger.store.read() as txn:
        state = ledger.store.state_over(txn)
        wallets: tuple[bytes, ...] | None = None
        if identity is not None:
            wallets = state.get(layout.identity(identity))
            if wallets is None:
                raise NotFound(f"no identity {identity!r}")
        if wallet is not None:
            wallets = (wallet,) if wallets is None else tuple(w for w in wallets if w == wallet)
        found, more = select(state, lambda prefix, start: ledger.store.iter_prefix(txn, "state", prefix, start),
                             wallets=wallets, token=token, status=status, from_height=from_height,
                             to_height=to_height, after=after, limit=_limit(limit))
    page = [_plain(describe(i, record, time_s)) for i, record in found]
    return {"instructions": page, "next": page[-1]["id"] if more else None}


def settlement_check(ledger: Ledger, instruction_id: int, *, time_s: int | None = None) -> dict[str, Any]:
    """What settling the instruction in the next block would do (`instructions.preview`), at
    `time_s` (default: the last block's time; the next block's is later, see `compliance_check`)."""
    from .settlement.instructions import preview

    now_s = ledger.tip.time_ms // 1000 if time_s is None else time_s
    with ledger.store.read() as txn:
        answer = preview(ledger.store.state_over(txn), instruction_id, time_s=now_s, height=ledger.tip.height + 1)
    if answer is None:
        raise NotFound(f"no settlement instruction {instruction_id}")
    return answer
