"""What a transaction's handler sees while it runs: the state, the block's time and height, the
signer, and the events it emits. Every handler module takes a `Context`; none needs another's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .state import State


@dataclass(slots=True)
class Context:
    """What a handler may see: the state, the block's time and height, the signer, its events."""

    state: State
    time_s: int
    height: int
    signer: bytes
    events: list[Event] = field(default_factory=list)

    def emit(self, kind: str, token: str | None = None, addresses: tuple[bytes, ...] = (), **data: Any) -> None:
        self.events.append(Event(kind, token, addresses, data))
