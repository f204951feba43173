"""Checking a fetched snapshot before anything of it is written.

A snapshot at h is accepted only if ALL of these hold (each failure is a `SnapshotRefused` with a
named `reason`, logged by the fetcher, which then tries another peer):

- `other-chain`      its chain id and genesis hash are this node's;
- `chunk-count`, `chunk-hash`, `chunk-decode`   every chunk listed, each with its manifest hash;
- `entry-order`, `entry-count`   entries strictly ascending by key, as many as the manifest says;
- `blocks`           block h and block h + 1 decode, have those heights and this chain id, and
                     block h + 1's `previous_block_hash` is block h's hash, which is the manifest's
                     block hash; the manifest's time is block h's;
- `validator-set`    the set the snapshot says is effective at h + 1 hashes to block h + 1's
                     `validators_hash`;
- `untrusted-set`    that set is the genesis set (the trust root: a node with an empty store knows
                     only the genesis; a chain whose set changed needs a trusted height and hash,
                     not implemented yet, so such a snapshot is refused);
- `certificate`      block h + 1's commit certificate verifies against that set;
- `state-root`       the root recomputed over every entry (accumulator) with the manifest's results
                     hash equals block h + 1's `previous_state_root`, the root certified for h.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.certificate import CommitCertificate
from consensus.errors import InvalidCertificate, MalformedMessage
from consensus.validators import Validator, ValidatorSet
from ledger import Block, InvalidBlock, Ledger
from ledger.chain import SnapshotPoint
from ledger.governance import validators_at, validators_hash
from ledger.store import entry_digest, state_root

from .snapshot import Manifest, SnapshotError, chunk_hash, decode_chunk


class SnapshotRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class VerifiedSnapshot:
    point: SnapshotPoint
    entries: tuple[tuple[bytes, bytes], ...]
    certified_root: bytes


def check_manifest(ledger: Ledger, manifest: Manifest) -> None:
    """The checks that need only the manifest (done before fetching any chunk)."""
    point = manifest.point
    if point.chain_id != ledger.chain_id or point.genesis_hash != ledger.genesis.hash:
        raise SnapshotRefused("other-chain", f"snapshot of chain {point.chain_id!r} "
                              f"(genesis {point.genesis_hash.hex()[:16]}), this node is {ledger.chain_id!r}")
    if point.height < 1:
        raise SnapshotRefused("blocks", "a snapshot at height 0 is the genesis")


def check_chunk(manifest: Manifest, index: int, chunk: bytes) -> None:
    if not 0 <= index < len(manifest.chunk_hashes):
        raise SnapshotRefused("chunk-count", f"chunk {index} is not in the manifest")
    if chunk_hash(chunk) != manifest.chunk_hashes[index]:
        raise SnapshotRefused("chunk-hash", f"chunk {index} does not have the manifest's hash")


def verify(ledger: Ledger, manifest: Manifest, chunks: list[bytes], *, block: bytes, next_block: bytes,
           next_certificate: bytes) -> VerifiedSnapshot:
    """Verify the snapshot against block h (`block`), block h + 1 (`next_block`) and h + 1's commit
    certificate; return its entries and the certified root, or raise `SnapshotRefused`."""
    check_manifest(ledger, manifest)
    point = manifest.point
    height = point.height
    if len(chunks) != len(manifest.chunk_hashes):
        raise SnapshotRefused("chunk-count", f"{len(chunks)} chunks, the manifest lists {len(manifest.chunk_hashes)}")
    entries: list[tuple[bytes, bytes]] = []
    for index, chunk in enumerate(chunks):
        check_chunk(manifest, index, chunk)
        try:
            entries.extend(decode_chunk(chunk))
        except SnapshotError as exc:
            raise SnapshotRefused("chunk-decode", f"chunk {index}: {exc}") from None
    for (a, _), (b, _) in zip(entries, entries[1:], strict=False):
        if a >= b:
            raise SnapshotRefused("entry-order", f"entry {b.hex()[:32]} repeated or out of order")
    if len(entries) != manifest.entries:
        raise SnapshotRefused("entry-count", f"{len(entries)} entries, the manifest says {manifest.entries}")

    try:
        at, nxt = Block.decode(block), Block.decode(next_block)
    except InvalidBlock as exc:
        raise SnapshotRefused("blocks", str(exc)) from None
    for b, want in ((at, height), (nxt, height + 1)):
        if b.header.chain_id != ledger.chain_id or b.height != want:
            raise SnapshotRefused("blocks", f"expected block {want} of {ledger.chain_id!r}, got block "
                                  f"{b.height} of {b.header.chain_id!r}")
    if nxt.header.previous_block_hash != at.hash or at.hash != point.block_hash:
        raise SnapshotRefused("blocks", f"block {height} is not the parent of block {height + 1}, "
                              "or not the snapshot's block")
    if at.header.time_ms != point.time_ms:
        raise SnapshotRefused("blocks", f"snapshot time {point.time_ms} is not block {height}'s")

    lookup = dict(entries)
    try:
        entries_set = validators_at(lookup.get, height + 1)
    except Exception as exc:  # a snapshot without a well-formed validator set
        raise SnapshotRefused("validator-set", f"no validator set in the snapshot: {type(exc).__name__}") from None
    set_hash = validators_hash(entries_set)
    if set_hash != nxt.header.validators_hash:
        raise SnapshotRefused("validator-set", f"the snapshot's set of height {height + 1} is not the one "
                              f"block {height + 1} names")
    genesis_hash = ledger.validator_hashes()[0] if ledger.tip.height == 0 else None
    if set_hash != genesis_hash:
        raise SnapshotRefused("untrusted-set", f"the validator set of height {height + 1} differs from the "
                              "genesis set and no trust root is configured")
    validator_set = ValidatorSet(Validator(key, power) for key, _, power, _, _ in entries_set)
    try:
        CommitCertificate.decode(next_certificate).verify(ledger.chain_id, validator_set, height=height + 1,
                                                          block_id=nxt.hash)
    except (InvalidCertificate, MalformedMessage) as exc:
        raise SnapshotRefused("certificate", f"block {height + 1}: {exc}") from None

    accumulator = sum(entry_digest(k, v) for k, v in entries) % (1 << 256)
    root = state_root(height, accumulator, point.results_hash)
    if root != nxt.header.previous_state_root:
        raise SnapshotRefused("state-root", f"entries give root {root.hex()}, block {height + 1} certifies "
                              f"{nxt.header.previous_state_root.hex()}")
    return VerifiedSnapshot(point, tuple(entries), root)
