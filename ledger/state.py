"""The state as execution sees it: a set of verbs over an overlay on the store.

Execution reads and writes plain immutable values (ints, bytes, str, tuples, dicts that are never
mutated in place) by key. Writes land in the current transaction's layer; `commit_transaction`
folds them into the block's layer, `rollback_transaction` drops them, so a refused transaction
changes nothing but its nonce. Nothing reaches LMDB until the block is flushed as a whole.
Only this module touches the layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgpack

from . import codec

_MISSING = object()


def decode_value(raw: bytes) -> Any:
    """State values are stored as canonical msgpack; arrays come back as tuples (immutable)."""
    return msgpack.unpackb(raw, raw=False, use_list=False, strict_map_key=True)


def encode_value(value: Any) -> bytes:
    return codec.encode(value)


class History(Protocol):
    """Balances at committed heights, for record dates (see `store.StoreHistory`). Only heights
    below the block being executed may be asked for: those never change, on any node."""

    def holding_at(self, symbol: str, identity_id: str, height: int) -> int: ...

    def supply_at(self, symbol: str, height: int) -> int: ...

    def holders_at(self, symbol: str, height: int) -> list[tuple[str, int]]: ...


class State:
    """Overlay of the current block's writes on top of a reader of the committed state."""

    __slots__ = ("_read", "_block", "_tx", "_cache", "history")

    def __init__(self, read: Callable[[bytes], bytes | None], history: History | None = None) -> None:
        self._read = read
        self.history = history
        self._block: dict[bytes, Any] = {}  # value, or None for a deletion
        self._tx: dict[bytes, Any] = {}
        self._cache: dict[bytes, Any] = {}  # decoded committed values, read-only

    # --- verbs ------------------------------------------------------------------------------

    def get(self, key: bytes, default: Any = None) -> Any:
        value = self._tx.get(key, _MISSING)
        if value is _MISSING:
            value = self._block.get(key, _MISSING)
        if value is _MISSING:
            value = self._cache.get(key, _MISSING)
            if value is _MISSING:
                raw = self._read(key)
                value = None if raw is None else decode_value(raw)
                self._cache[key] = value
        return default if value is None else value

    def set(self, key: bytes, value: Any) -> None:
        assert value is not None, "use delete() to remove a key"
        self._tx[key] = value

    def delete(self, key: bytes) -> None:
        self._tx[key] = None

    def begin_transaction(self) -> None:
        assert not self._tx, "a transaction is already open"

    def commit_transaction(self) -> None:
        self._block.update(self._tx)
        self._tx.clear()

    def rollback_transaction(self) -> None:
        self._tx.clear()

    # --- for the block writer ---------------------------------------------------------------

    def block_writes(self) -> Iterator[tuple[bytes, Any]]:
        """The block's writes in key order (None = deleted), for a deterministic flush."""
        assert not self._tx, "flush with a transaction still open"
        for key in sorted(self._block):
            yield key, self._block[key]
