"""A snapshot at height h: every (key, value) of the `state` sub-database after block h, cut into
chunks of at most `CHUNK_BYTES_MAX` encoded bytes, each named by its SHA-256 in a manifest. The
manifest also carries the `SnapshotPoint` (chain, height, block hash, time, results hash, root),
so that a receiver can recompute the root of h and compare it with the one block h + 1 certifies.

Taken from one LMDB read transaction (an MVCC snapshot), so it sees exactly the state of h even
while later blocks commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import lmdb
import msgpack

from ledger import Ledger
from ledger.chain import SnapshotPoint
from node.p2p import wire

#: Most encoded bytes of one chunk (a wire message carries one chunk).
CHUNK_BYTES_MAX: int = wire.SNAPSHOT_CHUNK_BYTES_MAX
#: Most chunks in one snapshot (4 GiB of state at the largest chunk size).
CHUNKS_MAX: int = 4096
MANIFEST_BYTES_MAX: int = 64 + 36 * CHUNKS_MAX + 1024
FORMAT: int = 1


class SnapshotError(Exception):
    """A snapshot, manifest or chunk that does not decode or does not match: the sender's fault."""


@dataclass(frozen=True, slots=True)
class Manifest:
    point: SnapshotPoint
    entries: int
    chunk_hashes: tuple[bytes, ...]

    def encode(self) -> bytes:
        p = self.point
        return msgpack.packb([FORMAT, p.chain_id, p.genesis_hash, p.height, p.block_hash, p.time_ms,
                              p.results_hash, p.state_root, self.entries, list(self.chunk_hashes)],
                             use_bin_type=True)

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(b"secledger/snapshot-manifest/v1\x00" + self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        if len(data) > MANIFEST_BYTES_MAX:
            raise SnapshotError(f"manifest of {len(data)} bytes, at most {MANIFEST_BYTES_MAX}")
        try:
            v = msgpack.unpackb(data, raw=False, use_list=True, max_array_len=CHUNKS_MAX, max_map_len=0,
                                max_ext_len=0, max_str_len=256)
        except Exception as exc:  # msgpack raises many types on bad input
            raise SnapshotError(f"manifest does not decode: {type(exc).__name__}") from None
        if not (isinstance(v, list) and len(v) == 10 and v[0] == FORMAT):
            raise SnapshotError("manifest: expected format 1 with 10 fields")
        _, chain_id, genesis_hash, height, block_hash, time_ms, results, root, entries, hashes = v
        ok = (isinstance(chain_id, str) and all(_uint(x) for x in (height, time_ms, entries))
              and all(isinstance(x, bytes) and len(x) == 32 for x in (genesis_hash, block_hash, results, root))
              and isinstance(hashes, list) and all(isinstance(h, bytes) and len(h) == 32 for h in hashes))
        if not ok:
            raise SnapshotError("manifest: wrong field types")
        manifest = cls(SnapshotPoint(chain_id, genesis_hash, height, block_hash, time_ms, results, root),
                       entries, tuple(hashes))
        if manifest.encode() != data:
            raise SnapshotError("manifest is not in canonical form")
        return manifest


def _uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def chunk_hash(chunk: bytes) -> bytes:
    return hashlib.sha256(chunk).digest()


def encode_chunk(entries: list[tuple[bytes, bytes]]) -> bytes:
    return msgpack.packb([[k, v] for k, v in entries], use_bin_type=True)


def decode_chunk(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) > CHUNK_BYTES_MAX:
        raise SnapshotError(f"chunk of {len(data)} bytes, at most {CHUNK_BYTES_MAX}")
    try:
        v = msgpack.unpackb(data, raw=False, use_list=True, max_map_len=0, max_ext_len=0, max_str_len=0)
    except Exception as exc:
        raise SnapshotError(f"chunk does not decode: {type(exc).__name__}") from None
    if not isinstance(v, list) or not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], bytes)
                                          and isinstance(e[1], bytes) for e in v):
        raise SnapshotError("chunk: expected [[key, value], ...]")
    return [(e[0], e[1]) for e in v]


@dataclass(frozen=True, slots=True)
class Snapshot:
    manifest: Manifest
    chunks: tuple[bytes, ...]


def take(ledger: Ledger, *, chunk_bytes: int = CHUNK_BYTES_MAX) -> Snapshot:
    """A snapshot of the ledger's committed state at its current tip, from one read transaction."""
    with ledger.store.read() as txn:
        return take_in(ledger, txn, chunk_bytes=chunk_bytes)


def take_in(ledger: Ledger, txn: lmdb.Transaction, *, chunk_bytes: int = CHUNK_BYTES_MAX) -> Snapshot:
    """A snapshot of the state as the read transaction `txn` sees it (an MVCC snapshot: later
    commits do not change it). `txn` may have been opened on another thread (py-lmdb opens the
    environment with MDB_NOTLS); the caller ends it."""
    chunk_bytes = min(chunk_bytes, CHUNK_BYTES_MAX)
    chunks: list[bytes] = []
    current: list[tuple[bytes, bytes]] = []
    size = 8
    count = 0
    point = ledger.snapshot_point(txn)
    for key, value in ledger.snapshot_entries(txn):
        entry_size = len(key) + len(value) + 16  # msgpack framing, generously
        if entry_size + 8 > chunk_bytes:
            raise SnapshotError(f"state entry of {entry_size} bytes does not fit a chunk of {chunk_bytes}")
        if current and size + entry_size > chunk_bytes:
            chunks.append(encode_chunk(current))
            current, size = [], 8
        current.append((bytes(key), bytes(value)))
        size += entry_size
        count += 1
    if current or not chunks:
        chunks.append(encode_chunk(current))
    if len(chunks) > CHUNKS_MAX:
        raise SnapshotError(f"{len(chunks)} chunks, at most {CHUNKS_MAX}")
    manifest = Manifest(point, count, tuple(chunk_hash(c) for c in chunks))
    return Snapshot(manifest, tuple(chunks))
