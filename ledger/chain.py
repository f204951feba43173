"""The ledger application: the one door the node uses to validate, apply and query blocks.

`Ledger.apply_block` reads top to bottom: check the header against the chain, decode and check
every transaction, execute them in order on an overlay, then write the block, its certificate,
receipts, events, the state, the history execution reads and the new state root in ONE LMDB write
transaction: the write side, what the next block needs. The read side (the tx index, the event
indexes, wallet history) is projected afterwards by `projections.Projector` (`Ledger.project`).
`Ledger.rebuild` drops both and replays the stored log through the same code.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import lmdb

from . import codec, layout
from .block import EMPTY_HASH, Block, txs_hash
from .compliance import check_transfer
from .errors import InvalidBlock, InvalidTransaction, NonceMismatch, NotFound, StateRootMismatch, StoreError
from .events import Event
from .execution import dry_run, execute_transaction
from .genesis import Genesis
from .governance import chain_params, validators_at, validators_hash, write_genesis
from .projections import SLICE_ITEMS_MAX, Projector, project_wallet_changes, save_position, seed_registrations
from .reasons import OK, Outcome, Refusal
from .state import State, decode_value
from .store import (
    INDEX_FORMAT,
    READ_SIDE_DBS,
    STORE_FORMAT,
    Store,
    entry_digest,
    event_key,
    height_key,
    results_hash,
    state_root,
    tx_key,
    unpack_event_key,
    write_history_version,
)
from .trail import event_identities, index_key, registration_heights
from .tx import Transaction, decode_transaction

#: Blocks whose signatures `validate_block` checked, remembered so `apply_block` need not repeat it.
VALIDATED_BLOCKS_MAX: int = 16


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    kind: str
    signer: bytes
    nonce: int
    outcome: Outcome
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class BlockResult:
    height: int
    block_hash: bytes
    state_root: bytes
    receipts: tuple[Receipt, ...]


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What `Ledger.rebuild` did: the height it replayed to, and the heights whose stored receipts
    or events no longer matched their certified root and were written back from the log."""

    height: int
    repaired_heights: tuple[int, ...]


class PrunedHistory(NotFound):
    """The height asked for is before the first block this node holds: it joined by state sync
    from a snapshot, so it holds the state from `history_from - 1` on but no earlier history.
    An archive node (one that block-synced from genesis) answers such questions."""

    def __init__(self, height: int, history_from: int) -> None:
        super().__init__(f"height {height} is before this node's history, which starts at height "
                         f"{history_from} (the node joined by state sync); ask an archive node")
        self.height = height
        self.history_from = history_from


@dataclass(frozen=True, slots=True)
class SnapshotPoint:
    """What a snapshot at `height` records besides the state entries: enough to recompute the
    state root of `height` (`results_hash`) and to resume the chain there (block hash, time)."""

    chain_id: str
    genesis_hash: bytes
    height: int
    block_hash: bytes
    time_ms: int
    results_hash: bytes
    state_root: bytes


@dataclass(frozen=True, slots=True)
class ChainTip:
    """What the chain looks like after the last applied block."""

    height: int
    block_hash: bytes
    time_ms: int
    state_root: bytes
    accumulator: int


class Ledger:
    """A store bound to one genesis. Single writer: call from one thread at a time."""

    def __init__(self, store: Store, genesis: Genesis) -> None:
        self.store = store
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        # block hash -> (parent state root, its decoded transactions), from validate_block
        self._validated: OrderedDict[bytes, tuple[bytes, list[Transaction]]] = OrderedDict()
        # ((tip height, tip block hash), (validators hash, next validators hash)) of the next block
        self._validator_hashes: tuple[tuple[int, bytes], tuple[bytes, bytes]] | None = None
        with store.read() as txn:
            stored = store.get_meta(txn, "genesis_hash")
            found = store.get_meta(txn, "store_format", 1)  # stores from before the key were format 1
        if stored is None:
            self._write_genesis()
        elif stored != genesis.hash:
            raise StoreError("the store belongs to another genesis (chain id or members differ)")
        elif found != STORE_FORMAT:
            raise StoreError(f"the store has format {found}, this secledger reads format {STORE_FORMAT}; "
                             "its state roots differ, so sync into a new store instead")
        else:
            self._upgrade_indexes()
        self.tip = self._load_tip()
        self.projector = Projector(store, self.chain_id)

    @classmethod
    def open(cls, path: str, genesis: Genesis) -> Ledger:
        return cls(Store(path), genesis)

    def close(self) -> None:
        self.store.close()

    @property
    def fault(self) -> Callable[[str], None] | None:
        """A test's hook at the fault points (`projections.FAULT_POINTS`): it may raise to simulate
        a crash there. None in production."""
        return self.projector.fault

    @fault.setter
    def fault(self, hook: Callable[[str], None] | None) -> None:
        self.projector.fault = hook

    # --- genesis ------------------------------------------------------------------------------

    def _write_genesis(self) -> None:
        with self.store.write() as txn:
            self._apply_genesis(txn)

    def _apply_genesis(self, txn: lmdb.Transaction) -> None:
        state = self.store.state_over(txn)
        state.begin_transaction()
        for admin in self.genesis.admins:
            state.set(layout.role("admin", admin), 1)
        state.set(layout.role_count("admin"), len(self.genesis.admins))
        write_genesis(state, self.genesis)
        state.commit_transaction()
        accumulator = self.store.flush_state(txn, state, 0, 0)
        project_wallet_changes(self.store, txn, 0)  # height 0 has no block: projected here
        save_position(self.store, txn, 0, 0)
        root = state_root(0, accumulator, self.genesis.hash)
        put = self.store.put_meta
        put(txn, "chain_id", self.chain_id)
        put(txn, "genesis_hash", self.genesis.hash)
        put(txn, "genesis", self.genesis.encode())
        put(txn, "store_format", STORE_FORMAT)
        put(txn, "index_format", INDEX_FORMAT)
        self._write_tip(txn, ChainTip(0, EMPTY_HASH, self.genesis.genesis_time_ms, root, accumulator))

    def _write_tip(self, txn: lmdb.Transaction, tip: ChainTip) -> None:
        put = self.store.put_meta
        put(txn, "height", tip.height)
        put(txn, "block_hash", tip.block_hash)
        put(txn, "time_ms", tip.time_ms)
        put(txn, "state_root", tip.state_root)
        put(txn, "accumulator", tip.accumulator.to_bytes(32, "big"))
        self.store.append(txn, "roots", height_key(tip.height), tip.state_root)

    def _load_tip(self) -> ChainTip:
        with self.store.read() as txn:
            return self._tip_in(txn)

    # --- blocks ------------------------------------------------------------------------------

    def build_block(self, txs: tuple[bytes, ...], *, time_ms: int, proposer: bytes) -> Block:
        """The next block, on top of the current tip, with these transactions in this order."""
        validators, next_validators = self.validator_hashes()
        return Block.build(chain_id=self.chain_id, height=self.tip.height + 1,
                           time_ms=max(time_ms, self.tip.time_ms + 1),
                           previous_block_hash=self.tip.block_hash,
                           previous_state_root=self.tip.state_root, proposer=proposer, txs=txs,
                           validators_hash=validators, next_validators_hash=next_validators)

    def validator_hashes(self, txn: lmdb.Transaction | None = None) -> tuple[bytes, bytes]:
        """The hashes of the validator sets of the next two heights (tip + 1 and tip + 2): both are
        settled by the blocks up to the tip, since a change decided at H takes effect at H + 2."""
        key = (self.tip.height, self.tip.block_hash)
        if self._validator_hashes is None or self._validator_hashes[0] != key:
            if txn is None:
                with self.store.read() as read_txn:
                    hashes = self._read_validator_hashes(read_txn)
            else:
                hashes = self._read_validator_hashes(txn)
            self._validator_hashes = (key, hashes)
        return self._validator_hashes[1]

    def _read_validator_hashes(self, txn: lmdb.Transaction) -> tuple[bytes, bytes]:
        state = self.store.state_over(txn)
        height = self.tip.height + 1
        return (validators_hash(validators_at(state, height)),
                validators_hash(validators_at(state, height + 1)))

    def validate_block(self, block: Block, *,
                       known: Mapping[bytes, Transaction] | None = None) -> list[Transaction]:
        """Raise `InvalidBlock` unless `block` may be the next one; return its transactions, decoded
        and checked. Rules never invalidate a block: a transaction that breaks one is recorded as
        rejected. Nonces and signatures do.

        `known`: transactions this node already decoded and checked (its mempool), by hash; the
        others are decoded and their signatures checked here."""
        self._check_header(block, certified=False)
        txs = self._decode_txs(block, known or {}, check_signatures=True)
        with self.store.read() as txn:
            state = self.store.state_over(txn)
            _check_block_limits(state, block)
            expected: dict[bytes, int] = {}
            for index, tx in enumerate(txs):
                want = expected.get(tx.signer)
                if want is None:
                    want = state.get(layout.nonce(tx.signer), 0)
                if tx.nonce != want:
                    raise InvalidBlock(f"tx {index}: nonce {tx.nonce}, expected {want}")
                expected[tx.signer] = want + 1
        self._validated[block.hash] = (self.tip.state_root, txs)
        while len(self._validated) > VALIDATED_BLOCKS_MAX:
            self._validated.popitem(last=False)
        return txs

    def apply_block(self, block: Block, certificate: bytes, *,
                    known: Mapping[bytes, Transaction] | None = None) -> BlockResult:
        """Apply a decided block and store it with its commit certificate, atomically."""
        validated = self._validated.get(block.hash)
        if validated is not None and validated[0] == self.tip.state_root:
            txs = validated[1]  # decoded and checked by validate_block against this very state
        else:
            self._check_header(block, certified=True)
            txs = self._decode_txs(block, known or {}, check_signatures=True)
        with self.store.write() as txn:
            result, tip = self._execute(txn, block, txs, certified=True)
            self.store.append(txn, "blocks", height_key(block.height), block.encode())
            self.store.append(txn, "certs", height_key(block.height), certificate)
        if self.projector.fault is not None:
            self.projector.fault("block_committed")
        self.tip = tip  # what the transaction wrote, now committed: no need to read it back
        self._validated.pop(block.hash, None)
        self.projector.note_committed(block.height, [receipt.tx_hash for receipt in result.receipts],
                                      result.receipts, txs)
        return result

    # --- the read side ---------------------------------------------------------------------------

    def project(self, items_max: int = SLICE_ITEMS_MAX) -> bool:
        """Project one slice of the read side (`projections`); True while more remains."""
        return self.projector.project(items_max)

    def catch_up(self) -> None:
        """Project until the read side reaches the tip."""
        self.projector.catch_up()

    @property
    def projected_height(self) -> int:
        """The last height whose block the read side holds whole."""
        return self.projector.projected_height

    def tx_location(self, tx_hash: bytes) -> bytes | None:
        """height . tx index (big-endian, 12 bytes) of a committed transaction, or None; found at
        once after `apply_block`, projected or not."""
        return self.projector.tx_location(tx_hash)

    def _check_header(self, block: Block, *, certified: bool, txn: lmdb.Transaction | None = None) -> None:
        header, tip = block.header, self.tip
        if header.chain_id != self.chain_id:
            raise InvalidBlock(f"block for chain {header.chain_id!r}")
        if header.height != tip.height + 1:
            raise InvalidBlock(f"block at height {header.height}, expected {tip.height + 1}")
        if header.previous_block_hash != tip.block_hash:
            raise InvalidBlock("previous block hash does not match this chain")
        if header.time_ms <= tip.time_ms:
            raise InvalidBlock(f"block time {header.time_ms} not after {tip.time_ms}")
        if header.txs_hash != txs_hash(block.txs):
            raise InvalidBlock("transactions do not match the header's txs hash")
        validators, next_validators = self.validator_hashes(txn)
        if header.validators_hash != validators:
            raise InvalidBlock(f"validators hash does not match the set of height {header.height}")
        if header.next_validators_hash != next_validators:
            raise InvalidBlock(f"next validators hash does not match the set of height {header.height + 1}")
        if header.previous_state_root != tip.state_root:
            message = (f"state root after height {tip.height} is {tip.state_root.hex()} here, "
                       f"but the block certifies {header.previous_state_root.hex()}")
            if certified:
                raise StateRootMismatch(message)
            raise InvalidBlock(message)

    def _decode_txs(self, block: Block, known: Mapping[bytes, Transaction], *,
                    check_signatures: bool) -> list[Transaction]:
        txs = []
        seen: set[bytes] = set()
        for index, raw in enumerate(block.txs):
            digest = hashlib.sha256(raw).digest()
            if digest in seen:
                raise InvalidBlock(f"tx {index}: the same transaction twice")
            seen.add(digest)
            tx = known.get(digest)
            if tx is not None:
                txs.append(tx)
                continue
            try:
                txs.append(decode_transaction(raw, chain_id=self.chain_id, verify_signature=check_signatures))
            except InvalidTransaction as exc:
                raise InvalidBlock(f"tx {index}: {type(exc).__name__}: {exc}") from None
        return txs

    def _execute(self, txn: lmdb.Transaction, block: Block, txs: list[Transaction], *,
                 certified: bool) -> tuple[BlockResult, ChainTip]:
        self._check_header(block, certified=certified, txn=txn)
        height, time_s = block.height, block.header.time_ms // 1000
        state = self.store.state_over(txn)
        _check_block_limits(state, block)
        receipts = []
        for index, tx in enumerate(txs):
            try:
                result = execute_transaction(state, tx, time_s=time_s, height=height)
            except NonceMismatch as exc:
                raise InvalidBlock(f"tx {index}: {exc}") from None
            receipts.append(Receipt(tx.hash, tx.kind, tx.signer, tx.nonce, result.outcome, result.events))
        accumulator = self.store.flush_state(txn, state, height, self.tip.accumulator)
        results_hash = self._write_results(txn, height, receipts)
        root = state_root(height, accumulator, results_hash)
        tip = ChainTip(height, block.hash, block.header.time_ms, root, accumulator)
        self._write_tip(txn, tip)
        return BlockResult(height, block.hash, root, tuple(receipts)), tip

    def _write_results(self, txn: lmdb.Transaction, height: int, receipts: list[Receipt]) -> bytes:
        """Receipts and events, appended in block order; their indexes are projections."""
        results: list[bytes] = []
        for index, receipt in enumerate(receipts):
            raw = codec.pack_canonical({  # keys in sorted order, values of fixed types: codec.encode's bytes
                "code": receipt.outcome.code, "events": len(receipt.events), "kind": receipt.kind,
                "nonce": receipt.nonce, "reason": receipt.outcome.reason, "signer": receipt.signer,
                "tx": receipt.tx_hash,
            })
            results.append(raw)
            self.store.append(txn, "receipts", tx_key(height, index), raw)
            for event_index, event in enumerate(receipt.events):
                eraw = event.encode(tx_hash=receipt.tx_hash, height=height, tx_index=index,
                                    event_index=event_index)
                results.append(eraw)
                self.store.append(txn, "events", event_key(height, index, event_index), eraw)
        return results_hash(results)

    def _identity_lookups(self, txn: lmdb.Transaction, registered: tuple[dict[bytes, int], dict[str, int]],
                          height: int) -> tuple[Any, Any]:
        """(wallet -> its identity, identity id -> registered?) as at the end of `height`: the
        committed state in `txn`, less what `registered` (the heights wallets and identities were
        registered at, from the log) says came later (`trail`). For the format-1 migration."""
        db = self.store.dbs["state"]
        wallets: dict[bytes, str | None] = {}

        def wallet_identity(address: bytes) -> str | None:
            if registered[0].get(address, 0) > height:
                return None
            if address not in wallets:
                raw = txn.get(layout.wallet(address), db=db)
                wallets[address] = None if raw is None else decode_value(raw)
            return wallets[address]

        def identity_exists(identity_id: str) -> bool:
            if registered[1].get(identity_id, 0) > height:
                return False
            return txn.get(layout.identity(identity_id), db=db) is not None

        return wallet_identity, identity_exists

    def _upgrade_indexes(self) -> None:
        """Bring a store written by an older secledger to `INDEX_FORMAT`, in place, in one write
        transaction. Format 1 lacks `ev_identity`: it is built from the stored blocks and events,
        with the keys the blocks would have written (test_identity_trail.py compares them). Format
        2 wrote every projection with its block, so they are complete up to the tip: that is the
        projector's position, and `registrations` is what the state at the tip holds."""
        with self.store.read() as txn:
            found = self.store.get_meta(txn, "index_format", 1)
        if found >= INDEX_FORMAT:
            return
        with self.store.write() as txn:
            if found < 2:
                self._build_identity_index(txn)
            seed_registrations(self.store, txn)
            save_position(self.store, txn, self.store.get_meta(txn, "height"), 0)
            self.store.put_meta(txn, "index_format", INDEX_FORMAT)

    def _build_identity_index(self, txn: lmdb.Transaction) -> None:
        dbs, store = self.store.dbs, self.store
        txn.drop(dbs["ev_identity"], delete=False)

        def registrations() -> Iterator[tuple[int, dict[str, Any]]]:
            for kind in ("identity.registered", "identity.wallet_added"):
                prefix = kind.encode() + layout.SEP
                for key, _ in store.iter_prefix(txn, "ev_kind", prefix):
                    ekey = key[len(prefix):]
                    yield unpack_event_key(ekey)[0], decode_value(txn.get(ekey, db=dbs["events"]))

        registered = registration_heights(sorted(registrations(), key=lambda pair: pair[0]))
        block_txs: tuple[int, list[Transaction]] = (-1, [])
        lookups: tuple[int, Any] = (-1, None)
        for ekey, raw in store.iter_prefix(txn, "events", b""):
            height, tx_index, _ = unpack_event_key(ekey)
            event = decode_value(raw)
            if lookups[0] != height:
                lookups = (height, self._identity_lookups(txn, registered, height))
            body = None
            if event["kind"] == "tx.rejected":
                if block_txs[0] != height:
                    block = Block.decode(txn.get(height_key(height), db=dbs["blocks"]))
                    block_txs = (height, self._decode_txs(block, {}, check_signatures=False))
                body = block_txs[1][tx_index].body
            for identity in event_identities(event["kind"], event["addresses"], event["data"], body, *lookups[1]):
                txn.put(index_key(identity, ekey), b"", db=dbs["ev_identity"])

    # --- event sourcing ------------------------------------------------------------------------

    def rebuild(self) -> RebuildReport:
        """Drop every projection and replay the stored blocks through execution, in one write
        transaction, then project the read side again from what the replay wrote (in the
        projector's slices: a crash during them resumes on the next open). Each recomputed state
        root must equal the one stored before.

        The receipts and events stored before are checked too: with the replay's accumulator of
        each height they must give that height's root. Those that do not were changed after they
        were committed (the root covers them); the replay has written the committed ones back, and
        the report names their heights.

        A store that joined by state sync holds no log before its snapshot, so it cannot be
        replayed: `StoreError`."""
        if self.history_from > 1:
            raise StoreError(f"this store joined by state sync (its log starts at height {self.history_from}): "
                             "it cannot be rebuilt from its log; sync a new store instead")
        with self.store.read() as txn:
            old_roots = dict(self.store.iter_prefix(txn, "roots", b""))
            old_results = {key: results_hash(self.store.stored_results(txn, int.from_bytes(key, "big")))
                           for key in old_roots}
        repaired = []
        try:
            with self.store.write() as txn:
                self.store.clear_projections(txn)
                self._apply_genesis(txn)
                self.tip = self._tip_in(txn)  # the replay's own tip, inside the transaction
                for key, raw in self.store.iter_prefix(txn, "blocks", b""):
                    block = Block.decode(raw)
                    # our own log: its signatures were checked when it was first applied
                    txs = self._decode_txs(block, {}, check_signatures=False)
                    result, self.tip = self._execute(txn, block, txs, certified=True)
                    if old_roots.get(key) != result.state_root:
                        raise StateRootMismatch(f"rebuild gives another state root at height {block.height}")
                    if state_root(block.height, self.tip.accumulator, old_results[key]) != result.state_root:
                        repaired.append(block.height)
        finally:
            self.tip = self._load_tip()  # the store's, whether the rebuild committed or not
        # The replay reset the projector's position: project everything again. Nothing reads
        # meanwhile, so the projector need not hold every block's transactions for `tx_location`.
        self._reload_projector(load_pending=False)
        try:
            self.projector.catch_up()
        except BaseException:
            self._reload_projector()  # a caller that goes on finds the blocks not projected yet
            raise
        return RebuildReport(self.tip.height, tuple(repaired))

    def _reload_projector(self, *, load_pending: bool = True) -> None:
        """The store was rewritten under the projector: read its position again (keeping a test's hook)."""
        fault = self.projector.fault
        self.projector = Projector(self.store, self.chain_id, load_pending=load_pending)
        self.projector.fault = fault

    def _tip_in(self, txn: lmdb.Transaction) -> ChainTip:
        get = self.store.get_meta
        return ChainTip(get(txn, "height"), get(txn, "block_hash"), get(txn, "time_ms"),
                        get(txn, "state_root"), int.from_bytes(get(txn, "accumulator"), "big"))

    def verify_accumulator(self) -> bool:
        """Recompute the state accumulator from every projection entry: a full audit of the store."""
        with self.store.read() as txn:
            total = sum(entry_digest(k, v) for k, v in self.store.iter_prefix(txn, "state", b""))
        return total % (1 << 256) == self.tip.accumulator

    # --- state sync ------------------------------------------------------------------------------

    def snapshot_point(self, txn: lmdb.Transaction) -> SnapshotPoint:
        """The chain's tip as seen by the read transaction `txn` (an MVCC snapshot), with the
        results hash of that block, recomputed from its stored receipts and events."""
        tip = self._tip_in(txn)
        results = self.genesis.hash if tip.height == 0 else results_hash(self.store.stored_results(txn, tip.height))
        return SnapshotPoint(self.chain_id, self.genesis.hash, tip.height, tip.block_hash, tip.time_ms,
                             results, tip.state_root)

    def snapshot_entries(self, txn: lmdb.Transaction) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, stored value) of the `state` sub-database, in key order, as `txn` sees it."""
        return self.store.iter_prefix(txn, "state", b"")

    @property
    def history_from(self) -> int:
        """The first height whose block this node holds (1 unless it joined by state sync)."""
        with self.store.read() as txn:
            return self.store.get_meta(txn, "history_from", 1)

    def check_history(self, height: int, *, state: bool = False) -> None:
        """Raise `PrunedHistory` if what is asked of `height` is not on this node: its block,
        certificate, receipts or events (below `history_from`), or with `state`, balances and
        holders at that height (below `history_from - 1`, the snapshot's height)."""
        first = self.history_from
        if first > 1 and height < (first - 1 if state else first):
            raise PrunedHistory(height, first)

    def install_snapshot(self, point: SnapshotPoint, entries: Iterable[tuple[bytes, bytes]], *,
                         certified_root: bytes) -> ChainTip:
        """Replace the state of an empty store (tip 0, no block) by a snapshot's entries, in ONE
        write transaction: the state entries and their history versions at the snapshot's height,
        the tip (height, block hash, time, root, accumulator), the root in `roots`, and
        `history_from` = height + 1. The accumulator and root are recomputed over every entry; if
        the root differs from `certified_root`, nothing is written (`StateRootMismatch`)."""
        if point.chain_id != self.chain_id or point.genesis_hash != self.genesis.hash:
            raise StoreError(f"snapshot for chain {point.chain_id!r}, this store is {self.chain_id!r}")
        if self.tip.height != 0 or point.height < 1:
            raise StoreError(f"a snapshot installs into an empty store only (tip is {self.tip.height})")
        db = self.store.dbs["state"]
        with self.store.write() as txn:
            if self.store.get_meta(txn, "height") != 0 or txn.get(height_key(1), db=self.store.dbs["blocks"]):
                raise StoreError("a snapshot installs into an empty store only")
            for name in ("state", "hist_holding", "hist_supply", "wallet_changes") + READ_SIDE_DBS:
                txn.drop(self.store.dbs[name], delete=False)
            accumulator = 0
            previous: bytes | None = None
            for key, raw in entries:
                if previous is not None and key <= previous:
                    raise StoreError("snapshot entries out of order or repeated")
                previous = key
                accumulator += entry_digest(key, raw)
                txn.put(key, raw, db=db)
                write_history_version(self.store, txn, key, raw, point.height)
            accumulator %= 1 << 256
            root = state_root(point.height, accumulator, point.results_hash)
            if root != certified_root:
                raise StateRootMismatch(f"snapshot at height {point.height} gives state root {root.hex()}, "
                                        f"the chain certifies {certified_root.hex()}")
            tip = ChainTip(point.height, point.block_hash, point.time_ms, root, accumulator)
            self._write_tip(txn, tip)
            self.store.put_meta(txn, "history_from", point.height + 1)
            # The read side starts at the snapshot: its wallet balances are in `hist_wallet` already
            # (write_history_version), who is registered is what its state says, and the projector
            # starts with the first block after it (no event before it is on this node).
            seed_registrations(self.store, txn)
            save_position(self.store, txn, point.height, 0)
        self.tip = tip
        self._reload_projector()
        self._validated.clear()
        self._validator_hashes = None
        return tip

    # --- dry runs ---------------------------------------------------------------------------------

    def next_nonce(self, address: bytes) -> int:
        with self.store.read() as txn:
            return self.store.state_over(txn).get(layout.nonce(address), 0)

    def dry_run(self, tx: Transaction, *, state: State | None = None) -> Outcome:
        """The outcome `tx` would have on the committed state (or on `state`), at the tip's time."""
        if state is not None:
            return dry_run(state, tx, time_s=self.tip.time_ms // 1000, height=self.tip.height + 1)
        with self.store.read() as txn:
            return dry_run(self.store.state_over(txn), tx, time_s=self.tip.time_ms // 1000,
                           height=self.tip.height + 1)

    def compliance_check(self, token: str, sender: bytes, receiver: bytes, amount: int, *,
                         time_s: int | None = None) -> Outcome:
        """Exactly the outcome a `token.transfer` of `amount` from `sender` to `receiver` would get,
        if executed at `time_s` (default: the last block's time) on the committed state."""
        now_s = self.tip.time_ms // 1000 if time_s is None else time_s
        with self.store.read() as txn:
            try:
                check_transfer(self.store.state_over(txn), token, sender, receiver, amount, now_s)
            except Refusal as refusal:
                return refusal.outcome
        return OK


def _check_block_limits(state: State, block: Block) -> None:
    """A block holds at most the chain's `block_txs_max` transactions of `block_bytes_max` bytes in
    all, as the members set them (docs/GOVERNANCE.md): a limit every node checks alike."""
    params = chain_params(state)
    if len(block.txs) > params["block_txs_max"]:
        raise InvalidBlock(f"{len(block.txs)} transactions, the chain allows {params['block_txs_max']}")
    size = sum(len(tx) for tx in block.txs)
    if size > params["block_bytes_max"]:
        raise InvalidBlock(f"{size} bytes of transactions, the chain allows {params['block_bytes_max']}")
