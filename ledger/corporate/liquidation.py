"""Liquidation: an amount split across one issuer's share classes by the preference waterfall
(`ledger.waterfall`), then across each class's holders at the record height, pro rata, exactly.

The declarer (owner, or corporate-actions agent, of every class) funds the distributed amount up
front; the entitlements are written as a table and paid through `distributions` (claim, pay,
reclaim). Payouts add up exactly to what was distributed; an amount no class may take stays
with the declarer.
"""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..permissions import require_token
from ..reasons import FAILURE, refuse
from ..waterfall import ShareClass, split_pro_rata, waterfall
from .common import require_issuer_side, require_past_record_height
from .distributions import open_distribution, table_key


def declare(ctx: Context, body: dict[str, Any]) -> None:
    record_height = body["record_height"]
    for token, *_ in body["classes"]:
        require_issuer_side(ctx, token, require_token(ctx, token))
    require_past_record_height(ctx, record_height)
    if body["expires_at"] <= ctx.time_s:
        raise refuse(FAILURE, "expiry_in_the_past")
    history = ctx.state.history
    assert history is not None, "liquidations need the store's history"
    classes = [ShareClass(token, history.supply_at(token, record_height), seniority, preference, participating,
                          cap, convertible)
               for token, seniority, preference, participating, cap, convertible in body["classes"]]
    result = waterfall(body["amount"], classes)
    distributed = body["amount"] - result.undistributed
    if distributed == 0:
        raise refuse(FAILURE, "nothing_to_distribute")
    entitlements: dict[str, int] = {}
    for share_class in classes:
        holders = history.holders_at(share_class.token, record_height)
        for identity_id, amount in split_pro_rata(result.payouts[share_class.token], holders).items():
            entitlements[identity_id] = entitlements.get(identity_id, 0) + amount
    tokens = tuple(c.token for c in classes)
    record = {"kind": "table", "tokens": tokens, "payment_token": body["payment_token"],
              "record_height": record_height, "rate_num": 0, "rate_den": 1, "funded": distributed, "paid": 0,
              "expires_at": body["expires_at"], "declarer": ctx.signer, "closed": False}
    open_distribution(ctx, body["id"], record)
    for identity_id in sorted(entitlements):
        if entitlements[identity_id]:
            ctx.state.set(table_key(body["id"], identity_id), entitlements[identity_id])
    ctx.emit("liquidation.declared", tokens[0], (ctx.signer,), id=body["id"], payment_token=body["payment_token"],
             amount=body["amount"], distributed=distributed, record_height=record_height,
             classes=[{"token": c.token, "units": c.units, "payout": result.payouts[c.token],
                       "converted": c.token in result.converted} for c in classes],
             entitlements=[[i, entitlements[i]] for i in sorted(entitlements) if entitlements[i]])


HANDLERS = {"liquidation.declare": declare}
