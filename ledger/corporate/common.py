"""What the corporate actions share: who may declare them, and record-height checks."""

from __future__ import annotations

from typing import Any

from .. import layout
from ..context import Context
from ..reasons import FAILURE, INVALID_OPERATOR, refuse


def require_issuer_side(ctx: Context, symbol: str, token: dict[str, Any]) -> None:
    """Corporate actions are the token owner's, or an agent's with the `corporate_actions` role."""
    if token["owner"] != ctx.signer and "corporate_actions" not in ctx.state.get(layout.agent(symbol, ctx.signer), ()):
        raise refuse(INVALID_OPERATOR, "not_authorized:agent.corporate_actions")


def require_past_record_height(ctx: Context, record_height: int) -> None:
    """Entitlements come from committed history: the record height must be below this block."""
    if record_height >= ctx.height:
        raise refuse(FAILURE, "record_height_not_committed")
