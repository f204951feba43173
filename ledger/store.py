"""The LMDB store: one environment, named sub-databases, and the verbs that write a block.

Sub-databases (all keys big-endian so LMDB's byte order is height order). The log, and what
validating and executing the next block needs (the write side), are written with the block in ONE
write transaction; LMDB syncs on commit, so a crash leaves the store at the last whole block:

- `meta`        chain id, genesis, height, last block hash and time, state accumulator and root,
                and the projector's position (`projected_height`, `projected_txs`)
- `blocks`      height -> encoded block            (the log: source of truth)
- `certs`       height -> commit certificate bytes  (the log: proof of agreement)
- `roots`       height -> state root after that block
- `receipts`    height . tx index -> receipt        (covered by the state root)
- `events`      height . tx index . event index -> event  (covered by the state root)
- `state`       the state (see `layout`), the only part hashed into the state root's accumulator
- `hist_holding` token . NUL . identity . NUL . inverted height -> identity balance at that height
- `hist_supply` token . NUL . inverted height -> total supply at that height (both read by
                execution: record dates of distributions, ballots and liquidations)
- `wallet_changes` height . token . NUL . address -> the wallet's balance after that block: the
                block's input for `hist_wallet`, appended, consumed (deleted) once projected

The read side: projections that only queries read, written after the block by the projector
(`projections.Projector`) in its own write transactions, and rebuilt from the log:

- `txs`         tx hash -> height . tx index
- `ev_token`, `ev_address`, `ev_kind`   index key . event key -> ""
- `ev_identity` identity id . NUL . event key -> ""  (every event that concerns the identity: `trail`)
- `hist_wallet` token . NUL . address . inverted height -> balance at that height
- `registrations` b"w" . wallet -> identity id, b"i" . identity id -> "": who was registered as at
                the projected height (the identity trail reads wallets as at the event's block)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import lmdb

from . import layout
from .errors import StoreError
from .state import State, decode_value, encode_value

#: The layout of stored values. 2: holding lots stored flat (`holdings.Lots`). 3: the genesis writes
#: the validator set, the chain parameters and the consortium into the state; headers name the
#: validator sets. A change here changes state roots too, so an older store cannot be rebuilt to its
#: certified roots: it is refused.
STORE_FORMAT: int = 3

#: The projections a store holds. They are outside the state root, so a store written before a
#: change gains it in place (no resync) when `Ledger` opens it. 1: event indexes by token, address
#: and kind, written with the block. 2: also by identity (`ev_identity`, see `trail`), built from the
#: stored log. 3: the indexes, the tx index and `hist_wallet` are written by the projector after the
#: block (`projections`); a store of format 2 has them complete up to its tip, so it is migrated by
#: recording that as the projector's position and seeding `registrations` from the state.
INDEX_FORMAT: int = 3

#: Virtual size LMDB may grow to; sparse, so it costs no disk until used.
MAP_SIZE_BYTES: int = 1 << 36

LOG_DBS: tuple[str, ...] = ("blocks", "certs")
#: Written with each block, in its write transaction: what executing the next block reads, and what
#: the state root covers. Execution rebuilds them from the log (`Ledger.rebuild`).
WRITE_SIDE_DBS: tuple[str, ...] = (
    "roots", "receipts", "events", "state", "hist_holding", "hist_supply", "wallet_changes",
)
#: Written by the projector after the block (`projections`): only queries read them.
READ_SIDE_DBS: tuple[str, ...] = (
    "txs", "ev_token", "ev_address", "ev_kind", "ev_identity", "hist_wallet", "registrations",
)
PROJECTION_DBS: tuple[str, ...] = WRITE_SIDE_DBS + READ_SIDE_DBS
DB_NAMES: tuple[str, ...] = ("meta",) + LOG_DBS + PROJECTION_DBS

_U64 = struct.Struct(">Q")
_EVENT_KEY = struct.Struct(">QII")
_TX_KEY = struct.Struct(">QI")
_U64_MAX = (1 << 64) - 1
_ACCUMULATOR_MOD = 1 << 256


def height_key(height: int) -> bytes:
    return _U64.pack(height)


def inverted_height(height: int) -> bytes:
    """Newer heights sort first, so one seek finds the latest version at or before a height."""
    return _U64.pack(_U64_MAX - height)


def tx_key(height: int, tx_index: int) -> bytes:
    return _TX_KEY.pack(height, tx_index)


def event_key(height: int, tx_index: int, event_index: int) -> bytes:
    return _EVENT_KEY.pack(height, tx_index, event_index)


def unpack_event_key(key: bytes) -> tuple[int, int, int]:
    return _EVENT_KEY.unpack(key)


def entry_digest(key: bytes, raw: bytes) -> int:
    """One state entry's share of the accumulator."""
    return int.from_bytes(hashlib.sha256(len(key).to_bytes(2, "big") + key + raw).digest(), "big")


def results_hash(results: Iterable[bytes]) -> bytes:
    """What a block's state root commits to of its outcome: the stored bytes of each receipt
    followed by those of its events, in the block's order (msgpack delimits each item itself)."""
    digest = hashlib.sha256(b"secledger/results/v1\x00")
    for raw in results:
        digest.update(raw)
    return digest.digest()


def state_root(height: int, accumulator: int, results_hash: bytes) -> bytes:
    """The state root: commits to every projection entry (through the accumulator) and to the
    block's receipts and events (through `results_hash`)."""
    return hashlib.sha256(
        b"secledger/state-root/v1\x00" + _U64.pack(height) + accumulator.to_bytes(32, "big") + results_hash
    ).digest()


class Store:
    """An open LMDB environment with the ledger's sub-databases."""

    def __init__(self, path: str, *, map_size_bytes: int = MAP_SIZE_BYTES) -> None:
        try:
            self.env = lmdb.open(path, max_dbs=len(DB_NAMES) + 2, map_size=map_size_bytes, sync=True,
                                 metasync=True, readahead=False, subdir=True)
        except lmdb.Error as exc:
            raise StoreError(f"cannot open store at {path}: {exc}") from None
        self.dbs = {name: self.env.open_db(name.encode()) for name in DB_NAMES}

    def close(self) -> None:
        self.env.close()

    def read(self) -> lmdb.Transaction:
        return self.env.begin(write=False)

    def write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    def append(self, txn: lmdb.Transaction, db_name: str, key: bytes, value: bytes) -> None:
        """Put `key` after every key of `db_name` (block heights, and receipts and events by
        height): LMDB then fills pages instead of splitting them in half, and skips the search."""
        if not txn.put(key, value, db=self.dbs[db_name], append=True):
            raise StoreError(f"{db_name}: key {key.hex()} does not follow the last one")

    # --- meta ---------------------------------------------------------------------------------

    def get_meta(self, txn: lmdb.Transaction, name: str, default: Any = None) -> Any:
        raw = txn.get(name.encode(), db=self.dbs["meta"])
        return default if raw is None else decode_value(raw)

    def put_meta(self, txn: lmdb.Transaction, name: str, value: Any) -> None:
        txn.put(name.encode(), encode_value(value), db=self.dbs["meta"])

    # --- state ----------------------------------------------------------------------------------

    def state_over(self, txn: lmdb.Transaction) -> State:
        db = self.dbs["state"]
        return State(lambda key: txn.get(key, db=db), StoreHistory(self, txn))

    def flush_state(self, txn: lmdb.Transaction, state: State, height: int, accumulator: int) -> int:
        """Write the block's state changes and their history versions; return the new accumulator."""
        db = self.dbs["state"]
        for key, value in state.block_writes():
            old = txn.get(key, db=db)
            if old is not None:
                accumulator -= entry_digest(key, old)
            if value is None:
                if old is not None:
                    txn.delete(key, db=db)
            else:
                raw = encode_value(value)
                accumulator += entry_digest(key, raw)
                txn.put(key, raw, db=db)
            self._write_history(txn, key, value, height)
        return accumulator % _ACCUMULATOR_MOD

    def _write_history(self, txn: lmdb.Transaction, key: bytes, value: Any, height: int, *,
                       wallets: str = "wallet_changes") -> None:
        """A balance's, holding's or supply's version at `height` (other keys have no history).
        Wallet balances go to `wallet_changes` (the projector turns them into `hist_wallet`), or with
        `wallets="hist_wallet"` straight into it (a snapshot's base: it has no block to project)."""
        if key.startswith(layout.BALANCE_PREFIX):
            amount = _U64.pack(0 if value is None else value[0])
            rest = key[len(layout.BALANCE_PREFIX):]
            if wallets == "hist_wallet":
                txn.put(rest + inverted_height(height), amount, db=self.dbs["hist_wallet"])
            else:  # a block's writes come in key order, and heights only grow: an append
                self.append(txn, "wallet_changes", height_key(height) + rest, amount)
            return
        if key.startswith(layout.HOLDING_PREFIX):
            rest, db = key[len(layout.HOLDING_PREFIX):] + layout.SEP, self.dbs["hist_holding"]
        elif key.startswith(layout.SUPPLY_PREFIX):
            rest, db = key[len(layout.SUPPLY_PREFIX):] + layout.SEP, self.dbs["hist_supply"]
        else:
            return
        txn.put(rest + inverted_height(height), _U64.pack(0 if value is None else value[0]), db=db)

    def balance_at(self, txn: lmdb.Transaction, history: str, prefix: bytes, height: int) -> int:
        """The latest recorded balance under `prefix` at or before `height` (0 if none).

        `hist_wallet` is a projection: above the projector's position (read in `txn`, so it matches
        what `txn` sees) the blocks' own `wallet_changes` answer, newest first, one get per height."""
        if history == "hist_wallet":
            projected = self.get_meta(txn, "projected_height", 0)
            if height > projected:
                changes = self.dbs["wallet_changes"]
                for at in range(height, projected, -1):
                    raw = txn.get(height_key(at) + prefix, db=changes)
                    if raw is not None:
                        return _U64.unpack(raw)[0]
                height = projected
        cursor = txn.cursor(db=self.dbs[history])
        if cursor.set_range(prefix + inverted_height(height)) and cursor.key()[: len(prefix)] == prefix \
                and len(cursor.key()) == len(prefix) + 8:
            return _U64.unpack(cursor.value())[0]
        return 0

    def iter_prefix(self, txn: lmdb.Transaction, db_name: str, prefix: bytes,
                    start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        cursor = txn.cursor(db=self.dbs[db_name])
        if not cursor.set_range(start if start is not None and start > prefix else prefix):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            yield key, value

    def stored_results(self, txn: lmdb.Transaction, height: int) -> Iterator[bytes]:
        """The receipts and events stored for `height`, in the order `results_hash` takes them."""
        prefix = height_key(height)
        events = self.iter_prefix(txn, "events", prefix)
        event = next(events, None)
        for receipt_key, receipt in self.iter_prefix(txn, "receipts", prefix):
            yield receipt
            while event is not None and event[0][: len(receipt_key)] == receipt_key:
                yield event[1]
                event = next(events, None)
        if event is not None:  # an event with no receipt before it: not what was committed
            yield b"\xc1orphan-event"  # never valid msgpack, so never equal to a committed result

    def clear_projections(self, txn: lmdb.Transaction) -> None:
        for name in PROJECTION_DBS:
            txn.drop(self.dbs[name], delete=False)


class StoreHistory:
    """`state.History` over a store transaction: versioned keys, one seek per answer."""

    def __init__(self, store: Store, txn: lmdb.Transaction) -> None:
        self._store = store
        self._txn = txn

    def holding_at(self, symbol: str, identity_id: str, height: int) -> int:
        prefix = symbol.encode() + layout.SEP + identity_id.encode() + layout.SEP
        return self._store.balance_at(self._txn, "hist_holding", prefix, height)

    def supply_at(self, symbol: str, height: int) -> int:
        return self._store.balance_at(self._txn, "hist_supply", symbol.encode() + layout.SEP, height)

    def holders_at(self, symbol: str, height: int, *, after: str | None = None,
                   count: int | None = None) -> list[tuple[str, int]]:
        """Identities with a positive balance at `height`, in ascending id order, starting after
        `after`, at most `count` of them.

        Keys are symbol NUL identity NUL inverted-height: for each identity one seek lands on its
        latest version at or before `height`, and a second seek skips the rest of its versions."""
        prefix = symbol.encode() + layout.SEP
        cursor = self._txn.cursor(db=self._store.dbs["hist_holding"])
        out: list[tuple[str, int]] = []
        position = prefix + after.encode() + b"\x01" if after else prefix
        while (count is None or len(out) < count) and cursor.set_range(position):
            key = cursor.key()
            if not key.startswith(prefix):
                break
            identity = key[len(prefix):-9]
            versions = prefix + identity + layout.SEP
            if cursor.set_range(versions + inverted_height(height)) and cursor.key().startswith(versions):
                amount = _U64.unpack(cursor.value())[0]
                if amount > 0:
                    out.append((identity.decode(), amount))
            position = prefix + identity + b"\x01"
        return out


def write_history_version(store: Store, txn: lmdb.Transaction, key: bytes, raw: bytes, height: int) -> None:
    """Record `key`'s stored value `raw` as its version at `height` in the history sub-databases
    (balances straight into `hist_wallet`, holdings, supply; other keys have no history). State
    sync uses it so that questions about heights at or after a snapshot's find the values the
    snapshot installed."""
    store._write_history(txn, key, decode_value(raw), height, wallets="hist_wallet")
