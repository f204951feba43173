"""Events: every change of state, typed, in the order it happened.

The log of blocks and their events is the source of truth; projections are derived from it.
An event names its kind (`token.transferred`), the token it concerns (if any), the addresses it
touches (for the address index), and its data, all canonical values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import codec


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    token: str | None = None
    addresses: tuple[bytes, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self, *, tx_hash: bytes, height: int, tx_index: int, event_index: int) -> bytes:
        # codec.encode's bytes: keys in sorted order, `data` (built by handlers) checked and sorted,
        # every other value of a known type (the address tuple becomes a list of bytes).
        return codec.pack_canonical({
            "addresses": list(self.addresses),
            "data": codec.canonical(self.data),
            "event_index": event_index,
            "height": height,
            "kind": self.kind,
            "token": self.token,
            "tx": tx_hash,
            "tx_index": tx_index,
        })


#: Every event kind the ledger emits, for the query and subscription filters.
EVENT_KINDS: tuple[str, ...] = (
    "ballot.created",
    "ballot.result",
    "ballot.voted",
    "claim.granted",
    "claim.revoked",
    "distribution.declared",
    "distribution.paid",
    "distribution.payment_held",
    "distribution.payment_skipped",
    "distribution.reclaimed",
    "gov.executed",
    "gov.failed",
    "gov.proposed",
    "gov.rejected",
    "gov.voted",
    "gov.withdrawn",
    "identity.registered",
    "identity.wallet_added",
    "liquidation.declared",
    "member.added",
    "member.keys_changed",
    "member.removed",
    "offering.allocated",
    "offering.cancelled",
    "offering.closed",
    "offering.excluded",
    "offering.opened",
    "offering.refunded",
    "offering.subscribed",
    "offering.withdrawn",
    "params.changed",
    "role.granted",
    "role.revoked",
    "settlement.affirmation_withdrawn",
    "settlement.affirmed",
    "settlement.created",
    "settlement.expired",
    "settlement.failed",
    "settlement.rejected",
    "settlement.settled",
    "token.agent_set",
    "token.created",
    "token.document_removed",
    "token.document_set",
    "token.force_transferred",
    "token.frozen",
    "token.issued",
    "token.partially_frozen",
    "token.partially_unfrozen",
    "token.paused",
    "token.recovered",
    "token.redeemed",
    "token.renamed",
    "token.rules_changed",
    "token.transferred",
    "token.unfrozen",
    "token.unpaused",
    "tx.rejected",
    "validator.added",
    "validator.power_changed",
    "validator.removed",
    "validator.rotated",
)
