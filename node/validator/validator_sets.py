"""The validator set of each height, as this node's own ledger says it.

Governance changes the set by proposals; a change executed in block H takes effect at H + 2. So a
node whose tip is T knows the sets of T + 1 and T + 2 from blocks it verified itself, and needs no
peer's word for who may sign the next certificate. Everything in the node that asks "who are the
validators" (the consensus core each height, block sync for each certificate, peer admission)
asks here, with the height.
"""

from __future__ import annotations

from collections import OrderedDict

from consensus.validators import Validator, ValidatorSet
from ledger import Ledger, queries

#: Sets remembered, by height.
SETS_CACHED_MAX: int = 64


class ValidatorSets:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._cache: OrderedDict[int, tuple[ValidatorSet, frozenset[bytes]]] = OrderedDict()

    def at(self, height: int) -> ValidatorSet:
        """The set that proposes, votes and certifies at `height`."""
        return self._entry(height)[0]

    def node_keys_at(self, height: int) -> frozenset[bytes]:
        """The peer-link keys of the validators of `height`."""
        return self._entry(height)[1]

    def _entry(self, height: int) -> tuple[ValidatorSet, frozenset[bytes]]:
        """Raises `ledger.NotFound` above the tip + 2: no block this node holds has fixed that set."""
        entry = self._cache.get(height)
        if entry is not None:
            self._cache.move_to_end(height)
            return entry
        validators = queries.validators_at(self.ledger, height)
        entry = (ValidatorSet(Validator(v["validator_key"], v["power"]) for v in validators),
                 frozenset(v["node_key"] for v in validators))
        self._cache[height] = entry  # fixed for good: the query answers only up to the tip + 2
        while len(self._cache) > SETS_CACHED_MAX:
            self._cache.popitem(last=False)
        return entry
