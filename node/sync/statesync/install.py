"""Installing a verified snapshot: one LMDB write transaction (ledger `Ledger.install_snapshot`),
after which block sync continues from the snapshot's height + 1."""

from __future__ import annotations

import logging

from ledger import Ledger
from ledger.chain import ChainTip

from .verify import VerifiedSnapshot

log = logging.getLogger("secledger.statesync")


def install(ledger: Ledger, snapshot: VerifiedSnapshot) -> ChainTip:
    tip = ledger.install_snapshot(snapshot.point, snapshot.entries, certified_root=snapshot.certified_root)
    log.info("state sync: installed snapshot at height %d (%d entries, root %s); history starts at %d",
             tip.height, len(snapshot.entries), tip.state_root.hex()[:16], tip.height + 1)
    return tip
