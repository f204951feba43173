"""Shareholder votes: one vote per identity (not per wallet), weighted by the identity's balance at
the record height; a vote may change until the ballot closes; the tally is an event.

Running tallies are kept in the ballot record, updated on every vote (a changed vote first takes
its old weight back). Anyone may recount from the `ballot.voted` events: the last vote of each
identity, weighted as the event says, gives the published `ballot.result`.
"""

from __future__ import annotations

from typing import Any

from .. import layout
from ..context import Context
from ..holdings import identity_of, refuse_lost_wallets
from ..permissions import require_token
from ..reasons import FAILURE, INVALID_SENDER, refuse
from .common import require_issuer_side, require_past_record_height


def ballot_key(action_id: str) -> bytes:
    return b"ballot:" + action_id.encode()


def vote_key(action_id: str, identity_id: str) -> bytes:
    """-> (option, weight) of the identity's current vote."""
    return b"ballot_vote:" + action_id.encode() + layout.SEP + identity_id.encode()


def create(ctx: Context, body: dict[str, Any]) -> None:
    symbol = body["token"]
    require_issuer_side(ctx, symbol, require_token(ctx, symbol))
    require_past_record_height(ctx, body["record_height"])
    if not body["opens_at_height"] < body["closes_at_height"] or body["closes_at_height"] <= ctx.height:
        raise refuse(FAILURE, "bad_voting_window")
    if ctx.state.get(ballot_key(body["id"])) is not None:
        raise refuse(FAILURE, "ballot_exists")
    ctx.state.set(ballot_key(body["id"]), {
        "token": symbol, "question": body["question"], "options": tuple(body["options"]),
        "record_height": body["record_height"], "opens_at_height": body["opens_at_height"],
        "closes_at_height": body["closes_at_height"], "tallies": (0,) * len(body["options"]), "voters": 0,
        "tallied": False, "creator": ctx.signer,
    })
    ctx.emit("ballot.created", symbol, (), id=body["id"], question=body["question"], options=body["options"],
             record_height=body["record_height"], opens_at_height=body["opens_at_height"],
             closes_at_height=body["closes_at_height"])


def vote(ctx: Context, body: dict[str, Any]) -> None:
    ballot = ctx.state.get(ballot_key(body["id"]))
    if ballot is None:
        raise refuse(FAILURE, "unknown_ballot")
    if ctx.height < ballot["opens_at_height"]:
        raise refuse(FAILURE, "ballot_not_open")
    if ctx.height >= ballot["closes_at_height"]:
        raise refuse(FAILURE, "ballot_closed")
    option = body["option"]
    if option >= len(ballot["options"]):
        raise refuse(FAILURE, "unknown_option")
    identity_id = identity_of(ctx.state, ctx.signer)
    if identity_id is None:
        raise refuse(INVALID_SENDER, "sender_not_registered")
    # A wallet a recovery declared lost no longer speaks for its identity: its key is presumed in
    # the wrong hands, and its vote would override the investor's own.
    refuse_lost_wallets(ctx.state, ctx.signer, None)
    assert ctx.state.history is not None
    weight = ctx.state.history.holding_at(ballot["token"], identity_id, ballot["record_height"])
    if weight == 0:
        raise refuse(INVALID_SENDER, "not_a_holder_at_record_height")
    tallies = list(ballot["tallies"])
    voters = ballot["voters"]
    previous = ctx.state.get(vote_key(body["id"], identity_id))
    if previous is None:
        voters += 1
    else:
        tallies[previous[0]] -= previous[1]
    tallies[option] += weight
    ctx.state.set(vote_key(body["id"], identity_id), (option, weight))
    ctx.state.set(ballot_key(body["id"]), {**ballot, "tallies": tuple(tallies), "voters": voters})
    ctx.emit("ballot.voted", ballot["token"], (ctx.signer,), id=body["id"], identity=identity_id, option=option,
             weight=weight, changed=previous is not None)


def tally(ctx: Context, body: dict[str, Any]) -> None:
    """Anyone may publish the result once the ballot has closed; it is final and happens once."""
    ballot = ctx.state.get(ballot_key(body["id"]))
    if ballot is None:
        raise refuse(FAILURE, "unknown_ballot")
    if ctx.height < ballot["closes_at_height"]:
        raise refuse(FAILURE, "ballot_still_open")
    if ballot["tallied"]:
        raise refuse(FAILURE, "already_tallied")
    tallies = list(ballot["tallies"])
    top = max(tallies)
    leaders = [i for i, t in enumerate(tallies) if t == top]
    winner = leaders[0] if top > 0 and len(leaders) == 1 else None
    ctx.state.set(ballot_key(body["id"]), {**ballot, "tallied": True})
    ctx.emit("ballot.result", ballot["token"], (), id=body["id"], tallies=tallies, voters=ballot["voters"],
             winner=winner, options=list(ballot["options"]))


HANDLERS = {"ballot.create": create, "ballot.vote": vote, "ballot.tally": tally}
