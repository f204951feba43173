"""The one table that maps each transaction kind to its handler.

Each family of kinds is a module of handlers built on the same verbs (`ledger.holdings`,
`ledger.compliance`, `ledger.permissions`): roles, identities and claims, tokens and their
transfers, corporate actions, governance, settlement. A kind is found here and nowhere else; a test checks
that this table and the kinds' shapes in `ledger.kinds` name the same kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import governance, identities, roles, transfers
from .context import Context
from .corporate import HANDLERS as CORPORATE_HANDLERS
from .settlement import HANDLERS as SETTLEMENT_HANDLERS

Handler = Callable[[Context, dict[str, Any]], None]

HANDLERS: dict[str, Handler] = {
    **roles.HANDLERS,
    **identities.HANDLERS,
    **transfers.HANDLERS,
    **CORPORATE_HANDLERS,
    **governance.HANDLERS,
    **SETTLEMENT_HANDLERS,
}
