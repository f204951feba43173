"""The state as execution sees it: a set of verbs over an overlay on the store.

Execution reads and writes plain immutable values (ints, bytes, str, tuples, dicts that are never
mutated in place) by key. Writes land in the current transaction's layer; `commit_transaction`
folds them into the block's layer, `rollback_transaction` drops them, so a refused transaction
changes nothing but its nonce. Nothing reaches LMDB until the block is flushed as a whole.
Only this module touches the layers.

Transactions nest: a `begin_transaction` inside an open one opens a savepoint, whose commit folds
its writes into the enclosing transaction and whose rollback drops only them. Governance executes
a proposal's actions in such a savepoint, so a failing action undoes the proposal's actions but
not the vote that triggered it.
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

    __slots__ = ("_read", "_block", "_tx", "_outer", "_depth", "_cache", "history")

    def __init__(self, read: Callable[[bytes], bytes | None], history: History | None = None) -> None:
        self._read = read
        self.history = history
        self._block: dict[bytes, Any] = {}  # value, or None for a deletion
        self._tx: dict[bytes, Any] = {}  # the innermost open transaction's writes
        self._outer: list[dict[bytes, Any]] = []  # the enclosing transactions' writes, outermost first
        self._depth = 0  # open transactions
        self._cache: dict[bytes, Any] = {}  # decoded committed values, read-only

    # --- verbs ------------------------------------------------------------------------------

    def get(self, key: bytes, default: Any = None) -> Any:
        value = self._tx.get(key, _MISSING)
        if value is _MISSING and self._outer:
            for layer in reversed(self._outer):
                value = layer.get(key, _MISSING)
                if value is not _MISSING:
                    break
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
        """Open a transaction, or a savepoint inside the open one."""
        if self._depth:
            self._outer.append(self._tx)
            self._tx = {}
        else:
            assert not self._tx, "writes outside a transaction were neither committed nor rolled back"
        self._depth += 1

    def commit_transaction(self) -> None:
        """Keep the innermost transaction's writes: into the enclosing one, or into the block.
        (Writes made after a rollback, outside any transaction, are committed into the block.)"""
        if self._outer:
            self._outer[-1].update(self._tx)
            self._tx = self._outer.pop()
        else:
            self._block.update(self._tx)
            self._tx.clear()
        self._depth = max(self._depth - 1, 0)

    def rollback_transaction(self) -> None:
        """Drop the innermost transaction's writes; the enclosing one's stay."""
        assert self._depth, "no transaction to roll back"
        if self._outer:
            self._tx = self._outer.pop()
        else:
            self._tx.clear()
        self._depth -= 1

    # --- for the block writer ---------------------------------------------------------------

    def block_writes(self) -> Iterator[tuple[bytes, Any]]:
        """The block's writes in key order (None = deleted), for a deterministic flush."""
        assert not self._tx and not self._outer, "flush with a transaction still open"
        for key in sorted(self._block):
            yield key, self._block[key]
