"""Readiness (GET /ready on the RPC port): should this node take traffic now?

A node is ready when all of these hold, else it answers 503 and says which did not:
- it is not halted;
- it is caught up: no connected peer reports a height more than `LAG_BLOCKS_MAX` above ours
  (heights move every second or so, so a block or two of difference is only the report in flight);
- a validator is connected to validators that hold, with its own power, a quorum (more than two
  thirds) of the voting power of the next height's set: the set the chain's governance fixed, so
  a validator added or removed counts from the height it takes effect. A validator that is not
  (or not yet) in the set counts no power of its own: it follows, and is ready when it can;
- an observer is connected to at least one peer (alone, it cannot tell whether it is behind).

The quorum figures are the ones the metrics show (`secledger_validator_power_connected`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ledger import queries

if TYPE_CHECKING:
    from node.service import Node

#: Blocks a peer may report above ours while we still count as caught up.
LAG_BLOCKS_MAX: Final[int] = 2


@dataclass(frozen=True, slots=True)
class ValidatorPower:
    """The voting power of the set of `height`, and how much of it this node reaches."""

    height: int
    total: int
    quorum: int  # the least power that is more than two thirds of the total
    own: int  # this node's, 0 for an observer or a validator outside the set
    connected: int  # own plus that of the validators with a live link to this node
    validators_connected: int  # other validators of the set with a live link

    @property
    def has_quorum(self) -> bool:
        return 3 * self.connected > 2 * self.total


def validator_power(node: Node) -> ValidatorPower:
    """The set of the next height (the one consensus is deciding) against this node's links."""
    height = node.ledger.tip.height + 1
    validators = node.validator_sets.at(height)
    own_keys = {bytes(key.verify_key) for key in node.signing_keys()}
    own = sum(validators.power_of(key) for key in own_keys)
    connected_peers = node.peers.connected_peers()
    reached = [entry for entry in queries.validators_at(node.ledger, height)
               if entry["node_key"] in connected_peers and entry["validator_key"] not in own_keys]
    return ValidatorPower(height=height, total=validators.total_power, quorum=validators.quorum_power, own=own,
                          connected=own + sum(entry["power"] for entry in reached),
                          validators_connected=len(reached))


def sync_lag(node: Node) -> int:
    """Blocks between our committed height and the highest a connected peer reports (0 if none is ahead)."""
    tip = node.ledger.tip.height
    return max(0, max(node.sync.peer_heights.values(), default=tip) - tip)


def readiness(node: Node) -> tuple[bool, dict[str, Any]]:
    """`(ready, body)` for GET /ready."""
    reasons: list[str] = []
    height = node.ledger.tip.height
    if node.halted is not None:
        reasons.append(f"halted: {node.halted}")
    lag = sync_lag(node)
    if lag > LAG_BLOCKS_MAX:
        reasons.append(f"behind: a peer reports height {height + lag}, this node is at {height}")
    peers = len(node.peers.connected_peers())
    body: dict[str, Any] = {"node": node.config.node.moniker, "mode": node.config.node.mode, "height": height,
                            "lag_blocks": lag, "halted": node.halted is not None, "peers": peers}
    if node.observer:
        if peers == 0:
            reasons.append("no peer connected: cannot tell whether this node is caught up")
    else:
        power = validator_power(node)
        body["voting"] = power.own > 0
        body["validator_power"] = {"connected": power.connected, "total": power.total, "quorum": power.quorum}
        if not power.has_quorum:
            reasons.append(f"connected validators hold {power.connected} of {power.total} voting power, counting "
                           f"this node's {power.own}; a quorum is {power.quorum}")
    body["ready"] = not reasons
    body["reasons"] = reasons
    return not reasons, body
