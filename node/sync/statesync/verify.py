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
- `untrusted-set`    without a trust root configured, that set is the genesis set (a node with an
                     empty store knows only the genesis);
- `bad-header-chain` with a trust root configured (`[statesync] trust_height`, `trust_hash`), block
                     h + 1 is the very header the trust chain verified (see below);
- `certificate`      block h + 1's commit certificate verifies against that set;
- `state-root`       the root recomputed over every entry (accumulator) with the manifest's results
                     hash equals block h + 1's `previous_state_root`, the root certified for h.

The trust chain (CometBFT's light client, sequential): the operator names a height T and the hash of
its block header, read from a node they trust. The joining node fetches header T from the peer
(`trust-hash-mismatch` unless it has that hash), then the headers between T and h + 1 (`get_headers`):

- forward (T < h + 1), for each next header k: it is of this chain and height k, its
  `previous_block_hash` is header k - 1's hash and its `validators_hash` is header k - 1's
  `next_validators_hash` (`bad-header-chain`); the set of k, fetched from the peer (`get_validators`)
  when no set of that hash is known yet, hashes to it (`set-hash-mismatch`); and k's commit
  certificate verifies against that set (`bad-header-chain`). A change of the set decided at H is
  certified by the old set in header H + 1's `next_validators_hash` before the new set signs.
- backward (h + 1 < T): each header's hash is the `previous_block_hash` of the header above it, up
  to T (`bad-header-chain`): SHA-256 links from a trusted header need no signatures.

The result is the hash of header h + 1, which `verify` then requires of block h + 1; so the set in
the snapshot (which must hash to block h + 1's `validators_hash`) is the one the chain names.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.certificate import CommitCertificate
from consensus.errors import InvalidCertificate, MalformedMessage, UsageError
from consensus.validators import Validator, ValidatorSet
from ledger import Block, InvalidBlock, Ledger
from ledger.block import HASH_BYTES
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
class TrustRoot:
    """`[statesync] trust_height` and `trust_hash`: a height and the hash of its block header, as a
    node the operator trusts reports them (`secledger query block H`: its `hash`)."""

    height: int
    hash: bytes

    def __post_init__(self) -> None:
        if self.height < 1 or len(self.hash) != HASH_BYTES:
            raise ValueError("a trust root is a height >= 1 and a 32-byte header hash")


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


# --- the trust chain ----------------------------------------------------------------------------------


def decode_header(ledger: Ledger, data: bytes, height: int) -> Block:
    """A header as `headers` carries it (its block without transactions: the same hash), which must be
    of this chain and of `height`."""
    try:
        header = Block.decode(data)
    except InvalidBlock as exc:
        raise SnapshotRefused("bad-header-chain", f"header {height}: {exc}") from None
    if header.txs or header.header.chain_id != ledger.chain_id or header.height != height:
        raise SnapshotRefused("bad-header-chain", f"expected the header of block {height} of {ledger.chain_id!r}, "
                              f"got block {header.height} of {header.header.chain_id!r}")
    return header


def check_trusted_header(ledger: Ledger, trust: TrustRoot, data: bytes) -> Block:
    """The peer's header at the trusted height, if it has the trusted hash."""
    header = decode_header(ledger, data, trust.height)
    if header.hash != trust.hash:
        raise SnapshotRefused("trust-hash-mismatch", f"the peer's header {trust.height} has hash "
                              f"{header.hash.hex()}, statesync.trust_hash is {trust.hash.hex()}")
    return header


def check_next_header(trusted: Block, header: Block) -> None:
    """Header k + 1 follows the trusted header k: it names k as its parent, and the set that k
    certified for k + 1 as its own."""
    if header.header.previous_block_hash != trusted.hash:
        raise SnapshotRefused("bad-header-chain", f"header {header.height} does not name header "
                              f"{trusted.height} as its parent")
    if header.header.validators_hash != trusted.header.next_validators_hash:
        raise SnapshotRefused("bad-header-chain", f"header {header.height} names another validator set than "
                              f"header {trusted.height} certified for it")


def check_validator_set(height: int, entries: tuple[tuple[bytes, bytes, int], ...], expected: bytes) -> ValidatorSet:
    """A peer's set of `height` as (validator_key, node_key, power): it must hash (the chain's rule,
    `governance.validators_hash`) to `expected`, a hash a verified header names."""
    if validators_hash(tuple((key, node_key, power, "", "") for key, node_key, power in entries)) != expected:
        raise SnapshotRefused("set-hash-mismatch", f"the peer's validator set of height {height} does not hash "
                              f"to {expected.hex()[:16]}, which header {height} names")
    try:
        return ValidatorSet(Validator(key, power) for key, _, power in entries)
    except UsageError as exc:  # the hash matched: a certified header names a set the core refuses
        raise SnapshotRefused("set-hash-mismatch", f"the validator set of height {height}: {exc}") from None


def check_header_certificate(ledger: Ledger, header: Block, certificate: bytes, validator_set: ValidatorSet) -> None:
    """+2/3 of the set of the header's height precommitted exactly this header (the consensus core's
    own certificate check)."""
    try:
        CommitCertificate.decode(certificate).verify(ledger.chain_id, validator_set, height=header.height,
                                                     block_id=header.hash)
    except (InvalidCertificate, MalformedMessage) as exc:
        raise SnapshotRefused("bad-header-chain", f"header {header.height}: {exc}") from None


def check_parent(child: Block, parent: Block) -> None:
    """Backwards from a trusted header: the header below is the one it names by hash."""
    if child.header.previous_block_hash != parent.hash or parent.height + 1 != child.height:
        raise SnapshotRefused("bad-header-chain", f"header {parent.height} is not the parent that header "
                              f"{child.height} names")


# --- the snapshot -----------------------------------------------------------------------------------


def verify(ledger: Ledger, manifest: Manifest, chunks: list[bytes], *, block: bytes, next_block: bytes,
           next_certificate: bytes, trusted_hash: bytes | None = None) -> VerifiedSnapshot:
    """Verify the snapshot against block h (`block`), block h + 1 (`next_block`) and h + 1's commit
    certificate; return its entries and the certified root, or raise `SnapshotRefused`.
    `trusted_hash`: the hash of header h + 1 that the trust chain from a configured trust root
    verified; None: no trust root is configured, and the genesis set is the only trusted one."""
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
    if trusted_hash is not None:
        if nxt.hash != trusted_hash:
            raise SnapshotRefused("bad-header-chain", f"block {height + 1} is not the header that the trust "
                                  "chain verified")
    else:
        genesis_hash = ledger.validator_hashes()[0] if ledger.tip.height == 0 else None
        if set_hash != genesis_hash:
            raise SnapshotRefused("untrusted-set", f"the validator set of height {height + 1} differs from the "
                                  "genesis set and no trust root is configured (statesync.trust_height, "
                                  "statesync.trust_hash)")
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
