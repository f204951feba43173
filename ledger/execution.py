"""Running one transaction against the state: the nonce, the kind's handler, and all-or-nothing.

`execute_transaction` checks the nonce, runs the kind's handler (found in `ledger.handlers`)
inside a state transaction, and either keeps every write (success) or drops them all and records
a rejection with its reason code (the nonce is consumed either way, so a refused transaction
cannot be replayed).

Handlers check first and write after, in the order the reason codes are documented in
docs/LEDGER.md; the first failing check gives the code. `check_transfer` (`ledger.compliance`)
is shared by execution and by `compliance_check`, so the dry run returns exactly the code
execution would.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import layout
from .context import Context
from .errors import NonceMismatch
from .events import Event
from .handlers import HANDLERS
from .reasons import OK, Outcome, Refusal
from .state import State
from .tx import Transaction


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
