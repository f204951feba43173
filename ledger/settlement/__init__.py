"""Settlement: moving securities between parties against payment, and primary offerings. Each is a
set of transaction kinds whose handlers build on the shared verbs in `ledger.holdings`,
`ledger.compliance` and `ledger.permissions`:

- `instructions`: settlement instructions, delivery versus payment: legs affirmed (and their units
  reserved) by every sender, then settled all together or not at all (docs/SETTLEMENT.md);
- `offerings`: primary offerings (docs/SETTLEMENT.md, "Primary offerings").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import instructions, offerings

HANDLERS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    **instructions.HANDLERS,
    **offerings.HANDLERS,
}
