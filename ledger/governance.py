"""Consortium governance: the members change the validator set, the members, the chain roles and
the chain parameters by M-of-N proposals (docs/GOVERNANCE.md says it for the consortium).

Everything that changes governance state lives here. The rules, in the order they bite:

- Members act through any of their account keys; a vote is the member's, not the key's. A vote
  counts while its member is a member: a removed member's votes stop counting, and a re-added id
  gets a new serial, so its old votes do not come back.
- A proposal's actions are all of one class (validators, members, roles, params); the class's
  threshold, a fraction num/den of the *current* members, decides it: it passes when
  approvals * den >= num * members, and it is rejected as soon as the rejections make that
  unreachable. The proposer's proposal is its member's approval.
- A proposal executes in the very transaction in which its threshold is reached: its actions run
  in a savepoint of the state, all or none. A failing action marks it `failed` with that action's
  reason code; the vote (or the membership change) that triggered it stays. Every final status
  (executed, failed, rejected, withdrawn) is final: nothing executes twice.
- A change of membership can reach or foreclose the threshold of other open proposals; they are
  settled in the same transaction, in ascending id order, until nothing changes.
- Validator changes executed in block H take effect at H+2 (CometBFT's rule). The set is kept as
  a full snapshot per effective height, linked to the one before; every change executed in block
  H builds on the snapshot for H+2. The voting power they move (adds and removes fully, power
  changes by the difference, rotations not at all) must stay below one third of the power of the
  set effective at H+1, cumulatively over the block.

Nothing here reads a clock, draws a random number, or depends on the order of a dict or a set in
anything stored or hashed: stored maps are encoded with sorted keys, and every scan is over
sorted tuples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from . import codec, layout
from .context import Context
from .genesis import Genesis
from .kinds import ACTION_CLASSES, MEMBERS_MAX, action_class
from .reasons import FAILURE, INVALID_OPERATOR, Refusal, refuse
from .roles import grant_role, revoke_role
from .state import State

#: (validator_key, node_key, power, address, name): one validator of a scheduled set.
ValidatorEntry = tuple[bytes, bytes, int, str, str]

#: Most validators a set may hold (the consensus core's `VALIDATORS_MAX`).
VALIDATORS_MAX: int = 1000
#: Longest a proposal may stay open, in blocks (about 116 days at one block per second).
PROPOSAL_LIFETIME_MAX: int = 10_000_000
#: Most proposals one member may have open at once: a member cannot flood the others' agenda.
OPEN_PROPOSALS_PER_MEMBER_MAX: int = 16
#: The chain parameters at genesis: the node config's [consensus] defaults (a test pins them).
PARAM_DEFAULTS: dict[str, int] = {
    "block_bytes_max": 4_194_304,
    "block_txs_max": 5_000,
    "timeout_commit_ms": 200,
    "timeout_precommit_ms": 500,
    "timeout_prevote_ms": 500,
    "timeout_propose_ms": 1_000,
}
#: Domain tag of `validators_hash`.
VALIDATORS_HASH_DOMAIN: bytes = b"secledger/validators/v1\x00"

OPEN, EXECUTED, FAILED, REJECTED, WITHDRAWN, EXPIRED = "open", "executed", "failed", "rejected", "withdrawn", "expired"
#: Every status a proposal may show; `expired` is derived (an open proposal past its expiry height).
STATUSES: tuple[str, ...] = (OPEN, EXECUTED, FAILED, REJECTED, WITHDRAWN, EXPIRED)
APPROVE, REJECT = "approve", "reject"


# --- genesis -------------------------------------------------------------------------------------


def write_genesis(state: State, genesis: Genesis) -> None:
    """Write the genesis validator set (effective at height 1) and, if the genesis names them, the
    members and thresholds; the chain parameters start at their defaults (none is voted yet).
    Call inside the genesis state transaction."""
    validators = tuple(sorted((v.validator_key, v.node_key, v.power, "", v.name) for v in genesis.validators))
    state.set(layout.gov_valset(1), {"previous": 0, "validators": validators, "moved": 0})
    state.set(layout.gov_valset_latest(), 1)
    if not genesis.members:
        return
    assert genesis.thresholds is not None
    members = sorted(genesis.members, key=lambda m: m.id)
    for serial, member in enumerate(members, start=1):
        state.set(layout.gov_member(member.id), {"name": member.name, "keys": tuple(sorted(member.keys)),
                                                 "serial": serial, "since_height": 0})
        for key in member.keys:
            state.set(layout.gov_member_key(key), member.id)
    state.set(layout.gov_members(), tuple(m.id for m in members))
    state.set(layout.gov_member_serial(), len(members))
    state.set(layout.gov_thresholds(), {c: genesis.thresholds.of(c) for c in ACTION_CLASSES})


# --- reads: the validator set, members, parameters -----------------------------------------------


def _as_state(source: State | Callable[[bytes], bytes | None]) -> State:
    return source if isinstance(source, State) else State(source)


def validators_at(source: State | Callable[[bytes], bytes | None], height: int) -> tuple[ValidatorEntry, ...]:
    """The validator set effective at `height` (>= 1), ascending by validator key, as scheduled so
    far: for a height above the tip + 2 it is the latest set, which later blocks may still change.

    `source` is a `State`, or a reader of the committed state (key -> stored bytes or None), such
    as `lambda key: txn.get(key, db=store.dbs["state"])`. Walks back from the latest scheduled set,
    so heights near the tip cost one or two reads."""
    if height < 1:
        raise ValueError(f"height {height}: validator sets start at height 1")
    state = _as_state(source)
    effective = state.get(layout.gov_valset_latest())
    assert effective is not None, "no validator set in the state: governance.write_genesis was not run"
    record = state.get(layout.gov_valset(effective))
    while effective > height:
        effective = record["previous"]
        record = state.get(layout.gov_valset(effective))
    return record["validators"]


def validators_hash(validators: tuple[ValidatorEntry, ...]) -> bytes:
    """SHA-256 of the domain tag and the canonical encoding of [validator_key, node_key, power] of
    each validator, ascending by key: what consensus (keys, power) and peer admission (node keys)
    depend on. Address and name are dial hints and labels; the state root commits to them."""
    return hashlib.sha256(VALIDATORS_HASH_DOMAIN + codec.encode(
        [[key, node_key, power] for key, node_key, power, _, _ in sorted(validators)])).digest()


def total_power(validators: tuple[ValidatorEntry, ...]) -> int:
    return sum(v[2] for v in validators)


def has_members(state: State) -> bool:
    """True on a chain whose genesis named members: roles change by proposals only."""
    return bool(state.get(layout.gov_members()))


def member_of(state: State, key: bytes) -> str | None:
    """The id of the member holding account key `key`, if any."""
    return state.get(layout.gov_member_key(key))


def chain_params(state: State) -> dict[str, int]:
    """Every chain parameter: the members' value where a proposal set one, else the default."""
    return {**PARAM_DEFAULTS, **voted_params(state)}


def voted_params(state: State) -> dict[str, int]:
    """The parameters a proposal has set. Timeouts the members never voted on stay each node's own
    (its config's); block limits are the chain's either way (docs/GOVERNANCE.md, section 7)."""
    return dict(state.get(layout.chain_params()) or {})


def tally(state: State, proposal: dict[str, Any]) -> tuple[int, int, int]:
    """(approvals, rejections, members) counted over the current members only."""
    approvals = rejections = 0
    for member_id, (vote, _height, serial) in proposal["votes"].items():
        member = state.get(layout.gov_member(member_id))
        if member is None or member["serial"] != serial:
            continue  # a removed member's vote, or one cast under an earlier membership of this id
        if vote == APPROVE:
            approvals += 1
        else:
            rejections += 1
    return approvals, rejections, len(state.get(layout.gov_members(), ()))


def threshold(state: State, action_class_name: str) -> tuple[int, int]:
    num, den = state.get(layout.gov_thresholds())[action_class_name]
    return num, den


def status_at(proposal: dict[str, Any], next_height: int) -> str:
    """The status a reader sees when the next block has height `next_height`: an open proposal that
    block may no longer vote on is `expired`."""
    if proposal["status"] == OPEN and next_height > proposal["expires_at_height"]:
        return EXPIRED
    return proposal["status"]


# --- handlers ------------------------------------------------------------------------------------


def propose(ctx: Context, body: dict[str, Any]) -> None:
    member_id, member = _require_member(ctx)
    expires = body["expires_at_height"]
    if expires <= ctx.height:
        raise refuse(FAILURE, "expiry_not_after_height")
    if expires > ctx.height + PROPOSAL_LIFETIME_MAX:
        raise refuse(FAILURE, "expiry_too_far")
    classes = sorted({action_class(a["action"]) for a in body["actions"]})
    if len(classes) != 1:
        raise refuse(FAILURE, "mixed_action_classes")
    open_ids = _open_ids(ctx)
    mine = sum(1 for i in open_ids if ctx.state.get(layout.gov_proposal(i))["proposer"] == member_id)
    if mine >= OPEN_PROPOSALS_PER_MEMBER_MAX:
        raise refuse(FAILURE, "too_many_open_proposals")
    proposal_id = ctx.state.get(layout.gov_next_proposal(), 1)
    ctx.state.set(layout.gov_next_proposal(), proposal_id + 1)
    ctx.state.set(layout.gov_proposal(proposal_id), {
        "proposer": member_id, "proposer_serial": member["serial"], "proposer_key": ctx.signer,
        "class": classes[0], "actions": tuple(body["actions"]), "expires_at_height": expires,
        "created_height": ctx.height, "status": OPEN, "closed_height": 0, "failure": (),
        "votes": {member_id: (APPROVE, ctx.height, member["serial"])},
    })
    ctx.state.set(layout.gov_open(), open_ids + (proposal_id,))
    ctx.emit("gov.proposed", None, _addresses(ctx.signer, body["actions"]), proposal=proposal_id,
             proposer=member_id, actions=body["actions"], expires_at_height=expires, **{"class": classes[0]})
    if _settle(ctx, proposal_id):
        _settle_all(ctx)


def approve(ctx: Context, body: dict[str, Any]) -> None:
    _vote(ctx, body["proposal"], APPROVE)


def reject(ctx: Context, body: dict[str, Any]) -> None:
    _vote(ctx, body["proposal"], REJECT)


def withdraw(ctx: Context, body: dict[str, Any]) -> None:
    member_id, member = _require_member(ctx)
    proposal_id = body["proposal"]
    proposal = _open_proposal(ctx, proposal_id)
    if proposal["proposer"] != member_id or proposal["proposer_serial"] != member["serial"]:
        raise refuse(INVALID_OPERATOR, "not_authorized:proposer")
    _close(ctx, proposal_id, proposal, WITHDRAWN)
    ctx.emit("gov.withdrawn", None, (ctx.signer,), proposal=proposal_id, member=member_id)


HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "gov.propose": propose,
    "gov.approve": approve,
    "gov.reject": reject,
    "gov.withdraw": withdraw,
}


# --- proposals: votes, thresholds, execution ------------------------------------------------------


def _require_member(ctx: Context) -> tuple[str, dict[str, Any]]:
    if not has_members(ctx.state):
        raise refuse(FAILURE, "governance_not_configured")
    member_id = member_of(ctx.state, ctx.signer)
    if member_id is None:
        raise refuse(INVALID_OPERATOR, "not_authorized:member")
    return member_id, ctx.state.get(layout.gov_member(member_id))


def _open_proposal(ctx: Context, proposal_id: int) -> dict[str, Any]:
    proposal = ctx.state.get(layout.gov_proposal(proposal_id))
    if proposal is None:
        raise refuse(FAILURE, "unknown_proposal")
    if proposal["status"] != OPEN:
        raise refuse(FAILURE, f"proposal_{proposal['status']}")
    if ctx.height > proposal["expires_at_height"]:
        raise refuse(FAILURE, "proposal_expired")
    return proposal


def _vote(ctx: Context, proposal_id: int, vote: str) -> None:
    member_id, member = _require_member(ctx)
    proposal = _open_proposal(ctx, proposal_id)
    previous = proposal["votes"].get(member_id)
    if previous is not None and previous[2] != member["serial"]:
        previous = None  # cast under an earlier membership of this id: not this member's vote
    if previous is not None and previous[0] == vote:
        raise refuse(FAILURE, "already_voted")
    votes = {**proposal["votes"], member_id: (vote, ctx.height, member["serial"])}
    proposal = {**proposal, "votes": votes}
    ctx.state.set(layout.gov_proposal(proposal_id), proposal)
    approvals, rejections, members = tally(ctx.state, proposal)
    ctx.emit("gov.voted", None, (ctx.signer,), proposal=proposal_id, member=member_id, vote=vote,
             changed=previous is not None, approvals=approvals, rejections=rejections, members=members)
    if _settle(ctx, proposal_id):
        _settle_all(ctx)


def _settle(ctx: Context, proposal_id: int) -> bool:
    """Execute the proposal if its threshold is reached, reject it if it no longer can be; True
    when it executed a change of membership (which may settle other proposals)."""
    proposal = ctx.state.get(layout.gov_proposal(proposal_id))
    if proposal["status"] != OPEN or ctx.height > proposal["expires_at_height"]:
        return False
    approvals, rejections, members = tally(ctx.state, proposal)
    num, den = threshold(ctx.state, proposal["class"])
    if approvals * den >= num * members:
        return _execute(ctx, proposal_id, proposal)
    if (members - rejections) * den < num * members:
        _close(ctx, proposal_id, proposal, REJECTED)
        ctx.emit("gov.rejected", None, (proposal["proposer_key"],), proposal=proposal_id, approvals=approvals,
                 rejections=rejections, members=members)
    return False


def _settle_all(ctx: Context) -> None:
    """After a change of membership: settle every open proposal, in ascending id order, again
    from the start whenever one of them changes the membership, until none does."""
    while True:
        for proposal_id in _open_ids(ctx):
            if _settle(ctx, proposal_id):
                break
        else:
            return


def _execute(ctx: Context, proposal_id: int, proposal: dict[str, Any]) -> bool:
    """Run every action in a savepoint: all of them, or, at the first refusal, none."""
    state = ctx.state
    events_before = len(ctx.events)
    state.begin_transaction()
    index = 0  # the action running, named by a failure
    try:
        for act in proposal["actions"]:
            _ACTIONS[act["action"]](ctx, proposal_id, act)
            index += 1
    except Refusal as refusal:
        state.rollback_transaction()
        del ctx.events[events_before:]
        outcome = refusal.outcome
        _close(ctx, proposal_id, proposal, FAILED, (outcome.code, outcome.reason, index))
        ctx.emit("gov.failed", None, (proposal["proposer_key"],), proposal=proposal_id, action=index,
                 code=outcome.code, reason=outcome.reason)
        return False
    state.commit_transaction()
    _close(ctx, proposal_id, proposal, EXECUTED)
    ctx.emit("gov.executed", None, (proposal["proposer_key"],), proposal=proposal_id,
             actions=len(proposal["actions"]), **{"class": proposal["class"]})
    return proposal["class"] == "members"


def _close(ctx: Context, proposal_id: int, proposal: dict[str, Any], status: str,
           failure: tuple[int, str, int] | tuple[()] = ()) -> None:
    ctx.state.set(layout.gov_proposal(proposal_id),
                  {**proposal, "status": status, "closed_height": ctx.height, "failure": failure})
    open_ids = ctx.state.get(layout.gov_open(), ())
    ctx.state.set(layout.gov_open(), tuple(i for i in open_ids if i != proposal_id))


def _open_ids(ctx: Context) -> tuple[int, ...]:
    """Ids of the proposals still open and not expired, ascending; expired ones leave the list."""
    open_ids = ctx.state.get(layout.gov_open(), ())
    live = tuple(i for i in open_ids
                 if ctx.height <= ctx.state.get(layout.gov_proposal(i))["expires_at_height"])
    if live != open_ids:
        ctx.state.set(layout.gov_open(), live)
    return live


def _addresses(signer: bytes, actions: Any) -> tuple[bytes, ...]:
    """The signer, then every key an action names, each once, in order of appearance."""
    keys = [signer]
    for act in actions:
        for field in ("validator_key", "node_key", "new_validator_key", "new_node_key", "account"):
            if field in act:
                keys.append(act[field])
        keys.extend(act.get("keys", ()))
    return _once(keys)


def _once(keys: Any) -> tuple[bytes, ...]:
    """`keys` without repeats, in their first order (the event's address list)."""
    out: list[bytes] = []
    for key in keys:
        if key not in out:
            out.append(key)
    return tuple(out)


# --- actions: the validator set -------------------------------------------------------------------


def _pending_set(ctx: Context) -> dict[str, Any]:
    """The snapshot the changes of this block build: the one effective at height + 2, begun from
    the latest scheduled set if this block has not changed the set yet."""
    effective = ctx.height + 2
    latest = ctx.state.get(layout.gov_valset_latest())
    assert latest is not None and latest <= effective, "validator sets are scheduled in height order"
    if latest == effective:
        return ctx.state.get(layout.gov_valset(effective))
    return {"previous": latest, "validators": ctx.state.get(layout.gov_valset(latest))["validators"], "moved": 0}


def _schedule(ctx: Context, pending: dict[str, Any], validators: list[ValidatorEntry], moved_by: int) -> int:
    """Check the new set against the rules and write it as the set effective at height + 2."""
    if not validators:
        raise refuse(FAILURE, "no_validators_left")
    if len(validators) > VALIDATORS_MAX:
        raise refuse(FAILURE, "too_many_validators")
    moved = pending["moved"] + moved_by
    previous_total = total_power(ctx.state.get(layout.gov_valset(pending["previous"]))["validators"])
    if moved * 3 >= previous_total:
        raise refuse(FAILURE, "validator_change_too_large")
    effective = ctx.height + 2
    ctx.state.set(layout.gov_valset(effective),
                  {"previous": pending["previous"], "validators": tuple(sorted(validators)), "moved": moved})
    ctx.state.set(layout.gov_valset_latest(), effective)
    return effective


def _find(validators: tuple[ValidatorEntry, ...], validator_key: bytes) -> ValidatorEntry:
    for entry in validators:
        if entry[0] == validator_key:
            return entry
    raise refuse(FAILURE, "unknown_validator")


def validator_add(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    pending = _pending_set(ctx)
    validators = pending["validators"]
    key, node_key, power, address, name = (act["validator_key"], act["node_key"], act["power"], act["address"],
                                           act["name"])
    if any(v[0] == key for v in validators):
        raise refuse(FAILURE, "validator_key_in_use")
    if any(v[1] == node_key for v in validators):
        raise refuse(FAILURE, "node_key_in_use")
    if any(v[4] == name for v in validators):
        raise refuse(FAILURE, "validator_name_in_use")
    effective = _schedule(ctx, pending, [*validators, (key, node_key, power, address, name)], power)
    ctx.emit("validator.added", None, (key, node_key), proposal=proposal_id, validator_key=key, node_key=node_key,
             power=power, address=address, name=name, effective_height=effective)


def validator_remove(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    pending = _pending_set(ctx)
    entry = _find(pending["validators"], act["validator_key"])
    effective = _schedule(ctx, pending, [v for v in pending["validators"] if v != entry], entry[2])
    ctx.emit("validator.removed", None, (entry[0], entry[1]), proposal=proposal_id, validator_key=entry[0],
             node_key=entry[1], power=entry[2], name=entry[4], effective_height=effective)


def validator_set_power(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    pending = _pending_set(ctx)
    entry = _find(pending["validators"], act["validator_key"])
    power = act["power"]
    changed = (entry[0], entry[1], power, entry[3], entry[4])
    effective = _schedule(ctx, pending, [changed if v == entry else v for v in pending["validators"]],
                          abs(power - entry[2]))
    ctx.emit("validator.power_changed", None, (entry[0],), proposal=proposal_id, validator_key=entry[0],
             old_power=entry[2], power=power, effective_height=effective)


def validator_rotate(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    """New consensus and node keys for one validator; its power, address and name stay, and the
    power does not count as moved. Either key may be kept, not both."""
    pending = _pending_set(ctx)
    entry = _find(pending["validators"], act["validator_key"])
    new_key, new_node_key = act["new_validator_key"], act["new_node_key"]
    if new_key == entry[0] and new_node_key == entry[1]:
        raise refuse(FAILURE, "rotation_unchanged")
    others = [v for v in pending["validators"] if v != entry]
    if any(v[0] == new_key for v in others):
        raise refuse(FAILURE, "validator_key_in_use")
    if any(v[1] == new_node_key for v in others):
        raise refuse(FAILURE, "node_key_in_use")
    effective = _schedule(ctx, pending, [*others, (new_key, new_node_key, entry[2], entry[3], entry[4])], 0)
    ctx.emit("validator.rotated", None, _once((entry[0], new_key, entry[1], new_node_key)), proposal=proposal_id,
             validator_key=entry[0], new_validator_key=new_key, node_key=entry[1], new_node_key=new_node_key,
             power=entry[2], effective_height=effective)


# --- actions: members, roles, parameters ----------------------------------------------------------


def _check_keys_free(ctx: Context, keys: Any, member_id: str) -> None:
    for key in keys:
        holder = member_of(ctx.state, key)
        if holder is not None and holder != member_id:
            raise refuse(FAILURE, "member_key_in_use")


def member_add(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    member_id, keys = act["id"], tuple(act["keys"])
    members = ctx.state.get(layout.gov_members(), ())
    if member_id in members:
        raise refuse(FAILURE, "member_exists")
    _check_keys_free(ctx, keys, member_id)
    if len(members) >= MEMBERS_MAX:
        raise refuse(FAILURE, "too_many_members")
    serial = ctx.state.get(layout.gov_member_serial(), 0) + 1
    ctx.state.set(layout.gov_member_serial(), serial)
    ctx.state.set(layout.gov_member(member_id), {"name": act["name"], "keys": keys, "serial": serial,
                                                 "since_height": ctx.height})
    for key in keys:
        ctx.state.set(layout.gov_member_key(key), member_id)
    ctx.state.set(layout.gov_members(), tuple(sorted((*members, member_id))))
    ctx.emit("member.added", None, keys, proposal=proposal_id, id=member_id, name=act["name"], keys=list(keys))


def member_remove(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    member_id = act["id"]
    members = ctx.state.get(layout.gov_members(), ())
    member = ctx.state.get(layout.gov_member(member_id))
    if member is None:
        raise refuse(FAILURE, "unknown_member")
    if len(members) == 1:
        raise refuse(FAILURE, "last_member")
    for key in member["keys"]:
        ctx.state.delete(layout.gov_member_key(key))
    ctx.state.delete(layout.gov_member(member_id))
    ctx.state.set(layout.gov_members(), tuple(m for m in members if m != member_id))
    ctx.emit("member.removed", None, member["keys"], proposal=proposal_id, id=member_id, name=member["name"],
             keys=list(member["keys"]))


def member_set_keys(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    member_id, keys = act["id"], tuple(act["keys"])
    member = ctx.state.get(layout.gov_member(member_id))
    if member is None:
        raise refuse(FAILURE, "unknown_member")
    _check_keys_free(ctx, keys, member_id)
    for key in member["keys"]:
        if key not in keys:
            ctx.state.delete(layout.gov_member_key(key))
    for key in keys:
        ctx.state.set(layout.gov_member_key(key), member_id)
    ctx.state.set(layout.gov_member(member_id), {**member, "keys": keys})
    ctx.emit("member.keys_changed", None, _once((*member["keys"], *keys)), proposal=proposal_id,
             id=member_id, old_keys=list(member["keys"]), keys=list(keys))


def role_grant(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    grant_role(ctx, act["role"], act["account"], proposal=proposal_id)


def role_revoke(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    revoke_role(ctx, act["role"], act["account"], proposal=proposal_id)


def params_set(ctx: Context, proposal_id: int, act: dict[str, Any]) -> None:
    name, value = act["name"], act["value"]
    old = chain_params(ctx.state)[name]
    ctx.state.set(layout.chain_params(), {**voted_params(ctx.state), name: value})
    ctx.emit("params.changed", None, (), proposal=proposal_id, name=name, old=old, value=value)


_ACTIONS: dict[str, Callable[[Context, int, dict[str, Any]], None]] = {
    "validator.add": validator_add,
    "validator.remove": validator_remove,
    "validator.set_power": validator_set_power,
    "validator.rotate": validator_rotate,
    "member.add": member_add,
    "member.remove": member_remove,
    "member.set_keys": member_set_keys,
    "role.grant": role_grant,
    "role.revoke": role_revoke,
    "params.set": params_set,
}
