"""The read side: what only queries read, projected from the write side after the blocks.

`Ledger.apply_block` writes, in the block's one write transaction, what validating and executing
the next block needs (docs/LEDGER.md, section 7, "Write side and projections"): the block and its
certificate, receipts and events, the state and nonces, the history execution reads, the root and
the tip. Everything else is a projection of those, written here by the `Projector` in write
transactions of its own:

- `txs` (tx hash -> height . tx index), from the receipts;
- the event indexes `ev_kind`, `ev_token`, `ev_address` and `ev_identity`, from the events; for the
  identity trail, `registrations` records who was registered as at the end of each projected block
  (the trail reads wallets as at the end of the event's block, `trail`);
- `hist_wallet`, from the block's `wallet_changes`, which it deletes once projected.

A slice projects at most `SLICE_ITEMS_MAX` receipts and events (at least one transaction): whole
blocks while they fit, else part of one. It records its position in `meta` in the same transaction
as its writes: `projected_height` (every block up to it is projected) and `projected_txs` (how many
transactions of the next block are). So a crash anywhere loses nothing: a slice's writes and its
position commit together or not at all, and a reopened store resumes from the recorded position.
Plain deterministic code: the same log gives the same projections, byte for byte, whatever the
slicing and wherever a crash fell (tests/unit/ledger/test_projections.py).

Queries never wait for the projector: above its position they read the write side itself (`Tail`
here for events, `Store.balance_at` for wallet balances, `Projector.tx_location` for the tx index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import lmdb

from . import layout
from .block import Block
from .state import decode_value
from .store import Store, event_key, height_key, inverted_height, tx_key, unpack_event_key
from .trail import event_identities, index_key
from .tx import decode_transaction

#: Most receipts and events one slice projects (a transaction's events are never split, and a
#: slice takes at least one transaction): a block of 2,000 transfers, about 35 ms of CPU on the
#: benchmark's machine, where that block's apply takes 240 ms. Each slice is a write transaction that
#: rewrites every index page it touches, so a block cut in two slices costs about half as many pages
#: again, and smaller slices more CPU per transfer (docs/BENCHMARKS.md, "Pass 6").
SLICE_ITEMS_MAX: int = 4096

#: Fault points a test may arm (`Projector.fault`, `Ledger.fault`): the hook is called with the
#: point's name and may raise to simulate a crash there. `block_committed`: the block's write
#: transaction committed, nothing projected. `projected_tx`: inside a slice, after each
#: transaction's index entries (before the slice commits). `slice_written`: the slice's writes and
#: position written, not committed. `slice_committed`: committed, the in-memory maps not updated.
FAULT_POINTS: tuple[str, ...] = ("block_committed", "projected_tx", "slice_written", "slice_committed")

_WALLET = b"w"
_IDENTITY = b"i"
_REGISTRATION_KINDS = ("identity.registered", "identity.wallet_added")


def position(store: Store, txn: lmdb.Transaction) -> tuple[int, int]:
    """(projected_height, projected_txs) as `txn` sees them."""
    return store.get_meta(txn, "projected_height", 0), store.get_meta(txn, "projected_txs", 0)


def save_position(store: Store, txn: lmdb.Transaction, height: int, txs: int) -> None:
    store.put_meta(txn, "projected_height", height)
    store.put_meta(txn, "projected_txs", txs)


def project_wallet_changes(store: Store, txn: lmdb.Transaction, height: int) -> None:
    """`hist_wallet` versions of `height` from its `wallet_changes`, which are then deleted."""
    history = store.dbs["hist_wallet"]
    prefix = height_key(height)
    version = inverted_height(height)
    cursor = txn.cursor(db=store.dbs["wallet_changes"])
    if not cursor.set_range(prefix):
        return
    while cursor.key()[:8] == prefix:
        txn.put(cursor.key()[8:] + version, cursor.value(), db=history)
        if not cursor.delete():  # deletes and moves to the next entry
            break


def seed_registrations(store: Store, txn: lmdb.Transaction) -> None:
    """`registrations` from the state `txn` sees: every wallet and identity registered in it. For a
    store whose projections start at its tip (a snapshot's, or one migrated from index format 2)."""
    regs = store.dbs["registrations"]
    wallets, identities = layout.wallet(b""), layout.identity("")
    for key, raw in store.iter_prefix(txn, "state", wallets):
        txn.put(_WALLET + key[len(wallets):], decode_value(raw).encode(), db=regs)
    for key, _ in store.iter_prefix(txn, "state", identities):
        txn.put(_IDENTITY + key[len(identities):], b"", db=regs)


def _registrations_in(events: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[int, str, tuple[bytes, ...]]]:
    """(height, identity, wallets) of every registration event among `events`, in log order."""
    for ekey, raw in events:
        if b"identity." not in raw:  # cheap: most events are not registrations
            continue
        event = decode_value(raw)
        data = event["data"]
        if event["kind"] == "identity.registered":
            yield unpack_event_key(ekey)[0], data["identity"], tuple(data["wallets"])
        elif event["kind"] == "identity.wallet_added":
            yield unpack_event_key(ekey)[0], data["identity"], (data["wallet"],)


class _BlockBodies:
    """The bodies of a block's transactions, decoded on first need (for `tx.rejected` events,
    whose refused body the identity trail reads)."""

    def __init__(self, store: Store, txn: lmdb.Transaction, chain_id: str) -> None:
        self._store, self._txn, self._chain_id = store, txn, chain_id
        self._height = -1
        self._txs: tuple[bytes, ...] = ()

    def body(self, height: int, tx_index: int) -> Any:
        if height != self._height:
            raw = self._txn.get(height_key(height), db=self._store.dbs["blocks"])
            self._txs, self._height = Block.decode(raw).txs, height
        # our own log: its signatures were checked when it was applied
        return decode_transaction(self._txs[tx_index], chain_id=self._chain_id, verify_signature=False).body


class _Event(Protocol):
    kind: str
    token: str | None
    addresses: tuple[bytes, ...]
    data: dict[str, Any]


class _Receipt(Protocol):
    tx_hash: bytes
    events: tuple[_Event, ...]


class _Transaction(Protocol):
    body: Any


class Projector:
    """Brings the read side up to the tip, a bounded slice at a time. Single writer, like
    `Ledger`: the node calls it on its event loop between blocks (docs/NODE.md).

    A block applied by this process is projected from its receipts and events as `apply_block`
    made them, still in memory; one committed before the store was opened is read back from the
    store. Both give the same entries (tests/unit/ledger/test_projections.py crashes between the
    two)."""

    def __init__(self, store: Store, chain_id: str, *, load_pending: bool = True) -> None:
        """`load_pending`: read the transactions of the blocks above the position, so that
        `tx_location` finds them (off only for a caller that projects everything before any read)."""
        self.store = store
        self.chain_id = chain_id
        #: Called with a `FAULT_POINTS` name at each point; tests make it raise.
        self.fault: Callable[[str], None] | None = None
        self._pending: dict[bytes, bytes] = {}  # tx hash -> tx key, of blocks above projected_height
        self._pending_heights: dict[int, list[bytes]] = {}
        self._held: dict[int, tuple[Sequence[_Receipt], Sequence[_Transaction]]] = {}  # applied here
        self._registered = -1  # the height whose registrations this process wrote last
        with store.read() as txn:
            self.projected_height, self.projected_txs = position(store, txn)
            tip = store.get_meta(txn, "height") if load_pending else self.projected_height
            for height in range(self.projected_height + 1, tip + 1):
                self.note_committed(height, [decode_value(raw)["tx"] for _, raw in
                                             store.iter_prefix(txn, "receipts", height_key(height))])

    # --- the write side tells -----------------------------------------------------------------

    def note_committed(self, height: int, tx_hashes: list[bytes], receipts: Sequence[_Receipt] | None = None,
                       txs: Sequence[_Transaction] | None = None) -> None:
        """Block `height` committed with these transactions: they are found before their index is.
        With its receipts and decoded transactions (from `apply_block`), its projection reads those
        instead of the stored bytes."""
        self._pending_heights[height] = tx_hashes
        for index, tx_hash in enumerate(tx_hashes):
            self._pending[tx_hash] = tx_key(height, index)
        if receipts is not None and txs is not None:
            self._held[height] = (receipts, txs)

    # --- reads ------------------------------------------------------------------------------

    def tx_location(self, tx_hash: bytes) -> bytes | None:
        """height . tx index of a committed transaction, or None. Looks in the blocks not projected
        yet first, then in the index: a slice commits before it forgets what it projected, so a
        transaction is always in one of the two."""
        key = self._pending.get(tx_hash)
        if key is not None:
            return key
        with self.store.read() as txn:
            return txn.get(tx_hash, db=self.store.dbs["txs"])

    # --- projecting --------------------------------------------------------------------------

    def project(self, items_max: int = SLICE_ITEMS_MAX) -> bool:
        """Project one slice, in one write transaction; True while more remains. Nothing to
        project: no transaction at all (a commit costs the device flushes)."""
        store = self.store
        with store.read() as txn:
            if store.get_meta(txn, "height") <= self.projected_height:
                return False
        with store.write() as txn:
            tip = store.get_meta(txn, "height")
            height, done = self.projected_height + 1, self.projected_txs
            budget, registered = items_max, self._registered
            bodies = _BlockBodies(store, txn, self.chain_id)
            while height <= tip and budget > 0:
                if registered != height:  # before any event of the block: wallets as at its end
                    self._register(txn, height)
                    registered = height
                done, budget, complete = self._project_txs(txn, height, done, budget, bodies)
                if not complete:
                    break
                project_wallet_changes(store, txn, height)
                height, done = height + 1, 0
            save_position(store, txn, height - 1, done)
            self._reach("slice_written")
        self._reach("slice_committed")
        self._registered = registered
        for projected in range(self.projected_height + 1, height):
            for tx_hash in self._pending_heights.pop(projected, ()):
                del self._pending[tx_hash]
            self._held.pop(projected, None)
        self.projected_height, self.projected_txs = height - 1, done
        return self.projected_height < tip

    def catch_up(self, items_max: int = SLICE_ITEMS_MAX) -> None:
        """Slices until the tip is projected (tests, tools, `Ledger.rebuild`; the node yields
        between slices instead)."""
        while self.project(items_max):
            pass

    # --- private ----------------------------------------------------------------------------

    def _reach(self, point: str) -> None:
        if self.fault is not None:
            self.fault(point)

    def _register(self, txn: lmdb.Transaction, height: int) -> None:
        """Who block `height` registers, into `registrations` (again after a restart: the same
        values, so it changes nothing)."""
        regs = self.store.dbs["registrations"]
        for _, identity, wallets in _registrations_in(self.store.iter_prefix(txn, "events", height_key(height))):
            txn.put(_IDENTITY + identity.encode(), b"", db=regs, overwrite=False)
            for wallet in wallets:
                txn.put(_WALLET + wallet, identity.encode(), db=regs, overwrite=False)

    def _project_txs(self, txn: lmdb.Transaction, height: int, done: int, budget: int,
                     bodies: _BlockBodies) -> tuple[int, int, bool]:
        """Index block `height`'s transactions from the `done`th on while `budget` lasts; returns
        (transactions done, budget left, whether the block is complete)."""
        store, dbs = self.store, self.store.dbs
        regs = dbs["registrations"]
        wallets: dict[bytes, str | None] = {}

        def wallet_identity(address: bytes) -> str | None:
            if address not in wallets:
                raw = txn.get(_WALLET + address, db=regs)
                wallets[address] = None if raw is None else raw.decode()
            return wallets[address]

        def identity_exists(identity_id: str) -> bool:
            return txn.get(_IDENTITY + identity_id.encode(), db=regs) is not None

        held = self._held.get(height)
        if held is not None:  # applied by this process: its receipts and events are still here
            receipts, txs = held
            for index in range(done, len(receipts)):
                if budget <= 0:
                    return done, budget, False
                receipt = receipts[index]
                txn.put(receipt.tx_hash, tx_key(height, index), db=dbs["txs"])
                budget -= 1
                for event_index, event in enumerate(receipt.events):
                    body = txs[index].body if event.kind == "tx.rejected" else None
                    index_event(txn, store, event_key(height, index, event_index), event.kind, event.token,
                                event.addresses, event.data, body, wallet_identity, identity_exists)
                    budget -= 1
                done += 1
                self._reach("projected_tx")
            return done, budget, True
        events = store.iter_prefix(txn, "events", height_key(height), event_key(height, done, 0))
        event = next(events, None)
        for key, raw in store.iter_prefix(txn, "receipts", height_key(height), tx_key(height, done)):
            if budget <= 0:
                return done, budget, False
            txn.put(decode_value(raw)["tx"], key, db=dbs["txs"])
            budget -= 1
            while event is not None and event[0][:12] == key:
                ekey, stored = event[0], decode_value(event[1])
                body = bodies.body(height, done) if stored["kind"] == "tx.rejected" else None
                index_event(txn, store, ekey, stored["kind"], stored["token"], stored["addresses"], stored["data"],
                            body, wallet_identity, identity_exists)
                budget -= 1
                event = next(events, None)
            done += 1
            self._reach("projected_tx")
        return done, budget, True


def index_event(txn: lmdb.Transaction, store: Store, ekey: bytes, kind: str, token: str | None,
                addresses: tuple[bytes, ...], data: dict[str, Any], rejected_body: Any,
                wallet_identity: Callable[[bytes], str | None], identity_exists: Callable[[str], bool]) -> None:
    """The index entries of one event: by kind, token, each address (once, ascending) and each
    identity it concerns (`trail`; `rejected_body` is the refused transaction's, for `tx.rejected`)."""
    dbs = store.dbs
    txn.put(kind.encode() + layout.SEP + ekey, b"", db=dbs["ev_kind"])
    if token is not None:
        txn.put(token.encode() + layout.SEP + ekey, b"", db=dbs["ev_token"])
    for address in sorted(set(addresses)):
        txn.put(address + ekey, b"", db=dbs["ev_address"])
    for identity in event_identities(kind, addresses, data, rejected_body, wallet_identity, identity_exists):
        txn.put(index_key(identity, ekey), b"", db=dbs["ev_identity"])


class Tail:
    """The events of the heights above the projector's position, as one read transaction sees
    them, read from the write side for a query that would otherwise find them missing from an
    index. Its cost follows the number of events above the position, which the node keeps to a few
    blocks (docs/NODE.md); a store that is far behind answers the same, only slower."""

    def __init__(self, store: Store, txn: lmdb.Transaction, chain_id: str) -> None:
        self._store, self._txn, self._chain_id = store, txn, chain_id
        self.projected = position(store, txn)[0]

    def events(self, start: bytes, top: int, identity: str | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(event key, stored event) of heights above the position up to `top`, from `start` (an
        event key, or a height key) on; with `identity`, only the events of its trail."""
        store, txn = self._store, self._txn
        first = max(start, height_key(self.projected + 1))
        trail = None if identity is None else self._trail(top)
        for ekey, raw in store.iter_prefix(txn, "events", b"", first):
            height, tx_index, _ = unpack_event_key(ekey)
            if height > top:
                return
            if trail is not None and identity not in trail(height, tx_index, decode_value(raw)):
                continue
            yield ekey, raw

    def _trail(self, top: int) -> Callable[[int, int, dict[str, Any]], list[str]]:
        """The identities an event of a tail height concerns: `registrations` holds those registered
        up to the position, and the tail's own registration events the rest, with their heights."""
        store, txn = self._store, self._txn
        regs = store.dbs["registrations"]
        later_wallets: dict[bytes, tuple[int, str]] = {}
        later_identities: dict[str, int] = {}
        tail = store.iter_prefix(txn, "events", b"", height_key(self.projected + 1))
        for height, identity, wallets in _registrations_in(tail):
            if height > top:
                break
            later_identities.setdefault(identity, height)
            for wallet in wallets:
                later_wallets.setdefault(wallet, (height, identity))
        bodies = _BlockBodies(store, txn, self._chain_id)

        def concerns(height: int, tx_index: int, event: dict[str, Any]) -> list[str]:
            def wallet_identity(address: bytes) -> str | None:
                raw = txn.get(_WALLET + address, db=regs)
                if raw is not None:
                    return raw.decode()
                later = later_wallets.get(address)
                return later[1] if later is not None and later[0] <= height else None

            def identity_exists(identity_id: str) -> bool:
                if txn.get(_IDENTITY + identity_id.encode(), db=regs) is not None:
                    return True
                return later_identities.get(identity_id, height + 1) <= height

            body = bodies.body(height, tx_index) if event["kind"] == "tx.rejected" else None
            return event_identities(event["kind"], event["addresses"], event["data"], body, wallet_identity,
                                    identity_exists)

        return concerns
