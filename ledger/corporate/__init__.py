"""Corporate actions: what issuers tokenize securities for. Each is a set of transaction kinds
whose handlers build on the shared verbs in `ledger.holdings`, `ledger.compliance` and
`ledger.permissions`:

- `documents`: attach, update and remove a token's documents (name, URI, content hash);
- `distributions`: dividends and coupons per unit held at a record height, funded up front,
  claimed by holders or pushed by an agent, the remainder reclaimed after expiry;
- `liquidation`: a liquidation amount split across share classes by the preference waterfall,
  paid out through the same distribution machinery;
- `ballots`: shareholder votes weighted by balances at a record height, tallied after closing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import ballots, distributions, documents, liquidation

HANDLERS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    **documents.HANDLERS,
    **distributions.HANDLERS,
    **liquidation.HANDLERS,
    **ballots.HANDLERS,
}
