"""Who may do what to a token: the token must exist, and the signer must hold a chain role, one
of the token's agent roles, or be its owner. Each refusal names the missing authority."""

from __future__ import annotations

from typing import Any

from . import layout
from .context import Context
from .reasons import FAILURE, INVALID_OPERATOR, refuse


def require_token(ctx: Context, symbol: str) -> dict[str, Any]:
    token = ctx.state.get(layout.token(symbol))
    if token is None:
        raise refuse(FAILURE, "unknown_token")
    return token


def require_role(ctx: Context, role: str) -> None:
    if ctx.state.get(layout.role(role, ctx.signer)) is None:
        raise refuse(INVALID_OPERATOR, f"not_authorized:{role}")


def require_agent(ctx: Context, symbol: str, role: str) -> None:
    if role not in ctx.state.get(layout.agent(symbol, ctx.signer), ()):
        raise refuse(INVALID_OPERATOR, f"not_authorized:agent.{role}")


def require_owner(ctx: Context, token: dict[str, Any]) -> None:
    if token["owner"] != ctx.signer:
        raise refuse(INVALID_OPERATOR, "not_authorized:owner")

