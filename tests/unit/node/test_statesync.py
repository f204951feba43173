"""State sync, without the network: a snapshot taken from a `LedgerHarness` chain, verified against
the root that block h + 1 certifies, installed into an empty store, followed by block sync; and
each forgery a peer could send, refused with its named reason while the store stays untouched."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from consensus.certificate import CommitCertificate
from consensus.messages import MessageType, Vote, sign_bytes
from ledger import Ledger, StateRootMismatch, StoreError, queries
from ledger.chain import PrunedHistory
from ledger.testing import LedgerHarness, address_of, key_for
from ledger.testing import test_genesis as genesis_for_tests
from node.sync.statesync import snapshot as snap
from node.sync.statesync.files import SnapshotFiles
from node.sync.statesync.install import install
from node.sync.statesync.verify import SnapshotRefused, verify


def certificate(signer: str, chain_id: str, height: int, block_id: bytes) -> bytes:
    key = key_for(signer)
    data = sign_bytes(chain_id, MessageType.PRECOMMIT, height, 0, block_id, -1)
    vote = Vote(MessageType.PRECOMMIT, height, 0, block_id, bytes(key.verify_key), key.sign(data).signature)
    return CommitCertificate.from_votes(height, 0, block_id, [vote]).encode()


class Source:
    """A chain of transfers; a snapshot at `height`; then `after` more blocks, all certified by the
    genesis validator (validator-0)."""

    def __init__(self, path, *, chain_id: str = "secledger-test", after: int = 3, chunk_bytes: int = 512) -> None:
        self.h = LedgerHarness(str(path), genesis=genesis_for_tests(chain_id))
        h = self.h
        h.standard_setup()
        h.investor("alice")
        h.investor("bob")
        h.token("ACME")
        assert h.run(h.signer("agent").issue("ACME", address_of("alice"), 1000)).ok
        for amount in (1, 2, 3):
            assert h.run(h.signer("alice").transfer("ACME", address_of("bob"), amount)).ok
        self.snapshot = snap.take(h.ledger, chunk_bytes=chunk_bytes)
        self.height = h.ledger.tip.height
        self.blocks: dict[int, tuple[bytes, bytes]] = {}
        for _ in range(after):
            block = h.block([h.signer("alice").transfer("ACME", address_of("bob"), 5)])
            cert = certificate("validator-0", h.ledger.chain_id, block.height, block.hash)
            h.ledger.apply_block(block, cert)
        for height in range(1, h.ledger.tip.height + 1):
            self.blocks[height] = queries.block(h.ledger, height)

    def verify_args(self) -> dict[str, bytes]:
        return {"block": self.blocks[self.height][0], "next_block": self.blocks[self.height + 1][0],
                "next_certificate": self.blocks[self.height + 1][1]}


@pytest.fixture
def source(tmp_path):
    s = Source(tmp_path / "source")
    yield s
    s.h.close()


@pytest.fixture
def fresh(tmp_path):
    ledger = Ledger.open(str(tmp_path / "fresh"), genesis_for_tests())
    yield ledger
    ledger.close()


def test_snapshot_is_chunked_and_hashed(source):
    manifest, chunks = source.snapshot.manifest, source.snapshot.chunks
    assert manifest.point.height == source.height and len(chunks) > 1
    assert all(len(c) <= 512 for c in chunks)
    assert [snap.chunk_hash(c) for c in chunks] == list(manifest.chunk_hashes)
    assert sum(len(snap.decode_chunk(c)) for c in chunks) == manifest.entries
    assert snap.Manifest.decode(manifest.encode()) == manifest
    assert manifest.point.state_root == queries.state_root_at(source.h.ledger, source.height)


def test_join_by_snapshot_then_block_sync(source, fresh):
    verified = verify(fresh, source.snapshot.manifest, list(source.snapshot.chunks), **source.verify_args())
    tip = install(fresh, verified)
    assert tip.height == source.height
    assert tip.state_root == queries.state_root_at(source.h.ledger, source.height)
    assert fresh.verify_accumulator()
    assert fresh.history_from == source.height + 1
    # an operator (and the fault campaign's checker) reads where the node's history begins
    assert queries.chain_status(fresh)["history_from"] == source.height + 1
    assert queries.chain_status(source.h.ledger)["history_from"] == 1
    # block sync from h + 1: the ledger checks chain, validators hashes and the state root
    for height in range(source.height + 1, source.h.ledger.tip.height + 1):
        block_bytes, cert = source.blocks[height]
        from ledger import Block
        fresh.apply_block(Block.decode(block_bytes), cert)
    assert fresh.tip == source.h.ledger.tip
    alice = address_of("alice")
    assert queries.balance(fresh, "ACME", alice) == queries.balance(source.h.ledger, "ACME", alice)
    # balances at heights from the snapshot's on come from the versions the install wrote
    for height in range(source.height, fresh.tip.height + 1):
        assert (queries.balance(fresh, "ACME", alice, height)
                == queries.balance(source.h.ledger, "ACME", alice, height))


def test_history_before_the_snapshot_is_a_named_error(source, fresh):
    install(fresh, verify(fresh, source.snapshot.manifest, list(source.snapshot.chunks), **source.verify_args()))
    fresh.check_history(source.height + 1)
    fresh.check_history(source.height, state=True)
    with pytest.raises(PrunedHistory, match="state sync"):
        fresh.check_history(source.height)
    with pytest.raises(PrunedHistory) as info:
        fresh.check_history(source.height - 1, state=True)
    assert info.value.history_from == source.height + 1
    assert isinstance(info.value, queries.NotFound)
    source.h.ledger.check_history(1)  # an archive node holds every height
    # the queries say so too, instead of answering 0 for a balance the node never saw
    alice = address_of("alice")
    with pytest.raises(PrunedHistory):
        queries.balance(fresh, "ACME", alice, source.height - 1)
    with pytest.raises(PrunedHistory):
        queries.holders(fresh, "ACME", height=source.height - 1)
    with pytest.raises(PrunedHistory):
        queries.block(fresh, source.height)
    with pytest.raises(PrunedHistory):
        queries.state_root_at(fresh, source.height - 1)
    assert queries.state_root_at(fresh, source.height) == queries.state_root_at(source.h.ledger, source.height)
    assert queries.balance(fresh, "ACME", alice, source.height) == \
        queries.balance(source.h.ledger, "ACME", alice, source.height)


def _rechunk(source: Source, change) -> tuple[snap.Manifest, list[bytes]]:
    """A forger's snapshot: the entries changed by `change`, re-chunked, with a manifest that
    matches its own chunks (so only the certified root can catch it)."""
    entries = [e for c in source.snapshot.chunks for e in snap.decode_chunk(c)]
    entries = change(entries)
    chunks = [snap.encode_chunk(entries[i:i + 4]) for i in range(0, len(entries), 4)]
    manifest = dataclasses.replace(source.snapshot.manifest, entries=len(entries),
                                   chunk_hashes=tuple(snap.chunk_hash(c) for c in chunks))
    return manifest, chunks


def _refused(fresh, manifest, chunks, reason, **args) -> None:
    with pytest.raises(SnapshotRefused) as info:
        verify(fresh, manifest, chunks, **args)
    assert info.value.reason == reason, info.value
    assert fresh.tip.height == 0 and fresh.verify_accumulator()


def _balance_key(entries):
    return next(i for i, (k, _) in enumerate(entries) if k.startswith(b"bal") or b"ACME" in k)


def test_forged_entry_is_refused(source, fresh):
    def forge(entries):
        i = _balance_key(entries)
        key, raw = entries[i]
        entries[i] = (key, raw[:-1] + bytes([raw[-1] ^ 1]))
        return entries
    _refused(fresh, *_rechunk(source, forge), "state-root", **source.verify_args())


def test_missing_entry_is_refused(source, fresh):
    _refused(fresh, *_rechunk(source, lambda e: e[:3] + e[4:]), "state-root", **source.verify_args())


def test_added_entry_is_refused(source, fresh):
    def add(entries):
        return sorted(entries + [(b"zz-extra", msgpack.packb(1))])
    _refused(fresh, *_rechunk(source, add), "state-root", **source.verify_args())


def test_repeated_entry_is_refused(source, fresh):
    _refused(fresh, *_rechunk(source, lambda e: e[:4] + e[3:]), "entry-order", **source.verify_args())


def test_chunk_not_matching_its_manifest_hash_is_refused(source, fresh):
    chunks = list(source.snapshot.chunks)
    chunks[1] = chunks[1][:-1] + bytes([chunks[1][-1] ^ 1])
    _refused(fresh, source.snapshot.manifest, chunks, "chunk-hash", **source.verify_args())
    _refused(fresh, source.snapshot.manifest, chunks[:-1], "chunk-count", **source.verify_args())


def test_snapshot_of_another_chain_is_refused(tmp_path, source, fresh):
    other = Source(tmp_path / "other", chain_id="another-chain", after=1)
    try:
        _refused(fresh, other.snapshot.manifest, list(other.snapshot.chunks), "other-chain", **other.verify_args())
        # its manifest relabelled as ours: the blocks name the other chain
        point = dataclasses.replace(other.snapshot.manifest.point, chain_id=fresh.chain_id,
                                    genesis_hash=fresh.genesis.hash)
        manifest = dataclasses.replace(other.snapshot.manifest, point=point)
        _refused(fresh, manifest, list(other.snapshot.chunks), "blocks", **other.verify_args())
    finally:
        other.h.close()


def test_certificate_by_others_than_the_genesis_set_is_refused(source, fresh):
    args = source.verify_args()
    nxt = source.blocks[source.height + 1][0]
    from ledger import Block
    args["next_certificate"] = certificate("intruder", fresh.chain_id, source.height + 1, Block.decode(nxt).hash)
    _refused(fresh, source.snapshot.manifest, list(source.snapshot.chunks), "certificate", **args)


def test_blocks_that_do_not_link_are_refused(source, fresh):
    args = source.verify_args()
    args["block"] = source.blocks[source.height - 1][0]
    _refused(fresh, source.snapshot.manifest, list(source.snapshot.chunks), "blocks", **args)
    args = source.verify_args()
    args["next_block"], args["next_certificate"] = source.blocks[source.height + 2]
    _refused(fresh, source.snapshot.manifest, list(source.snapshot.chunks), "blocks", **args)


def test_install_writes_nothing_unless_the_root_matches(source, fresh):
    entries = [e for c in source.snapshot.chunks for e in snap.decode_chunk(c)]
    with pytest.raises(StateRootMismatch):
        fresh.install_snapshot(source.snapshot.manifest.point, entries, certified_root=b"\x00" * 32)
    assert fresh.tip.height == 0 and fresh.verify_accumulator() and fresh.history_from == 1


def test_install_refuses_a_store_that_holds_blocks(source):
    entries = [e for c in source.snapshot.chunks for e in snap.decode_chunk(c)]
    with pytest.raises(StoreError, match="empty store"):
        source.h.ledger.install_snapshot(source.snapshot.manifest.point, entries,
                                         certified_root=source.snapshot.manifest.point.state_root)


def test_manifest_decode_refuses_bad_input(source):
    data = source.snapshot.manifest.encode()
    with pytest.raises(snap.SnapshotError):
        snap.Manifest.decode(data[:-3])
    with pytest.raises(snap.SnapshotError):
        snap.Manifest.decode(msgpack.packb([2] + msgpack.unpackb(data)[1:]))
    with pytest.raises(snap.SnapshotError):
        snap.decode_chunk(msgpack.packb([[b"k"]]))


def test_snapshot_files_keep_the_last_k(tmp_path, source):
    files = SnapshotFiles(tmp_path / "snapshots", kept=2)
    files.write(source.snapshot)
    for _ in range(2):
        source.h.commit()
        files.write(snap.take(source.h.ledger, chunk_bytes=512))
    heights = files.heights()
    assert heights == [source.height + 4, source.height + 5]
    newest = files.manifest(heights[-1])
    assert newest.point.height == heights[-1]
    assert [snap.chunk_hash(files.chunk(heights[-1], i)) for i in range(len(newest.chunk_hashes))] \
        == list(newest.chunk_hashes)
    with pytest.raises(snap.SnapshotError):
        files.chunk(heights[-1], len(newest.chunk_hashes))
    with pytest.raises(snap.SnapshotError):
        files.manifest(source.height)


def test_a_set_changed_since_genesis_is_refused_without_a_trust_root(tmp_path):
    from ledger.client import Action
    from ledger.testing import governed_genesis

    genesis = governed_genesis(validators=(("v0", 100),))
    h = LedgerHarness(str(tmp_path / "governed"), genesis=genesis)
    fresh = Ledger.open(str(tmp_path / "fresh-governed"), genesis)
    try:
        height = h.ledger.tip.height + 1
        receipt = h.commit(h.signer("m0").propose([Action.set_validator_power(address_of("validator:v0"), 120)],
                                                  expires_at_height=height + 10)).receipts[0]
        assert receipt.outcome.ok
        h.commit()
        h.commit()  # the new power is effective from here on
        snapshot = snap.take(h.ledger)
        at = h.ledger.tip.height
        block = h.block([])
        h.ledger.apply_block(block, certificate("validator:v0", genesis.chain_id, block.height, block.hash))
        args = {"block": queries.block(h.ledger, at)[0], "next_block": block.encode(),
                "next_certificate": certificate("validator:v0", genesis.chain_id, block.height, block.hash)}
        _refused(fresh, snapshot.manifest, list(snapshot.chunks), "untrusted-set", **args)
    finally:
        fresh.close()
        h.close()
