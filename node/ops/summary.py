"""The periodic summary: one INFO line a minute instead of one per block.

An idle chain makes about a block a second, and the node used to write an INFO line for each.
Commits are now logged at DEBUG, and every `INTERVAL_S` (the first time `FIRST_S` after start) the
node writes one line of what happened since the last one:

    node summary height=1234 blocks=60 txs=12 rejected=0 peers=4 peers_missing=0 mempool_txs=0 lag_blocks=0 ready=true

`peers_missing` counts the peers that the config or the validator set names and that have no live
link; the peer manager itself says which and why (`p2p peer unreachable`, node/p2p/peers.py).
With the summary, at most once per interval each, the conditions an operator must hear of while
they last:
- WARNING `not in the validator set`, for a validator whose key the chain does not (or no longer)
  hold: it follows without voting (docs/GOVERNANCE.md, section 14);
- ERROR `node halted`, with the reason, for as long as the node stays halted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from ledger import queries

from . import readiness

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger("secledger.ops")

#: Time between two summaries.
INTERVAL_S: Final[float] = 60.0
#: Time from start to the first summary: soon enough that a node that cannot reach its peers says
#: so while its operator is still watching.
FIRST_S: Final[float] = 10.0


class Summary:
    def __init__(self, node: Node, *, interval_s: float = INTERVAL_S, first_s: float = FIRST_S) -> None:
        self.node = node
        self.interval_s = interval_s
        self.first_s = first_s
        self._blocks = 0
        self._txs = 0
        self._rejected = 0

    def on_commit(self, txs: int, rejected: int) -> None:
        self._blocks += 1
        self._txs += txs
        self._rejected += rejected

    async def run(self) -> None:
        await asyncio.sleep(self.first_s)
        while True:
            self.report()
            await asyncio.sleep(self.interval_s)

    def report(self) -> None:
        """Write the summary (and the warnings it carries) now, and start counting again."""
        node = self.node
        ready, body = readiness.readiness(node)
        fields: dict[str, object] = {"height": node.ledger.tip.height, "blocks": self._blocks, "txs": self._txs,
                                     "rejected": self._rejected, "peers": body["peers"],
                                     "peers_missing": len(self.missing_peers()), "mempool_txs": len(node.mempool),
                                     "lag_blocks": body["lag_blocks"], "ready": ready}
        if node.driver is not None:
            fields["round"] = node.driver.core.round
            fields["voting"] = node.driver.core.voting
        self._blocks = self._txs = self._rejected = 0
        log.info("node summary", extra=fields)
        if node.halted is not None:
            log.error("node halted", extra={"reason": node.halted})
        self._warn_not_voting()

    def missing_peers(self) -> dict[bytes, str]:
        """Node key -> address of the peers the config or the next height's validator set names
        (with an address) that have no live link."""
        node = self.node
        expected: dict[bytes, str] = {bytes.fromhex(peer.node_key): str(peer.address) for peer in node.config.p2p.peers}
        for entry in queries.validators_at(node.ledger, node.ledger.tip.height + 1):
            if entry["address"]:
                expected.setdefault(entry["node_key"], entry["address"])
        expected.pop(node.peers.node_key, None)
        connected = node.peers.connected_peers()
        return {key: address for key, address in expected.items() if key not in connected}

    def _warn_not_voting(self) -> None:
        node = self.node
        if node.driver is None:
            return
        height = node.ledger.tip.height + 1
        validators = node.validator_sets.at(height)
        if not any(bytes(key.verify_key) in validators for key in node.signing_keys()):
            log.warning("not in the validator set", extra={
                "next_height": height, "key": bytes(node.signing_keys()[0].verify_key).hex()[:16],
                "hint": "following the chain without voting until the consortium adds this key"})
