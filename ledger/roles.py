"""Chain-wide roles (admin, claim_issuer, token_issuer): granted and revoked by an administrator
on a chain without members, or by governance (`grant_role` / `revoke_role`) where there are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import layout
from .context import Context
from .permissions import require_role
from .reasons import FAILURE, INVALID_OPERATOR, refuse


def require_admin_rule(ctx: Context) -> None:
    """Administrators change chain roles only on a chain without members; where the genesis names
    members, roles change by proposals of class `roles` (docs/GOVERNANCE.md)."""
    if ctx.state.get(layout.gov_members()):
        raise refuse(INVALID_OPERATOR, "governance_required")
    require_role(ctx, "admin")


def role_grant(ctx: Context, body: dict[str, Any]) -> None:
    require_admin_rule(ctx)
    grant_role(ctx, body["role"], body["account"])


def role_revoke(ctx: Context, body: dict[str, Any]) -> None:
    require_admin_rule(ctx)
    revoke_role(ctx, body["role"], body["account"])


def grant_role(ctx: Context, role: str, account: bytes, **event_data: Any) -> None:
    """Give `account` a chain role (an administrator's `role.grant`, or a governance action)."""
    if ctx.state.get(layout.role(role, account)) is not None:
        raise refuse(FAILURE, "role_already_held")
    ctx.state.set(layout.role(role, account), 1)
    ctx.state.set(layout.role_count(role), ctx.state.get(layout.role_count(role), 0) + 1)
    ctx.emit("role.granted", None, (account,), role=role, account=account, **event_data)


def revoke_role(ctx: Context, role: str, account: bytes, **event_data: Any) -> None:
    """Take a chain role from `account`; the last administrator stays."""
    if ctx.state.get(layout.role(role, account)) is None:
        raise refuse(FAILURE, "role_not_held")
    count = ctx.state.get(layout.role_count(role), 0)
    if role == "admin" and count == 1:
        raise refuse(FAILURE, "last_admin")
    ctx.state.delete(layout.role(role, account))
    ctx.state.set(layout.role_count(role), count - 1)
    ctx.emit("role.revoked", None, (account,), role=role, account=account, **event_data)



HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "role.grant": role_grant,
    "role.revoke": role_revoke,
}
