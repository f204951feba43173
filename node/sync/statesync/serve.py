"""The serving side: take a snapshot every `snapshot_interval` blocks and answer peers' requests.

The read transaction is opened on the event loop right after the commit of h, so it sees exactly
the state of h (LMDB read transactions are MVCC snapshots); reading it out and writing the files
happens in a worker thread, off the commit path. One snapshot is taken at a time: if the previous
one is still being written when the next is due, the next is skipped (and logged).

It also answers what a joining node's trust chain asks (node/sync/statesync/verify.py): `get_headers`
(certified headers, each as its block without transactions, bounded in number and in bytes) and
`get_validators` (the set of a height, from the state: every node, a state-synced one too, holds
the sets of every height from 1 to its tip + 2).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ledger import Block, Ledger, NotFound, queries
from node.p2p import wire

from .files import SnapshotFiles
from .snapshot import CHUNK_BYTES_MAX, SnapshotError, take_in

log = logging.getLogger("secledger.statesync")


#: Most bytes of stored blocks read to answer one `get_headers` (at least one block is read), and
#: most bytes of headers and certificates in the answer.
HEADERS_READ_BYTES_MAX: int = 16 << 20
HEADERS_ANSWER_BYTES_MAX: int = 1 << 20


class SnapshotServer:
    def __init__(self, ledger: Ledger, directory: Path, *, interval: int, kept: int,
                 chunk_bytes: int = CHUNK_BYTES_MAX) -> None:
        self.ledger = ledger
        self.files = SnapshotFiles(directory, kept=kept)
        self.interval = interval
        self.chunk_bytes = chunk_bytes
        self._task: asyncio.Task[None] | None = None
        self.taken = 0

    def on_commit(self, height: int) -> None:
        if self.interval <= 0 or height % self.interval != 0:
            return
        if self._task is not None and not self._task.done():
            log.warning("state sync: snapshot at height %d skipped: the previous one is still being written", height)
            return
        txn = self.ledger.store.read()
        self._task = asyncio.get_running_loop().create_task(self._write(txn, height), name="snapshot")

    async def _write(self, txn, height: int) -> None:  # noqa: ANN001 (an lmdb.Transaction)
        def work() -> None:
            try:
                snapshot = take_in(self.ledger, txn, chunk_bytes=self.chunk_bytes)
            finally:
                txn.abort()
            self.files.write(snapshot)

        try:
            await asyncio.to_thread(work)
            self.taken += 1
            log.info("state sync: snapshot at height %d written", height)
        except (OSError, SnapshotError) as exc:
            log.error("state sync: snapshot at height %d failed: %s", height, exc)

    async def close(self) -> None:
        """Wait for a snapshot being written (the store must stay open until it is done)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # --- answering peers --------------------------------------------------------------------------

    def snapshots(self) -> wire.Snapshots:
        listed = []
        for height in reversed(self.files.heights()[-wire.SNAPSHOTS_MAX:]):
            try:
                listed.append((height, self.files.manifest(height).encode()))
            except SnapshotError:
                continue
        return wire.Snapshots(tuple(listed))

    def chunk(self, request: wire.GetSnapshotChunk) -> wire.SnapshotChunk:
        try:
            data = self.files.chunk(request.height, request.index)
        except SnapshotError:
            data = b""
        return wire.SnapshotChunk(request.height, request.index, data)

    def headers(self, request: wire.GetHeaders) -> wire.Headers:
        """Certified headers from `from_height` on, in order, while the store has them and the bounds
        allow (a state-synced node has none below its snapshot)."""
        pairs: list[tuple[bytes, bytes]] = []
        read = size = 0
        for height in range(request.from_height, request.from_height + min(request.count, wire.HEADERS_MAX)):
            if height < 1:
                break
            try:
                raw, certificate = queries.block(self.ledger, height)
            except NotFound:
                break
            header = Block(Block.decode(raw).header, ()).encode()
            if pairs and size + len(header) + len(certificate) > HEADERS_ANSWER_BYTES_MAX:
                break
            pairs.append((header, certificate))
            size += len(header) + len(certificate)
            read += len(raw)
            if read >= HEADERS_READ_BYTES_MAX:
                break
        return wire.Headers(tuple(pairs))

    def validators(self, request: wire.GetValidators) -> wire.Validators:
        """The set effective at a height as [validator_key, node_key, power], ascending by key; empty
        for a height this node has not decided (above its tip + 2, or 0)."""
        try:
            entries = queries.validators_at(self.ledger, request.height)
        except NotFound:
            return wire.Validators(request.height, ())
        return wire.Validators(request.height, tuple((v["validator_key"], v["node_key"], v["power"])
                                                     for v in entries[:wire.VALIDATORS_MAX]))
