"""Identities and their claims: an investor's identity owns wallets, and claim issuers attest
facts about it (KYC, accreditation, country, investor type) with an expiry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import layout
from .context import Context
from .permissions import require_role
from .reasons import FAILURE, INVALID_OPERATOR, refuse


def identity_register(ctx: Context, body: dict[str, Any]) -> None:
    require_role(ctx, "claim_issuer")
    identity_id, wallets = body["identity"], tuple(body["wallets"])
    if ctx.state.get(layout.identity(identity_id)) is not None:
        raise refuse(FAILURE, "identity_exists")
    for wallet in wallets:
        if ctx.state.get(layout.wallet(wallet)) is not None:
            raise refuse(FAILURE, "wallet_already_registered")
    ctx.state.set(layout.identity(identity_id), wallets)
    for wallet in wallets:
        ctx.state.set(layout.wallet(wallet), identity_id)
    ctx.emit("identity.registered", None, wallets, identity=identity_id, wallets=list(wallets))


def identity_add_wallet(ctx: Context, body: dict[str, Any]) -> None:
    require_role(ctx, "claim_issuer")
    identity_id, wallet = body["identity"], body["wallet"]
    wallets = ctx.state.get(layout.identity(identity_id))
    if wallets is None:
        raise refuse(FAILURE, "unknown_identity")
    if ctx.state.get(layout.wallet(wallet)) is not None:
        raise refuse(FAILURE, "wallet_already_registered")
    ctx.state.set(layout.identity(identity_id), tuple(sorted(wallets + (wallet,))))
    ctx.state.set(layout.wallet(wallet), identity_id)
    ctx.emit("identity.wallet_added", None, (wallet,), identity=identity_id, wallet=wallet)


def claim_grant(ctx: Context, body: dict[str, Any]) -> None:
    """Grant or renew: a later grant of the same topic replaces the earlier one."""
    require_role(ctx, "claim_issuer")
    identity_id, topic = body["identity"], body["topic"]
    if ctx.state.get(layout.identity(identity_id)) is None:
        raise refuse(FAILURE, "unknown_identity")
    if body["expires_at"] <= ctx.time_s:
        raise refuse(FAILURE, "claim_already_expired")
    ctx.state.set(layout.claim(identity_id, topic), (body["value"], ctx.signer, body["expires_at"]))
    ctx.emit("claim.granted", None, (), identity=identity_id, topic=topic, value=body["value"],
             issuer=ctx.signer, expires_at=body["expires_at"])


def claim_revoke(ctx: Context, body: dict[str, Any]) -> None:
    require_role(ctx, "claim_issuer")
    identity_id, topic = body["identity"], body["topic"]
    claim = ctx.state.get(layout.claim(identity_id, topic))
    if claim is None:
        raise refuse(FAILURE, "unknown_claim")
    if claim[1] != ctx.signer:
        raise refuse(INVALID_OPERATOR, "not_authorized:claim_issuer_of_claim")
    ctx.state.delete(layout.claim(identity_id, topic))
    ctx.emit("claim.revoked", None, (), identity=identity_id, topic=topic, issuer=ctx.signer)



HANDLERS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "identity.register": identity_register,
    "identity.add_wallet": identity_add_wallet,
    "claim.grant": claim_grant,
    "claim.revoke": claim_revoke,
}
