"""Token documents (prospectus, articles, term sheet): name, URI and content hash.

The current set lives in state under `doc:`; every change is an event, so the history is the
event log (`events_query(token=..., kind="token.document_set")`).
"""

from __future__ import annotations

from typing import Any

from .. import layout
from ..context import Context
from ..permissions import require_owner, require_token
from ..reasons import FAILURE, refuse


def document_key(symbol: str, name: str) -> bytes:
    return b"doc:" + symbol.encode() + layout.SEP + name.encode()


def document_prefix(symbol: str) -> bytes:
    return b"doc:" + symbol.encode() + layout.SEP


def set_document(ctx: Context, body: dict[str, Any]) -> None:
    symbol, name = body["token"], body["name"]
    require_owner(ctx, require_token(ctx, symbol))
    previous = ctx.state.get(document_key(symbol, name))
    ctx.state.set(document_key(symbol, name), (body["uri"], body["hash"], ctx.time_s))
    ctx.emit("token.document_set", symbol, (), name=name, uri=body["uri"], hash=body["hash"],
             replaced=previous is not None)


def remove_document(ctx: Context, body: dict[str, Any]) -> None:
    symbol, name = body["token"], body["name"]
    require_owner(ctx, require_token(ctx, symbol))
    if ctx.state.get(document_key(symbol, name)) is None:
        raise refuse(FAILURE, "unknown_document")
    ctx.state.delete(document_key(symbol, name))
    ctx.emit("token.document_removed", symbol, (), name=name)


HANDLERS = {"token.set_document": set_document, "token.remove_document": remove_document}
