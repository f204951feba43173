"""State sync across changes of the validator set: a trust root (`[statesync] trust_height` and
`trust_hash`) and the light client's walk of certified headers from it to the snapshot's h + 1.

The chain: four genesis validators v0..v3; the consortium adds v4 in block 1 (it signs from 3) and
removes v0 in block 5 (it stops at 7); every block is certified by the set of its height. Snapshots
are taken at heights 4, 8 and 10; the peers' tip is 14. Peers are fakes that answer from that
chain through the node's own serving code (`SnapshotServer`, `BlockSync.serve`), except where a
test makes them forge. Each forgery is built so that the one check it names is what stops it: the
forged chains below come with a forged state that matches their forged headers, so without that
check the forged snapshot would install.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import msgpack
import pytest

from consensus.certificate import CommitCertificate
from consensus.messages import MessageType, Vote, sign_bytes
from consensus.validators import VALIDATORS_MAX
from ledger import Block, Ledger, layout, queries
from ledger.client import Action
from ledger.governance import validators_hash
from ledger.state import decode_value, encode_value
from ledger.store import entry_digest, state_root
from ledger.testing import LedgerHarness, address_of, governed_genesis, key_for
from node.p2p import wire
from node.setup.config import ConfigError, load_config
from node.sync.blocksync import BlockSync
from node.sync.statesync import fetch, serve
from node.sync.statesync import snapshot as snap
from node.sync.statesync.fetch import StateSyncer
from node.sync.statesync.serve import SnapshotServer
from node.sync.statesync.verify import TrustRoot

GENESIS = governed_genesis(validators=(("v0", 10), ("v1", 10), ("v2", 10), ("v3", 10)))
CHAIN_ID = GENESIS.chain_id
SNAPSHOT_HEIGHTS = (4, 8, 10)
TIP = 14
ATTACKERS = ("x0", "x1", "x2")


def signers_at(height: int) -> list[str]:
    if height < 3:
        return ["v0", "v1", "v2", "v3"]
    if height < 7:
        return ["v0", "v1", "v2", "v3", "v4"]
    return ["v1", "v2", "v3", "v4"]


def certificate(block: Block, signers: list[str] | tuple[str, ...]) -> bytes:
    votes = []
    for name in signers:
        key = key_for(f"validator:{name}")
        data = sign_bytes(CHAIN_ID, MessageType.PRECOMMIT, block.height, 0, block.hash, -1)
        votes.append(Vote(MessageType.PRECOMMIT, block.height, 0, block.hash, bytes(key.verify_key),
                          key.sign(data).signature))
    return CommitCertificate.from_votes(block.height, 0, block.hash, votes).encode()


def entries_of(names: tuple[str, ...] | list[str], power: int = 10) -> tuple:
    return tuple(sorted((address_of(f"validator:{n}"), address_of(f"node:{n}"), power, "", n) for n in names))


ATTACKER_SET = entries_of(ATTACKERS)
ATTACKERS_HASH = validators_hash(ATTACKER_SET)


def header_bytes(block: Block) -> bytes:
    return Block(block.header, ()).encode()


class Chain:
    """The governed chain, its snapshots and certified blocks (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.h = LedgerHarness(str(path), genesis=GENESIS)
        member = self.h.signer("m0")  # the only member, 1 of 1: a proposal executes in its own block
        plan = {1: [member.propose([Action.add_validator(address_of("validator:v4"), address_of("node:v4"), 10,
                                                         "127.0.0.1:7", "v4")], expires_at_height=50)],
                5: [member.propose([Action.remove_validator(address_of("validator:v0"))], expires_at_height=50)]}
        self.snapshots: dict[int, snap.Snapshot] = {}
        for height in range(1, TIP + 1):
            block = self.h.block(plan.get(height, []))
            self.h.ledger.validate_block(block)
            result = self.h.ledger.apply_block(block, certificate(block, signers_at(height)))
            assert all(r.outcome.ok for r in result.receipts), [str(r.outcome) for r in result.receipts]
            if height in SNAPSHOT_HEIGHTS:
                self.snapshots[height] = snap.take(self.h.ledger, chunk_bytes=512)
        self.ledger = self.h.ledger

    def block(self, height: int) -> Block:
        return Block.decode(queries.block(self.ledger, height)[0])

    def trust(self, height: int) -> TrustRoot:
        return TrustRoot(height, self.block(height).hash)

    def close(self) -> None:
        self.h.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("chain") / "store")
    assert validators_hash(entries_of(signers_at(TIP))) == c.block(TIP).header.validators_hash
    yield c
    c.close()


@pytest.fixture
def fresh(tmp_path):
    ledger = Ledger.open(str(tmp_path / "fresh"), GENESIS)
    yield ledger
    ledger.close()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_S", 0.01)


# --- forgeries ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Forgery:
    headers: dict[int, tuple[bytes, bytes]]
    blocks: dict[int, tuple[bytes, bytes]]
    snapshot: snap.Snapshot


def forged_state(chain: Chain, h: int, *, attackers: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The snapshot at h with one entry more (the forger's gain) and, with `attackers`, their set as
    the one effective at h + 1; and the root of that state."""
    entries = [e for c in chain.snapshots[h].chunks for e in snap.decode_chunk(c)]
    entries.append((b"zz-forged", encode_value(10**9)))
    if attackers:
        lookup = dict(entries)
        latest = layout.gov_valset(decode_value(lookup[layout.gov_valset_latest()]))
        record = decode_value(lookup[latest])
        record["validators"] = ATTACKER_SET
        lookup[latest] = encode_value(record)
        entries = list(lookup.items())
    entries.sort()
    accumulator = sum(entry_digest(k, v) for k, v in entries) % (1 << 256)
    return entries, state_root(h, accumulator, chain.snapshots[h].manifest.point.results_hash)


def forge(chain: Chain, *, start: int, h: int, attackers_named: bool) -> Forgery:
    """The forger's chain from height `start` to the tip: the same transactions and times, linked
    to each other, certified by the attackers (who hold no key of any true set). With
    `attackers_named`, the headers name the attackers' set from `start` on (validators_hash and
    next_validators_hash); else they go on naming the true sets' hashes. Block h + 1 certifies a
    forged state at h, served as the snapshot at h."""
    entries, root = forged_state(chain, h, attackers=attackers_named)
    headers, blocks = {}, {}
    previous = chain.block(start - 1).hash
    for height in range(start, TIP + 1):
        true = chain.block(height)
        changes: dict = {"previous_block_hash": previous}
        if attackers_named:
            changes.update(validators_hash=ATTACKERS_HASH, next_validators_hash=ATTACKERS_HASH)
        if height == h + 1:
            changes["previous_state_root"] = root
        block = Block(dataclasses.replace(true.header, **changes), true.txs)
        cert = certificate(block, ATTACKERS)
        headers[height] = (header_bytes(block), cert)
        blocks[height] = (block.encode(), cert)
        previous = block.hash
    chunks = tuple(snap.encode_chunk(entries[i:i + 8]) for i in range(0, len(entries), 8))
    true_manifest = chain.snapshots[h].manifest
    block_hash = Block.decode(blocks[h][0]).hash if h >= start else true_manifest.point.block_hash
    point = dataclasses.replace(true_manifest.point, block_hash=block_hash, state_root=root)
    manifest = snap.Manifest(point, len(entries), tuple(snap.chunk_hash(c) for c in chunks))
    return Forgery(headers, blocks, snap.Snapshot(manifest, chunks))


# --- fake peers --------------------------------------------------------------------------------------


class FakePeer:
    """Answers from the chain with the node's serving code; `headers`, `blocks` and `sets` (by
    height) replace what it would send."""

    def __init__(self, chain: Chain, directory: Path, *, snapshot_height: int = 10,
                 snapshot: snap.Snapshot | None = None, headers=None, blocks=None, sets=None,
                 height: int = TIP) -> None:
        self.server = SnapshotServer(chain.ledger, directory, interval=0, kept=4)
        self.server.files.write(snapshot or chain.snapshots[snapshot_height])
        self.sync = BlockSync(ledger=chain.ledger, validators_at=lambda _h: None, send=lambda *_: True,
                              apply=lambda *_: None, on_caught_up=lambda: None, response_bytes_max=1 << 22)
        self.headers = headers or {}
        self.blocks = blocks or {}
        self.sets = sets or {}
        self.height = height
        self.asked: list[wire.WireMessage] = []

    def answer(self, message: wire.WireMessage) -> wire.WireMessage:
        self.asked.append(message)
        match message:
            case wire.GetSnapshots():
                return self.server.snapshots()
            case wire.GetSnapshotChunk():
                return self.server.chunk(message)
            case wire.GetBlocks(start, _):
                pairs = self.sync.serve(message).blocks
                return wire.Blocks(tuple(self.blocks.get(start + i, pair) for i, pair in enumerate(pairs)))
            case wire.GetHeaders(start, _):
                pairs = self.server.headers(message).headers
                return wire.Headers(tuple(self.headers.get(start + i, pair) for i, pair in enumerate(pairs)))
            case wire.GetValidators(height):
                if height in self.sets:
                    return wire.Validators(height, tuple((k, n, p) for k, n, p, _, _ in self.sets[height]))
                return self.server.validators(message)
        raise AssertionError(message)

    def asked_for(self, kind: type) -> list:
        return [m for m in self.asked if isinstance(m, kind)]


async def state_sync(ledger: Ledger, peers: dict[bytes, FakePeer], trust: TrustRoot | None, *,
                     refusals: int = 0) -> StateSyncer:
    """Run a `StateSyncer` against the peers until a snapshot installs or `refusals` refusals."""
    syncer: StateSyncer

    def send(peer: bytes, data: bytes) -> bool:
        answer = peers[peer].answer(wire.decode(data, bytes_max=1 << 24))
        asyncio.get_running_loop().call_soon(syncer.on_answer, peer,
                                             wire.decode(wire.encode(answer), bytes_max=1 << 24))
        return True

    syncer = StateSyncer(ledger=ledger, send=send, on_installed=lambda _: None, trust=trust)
    for key, peer in peers.items():  # asked in this order (equal heights keep it)
        syncer.on_status(key, wire.Status(peer.height, b"\x00" * 32, b"\x00" * 32))
    syncer.start()
    try:
        async with asyncio.timeout(20):
            while syncer.installed_height is None and (not refusals or len(syncer.refusals) < refusals):
                await asyncio.sleep(0.01)
    finally:
        syncer.stop()
    return syncer


def reasons(syncer: StateSyncer) -> list[str]:
    return [reason for _, reason in syncer.refusals]


async def refused(fresh: Ledger, peer: FakePeer, trust: TrustRoot | None, reason: str) -> StateSyncer:
    syncer = await state_sync(fresh, {b"F" * 32: peer}, trust, refusals=1)
    assert reasons(syncer) == [reason], syncer.refusals
    assert syncer.installed_height is None and fresh.tip.height == 0 and fresh.verify_accumulator()
    return syncer


# --- joining ---------------------------------------------------------------------------------------


def assert_installed(syncer: StateSyncer, fresh: Ledger, chain: Chain, height: int, *, refusals=()) -> None:
    assert syncer.refusals == list(refusals) and syncer.installed_height == height
    assert fresh.tip.height == height and fresh.tip.block_hash == chain.block(height).hash
    assert fresh.tip.state_root == queries.state_root_at(chain.ledger, height)
    assert fresh.verify_accumulator() and fresh.history_from == height + 1


async def test_a_changed_set_syncs_forward_from_a_trusted_height_before_both_changes(chain, fresh, tmp_path):
    peer = FakePeer(chain, tmp_path / "peer")
    syncer = await state_sync(fresh, {b"H" * 32: peer}, chain.trust(2))
    assert_installed(syncer, fresh, chain, 10)
    # each set fetched once, where it changed (3: v4 in, 7: v0 out), and checked by its hash
    assert [m.height for m in peer.asked_for(wire.GetValidators)] == [3, 7]
    assert all(m.count <= wire.HEADERS_MAX for m in peer.asked_for(wire.GetHeaders))
    # then block sync goes on from h + 1: the ledger checks every header, set hash and root
    for height in range(11, TIP + 1):
        raw, cert = queries.block(chain.ledger, height)
        fresh.apply_block(Block.decode(raw), cert)
    assert fresh.tip == chain.ledger.tip
    assert queries.validators_at(fresh, TIP) == queries.validators_at(chain.ledger, TIP)


async def test_headers_are_fetched_in_bounded_batches(chain, fresh, tmp_path, monkeypatch):
    monkeypatch.setattr(wire, "HEADERS_MAX", 3)
    peer = FakePeer(chain, tmp_path / "peer")
    assert len(peer.server.headers(wire.GetHeaders(1, 64)).headers) == 3  # the server bounds it too
    syncer = await state_sync(fresh, {b"H" * 32: peer}, chain.trust(1))
    assert_installed(syncer, fresh, chain, 10)
    asked = peer.asked_for(wire.GetHeaders)
    assert [(m.from_height, m.count) for m in asked] == [(1, 1), (2, 3), (5, 3), (8, 3), (11, 1)]


@pytest.mark.parametrize(("trusted", "snapshot_height"), [(14, 8), (11, 10), (4, 4)],
                         ids=["backward-from-the-tip", "trusted-is-h+1", "forward-one-step"])
async def test_other_trusted_heights(chain, fresh, tmp_path, trusted, snapshot_height):
    peer = FakePeer(chain, tmp_path / "peer", snapshot_height=snapshot_height)
    syncer = await state_sync(fresh, {b"H" * 32: peer}, chain.trust(trusted))
    assert_installed(syncer, fresh, chain, snapshot_height)
    if trusted > snapshot_height + 1:  # backward: hash links only, no set is needed
        assert peer.asked_for(wire.GetValidators) == []


async def test_without_a_trust_root_a_changed_set_is_refused(chain, fresh, tmp_path):
    await refused(fresh, FakePeer(chain, tmp_path / "peer"), None, "untrusted-set")


async def test_a_wrong_trust_hash_is_refused(chain, fresh, tmp_path):
    peer = FakePeer(chain, tmp_path / "peer")
    await refused(fresh, peer, TrustRoot(2, chain.block(3).hash), "trust-hash-mismatch")
    assert peer.asked_for(wire.GetSnapshotChunk) == []


# --- forged headers and certificates ----------------------------------------------------------------


@pytest.mark.parametrize("signers", [ATTACKERS, ("v1", "v2", "v3")],
                         ids=["by-others-than-the-set", "without-a-quorum-of-the-grown-set"])
async def test_a_forged_certificate_in_the_middle_is_refused(chain, fresh, tmp_path, signers):
    """The true header 5, but a certificate that is not +2/3 of the set of 5 (v0..v4)."""
    forged = certificate(chain.block(5), signers)
    peer = FakePeer(chain, tmp_path / "peer", headers={5: (header_bytes(chain.block(5)), forged)})
    await refused(fresh, peer, chain.trust(2), "bad-header-chain")
    assert peer.asked_for(wire.GetSnapshotChunk) == []


async def test_a_forged_header_naming_another_set_is_refused(chain, fresh, tmp_path):
    """From header 5 on, the forger's headers name the attackers' set, which certifies them, and
    the forged snapshot holds it; but header 4 certified another set for height 5."""
    forgery = forge(chain, start=5, h=10, attackers_named=True)
    peer = FakePeer(chain, tmp_path / "peer", snapshot=forgery.snapshot, headers=forgery.headers,
                    blocks=forgery.blocks, sets=dict.fromkeys(range(5, TIP + 3), ATTACKER_SET))
    await refused(fresh, peer, chain.trust(2), "bad-header-chain")


async def test_a_header_that_does_not_name_its_parent_is_refused(chain, fresh, tmp_path):
    """A second header 5, even certified by the set of 5 (a forked supermajority), is not the child of
    header 4 that the walk trusts; nor the parent header 6 names."""
    true = chain.block(5)
    other = Block(dataclasses.replace(true.header, previous_block_hash=chain.block(3).hash), true.txs)
    peer = FakePeer(chain, tmp_path / "peer", headers={5: (header_bytes(other), certificate(other, signers_at(5)))})
    await refused(fresh, peer, chain.trust(2), "bad-header-chain")


async def test_backward_a_forged_chain_below_the_trusted_header_is_refused(chain, fresh, tmp_path):
    """Trusted 14, snapshot at 8: the forger's headers 9..13 link to each other and to the true 8,
    name the attackers' set, and certify a forged snapshot that holds it; but 13 is not the parent
    that the trusted 14 names."""
    forgery = forge(chain, start=9, h=8, attackers_named=True)
    peer = FakePeer(chain, tmp_path / "peer", snapshot=forgery.snapshot,
                    headers={h: forgery.headers[h] for h in range(9, 14)}, blocks={9: forgery.blocks[9]},
                    sets=dict.fromkeys(range(9, TIP + 3), ATTACKER_SET))
    await refused(fresh, peer, chain.trust(14), "bad-header-chain")


async def test_backward_a_forged_header_in_the_middle_is_refused(chain, fresh, tmp_path):
    """Trusted 14, snapshot at 8: a header 11 that names the true 10 as its parent, but is not the
    parent the true 12 names."""
    true = chain.block(11)
    other = Block(dataclasses.replace(true.header, time_ms=true.header.time_ms + 1), true.txs)
    peer = FakePeer(chain, tmp_path / "peer", snapshot_height=8,
                    headers={11: (header_bytes(other), certificate(other, ATTACKERS))})
    await refused(fresh, peer, chain.trust(14), "bad-header-chain")


async def test_blocks_other_than_the_verified_headers_are_refused(chain, fresh, tmp_path):
    """The true headers walk to the true 11; the peer then serves a forged block 11 (naming the
    attackers, who certify it) over a forged snapshot that holds their set."""
    forgery = forge(chain, start=11, h=10, attackers_named=True)
    peer = FakePeer(chain, tmp_path / "peer", snapshot=forgery.snapshot, blocks={11: forgery.blocks[11]})
    await refused(fresh, peer, chain.trust(2), "bad-header-chain")
    assert peer.asked_for(wire.GetSnapshotChunk)  # refused at the end, against the walk's header


# --- validator sets that do not match their hash ---------------------------------------------------------


@pytest.mark.parametrize("served", [entries_of(["v1", "v2", "v3", "v4"], power=11), ATTACKER_SET],
                         ids=["true-keys-other-power", "attackers"])
async def test_a_validator_set_that_does_not_match_its_hash_is_refused(chain, fresh, tmp_path, served):
    """The true headers; the set of 7 (where v0 leaves) as the peer sends it is not the one header 6
    names: with the true keys and another power the true certificates would still verify."""
    peer = FakePeer(chain, tmp_path / "peer", sets={7: served})
    await refused(fresh, peer, chain.trust(2), "set-hash-mismatch")


async def test_a_forged_chain_that_claims_the_true_set_hashes_is_refused(chain, fresh, tmp_path):
    """From 7 on (where a new set takes over) the forger's headers keep the true sets' hashes but
    are certified by the attackers, whose set it serves as the set of 7."""
    forgery = forge(chain, start=7, h=10, attackers_named=False)
    peer = FakePeer(chain, tmp_path / "peer", snapshot=forgery.snapshot, headers=forgery.headers,
                    blocks=forgery.blocks, sets=dict.fromkeys(range(7, TIP + 3), ATTACKER_SET))
    await refused(fresh, peer, chain.trust(2), "set-hash-mismatch")


# --- peers: refused ones and those that cannot serve are passed over -------------------------------------


async def test_forgers_and_peers_that_cannot_serve_are_passed_over(chain, fresh, tmp_path):
    forgery = forge(chain, start=5, h=10, attackers_named=True)
    peers = {
        b"L" * 32: FakePeer(chain, tmp_path / "low", height=1),  # below the trusted height
        b"P" * 32: FakePeer(chain, tmp_path / "pruned"),
        b"F" * 32: FakePeer(chain, tmp_path / "forger", snapshot=forgery.snapshot, headers=forgery.headers,
                            blocks=forgery.blocks, sets=dict.fromkeys(range(5, TIP + 3), ATTACKER_SET)),
        b"H" * 32: FakePeer(chain, tmp_path / "honest", height=TIP - 1),
    }
    # a peer that holds no header at or below 5 (it joined by state sync itself) answers none
    pruned = peers[b"P" * 32]
    pruned.answer = _without_headers_below(pruned, 6)
    syncer = await state_sync(fresh, peers, chain.trust(2))
    assert_installed(syncer, fresh, chain, 10, refusals=[(b"F" * 32, "bad-header-chain")])
    assert peers[b"L" * 32].asked_for(wire.GetHeaders) == []
    assert pruned.asked_for(wire.GetHeaders) and pruned.asked_for(wire.GetSnapshotChunk) == []


def _without_headers_below(peer: FakePeer, first: int):
    answer = FakePeer.answer.__get__(peer)

    def patched(message: wire.WireMessage) -> wire.WireMessage:
        if isinstance(message, wire.GetHeaders) and message.from_height < first:
            peer.asked.append(message)
            return wire.Headers(())
        return answer(message)

    return patched


# --- the messages --------------------------------------------------------------------------------------


def test_wire_trust_messages_round_trip_and_are_bounded():
    key = b"k" * 32
    for message in (wire.GetHeaders(3, 7), wire.Headers(((b"h", b"c"),)), wire.GetValidators(9),
                    wire.Validators(9, ((key, key, 10),)), wire.Validators(9, ())):
        assert wire.decode(wire.encode(message), bytes_max=1 << 22) == message
    assert wire.decode(wire.encode(wire.GetHeaders(1, 10**6)), bytes_max=1 << 22) == wire.GetHeaders(1, wire.HEADERS_MAX)
    assert wire.VALIDATORS_MAX == VALIDATORS_MAX
    for bad in (wire.Headers(tuple((b"h", b"c") for _ in range(wire.HEADERS_MAX + 1))),
                wire.Validators(1, tuple((key, key, 1) for _ in range(wire.VALIDATORS_MAX + 1))),
                wire.Validators(1, ((b"short", key, 1),)), wire.Validators(1, ((key, key, -1),))):
        with pytest.raises(wire.WireError):
            wire.decode(wire.encode(bad), bytes_max=1 << 22)
    with pytest.raises(wire.WireError):
        wire.decode(msgpack.packb(["validators", 1, [[key, key]]]), bytes_max=1 << 22)


def test_serving_headers_and_sets(chain, tmp_path, monkeypatch):
    server = SnapshotServer(chain.ledger, tmp_path / "s", interval=0, kept=1)
    answer = server.headers(wire.GetHeaders(13, 64)).headers
    assert [Block.decode(h).hash for h, _ in answer] == [chain.block(13).hash, chain.block(14).hash]
    assert all(Block.decode(h).txs == () for h, _ in answer)
    assert [c for _, c in answer] == [queries.block(chain.ledger, h)[1] for h in (13, 14)]
    assert server.headers(wire.GetHeaders(0, 2)).headers == () and server.headers(wire.GetHeaders(15, 2)).headers == ()
    monkeypatch.setattr(serve, "HEADERS_ANSWER_BYTES_MAX", 1)
    assert len(server.headers(wire.GetHeaders(1, 64)).headers) == 1  # one at least, whatever the bound
    served = server.validators(wire.GetValidators(7)).validators
    assert validators_hash(tuple((k, n, p, "", "") for k, n, p in served)) == chain.block(7).header.validators_hash
    assert server.validators(wire.GetValidators(TIP + 3)).validators == ()
    assert server.validators(wire.GetValidators(0)).validators == ()


# --- the config keys ------------------------------------------------------------------------------------

NODE = """\
[node]
moniker = "joiner"
mode = "observer"
home = "data"
genesis_file = "genesis.toml"
node_key_file = "node.json"
"""
HASH = "ab" * 32


@pytest.fixture
def config_dir(tmp_path):
    for name in ("genesis.toml", "node.json"):
        (tmp_path / name).write_text("{}")
    return tmp_path


def test_trust_keys_load_and_default_to_none(config_dir):
    path = config_dir / "node.toml"
    path.write_text(NODE)
    assert (load_config(path).statesync.trust_height, load_config(path).statesync.trust_hash) == (0, "")
    path.write_text(NODE + f'[statesync]\nenabled = true\ntrust_height = 42\ntrust_hash = "{HASH.upper()}"\n')
    statesync = load_config(path).statesync
    assert (statesync.trust_height, statesync.trust_hash) == (42, HASH)


@pytest.mark.parametrize(("extra", "key", "problem"), [
    ('trust_height = "42"\ntrust_hash = "HASH"', "statesync.trust_height", 'expected an integer, got "42"'),
    ('trust_height = -1\ntrust_hash = "HASH"', "statesync.trust_height", "expected 0..9223372036854775807, got -1"),
    ("trust_height = 42\ntrust_hash = 12", "statesync.trust_hash", "expected a block hash of 64 hex digits"),
    ('trust_height = 42\ntrust_hash = "xyz"', "statesync.trust_hash", "expected a block hash of 64 hex digits"),
    ('trust_height = 42\ntrust_hash = "HASHab"', "statesync.trust_hash", "expected a block hash of 64 hex digits"),
    ('trust_height = 42\ntrust_hash = "0xHASH"', "statesync.trust_hash", "expected a block hash of 64 hex digits"),
    ("trust_height = 42", "statesync.trust_hash", "required when statesync.trust_height is set"),
    ('trust_hash = "HASH"', "statesync.trust_height", "required when statesync.trust_hash is set"),
    ('trust_height = 0\ntrust_hash = "HASH"', "statesync.trust_height", "required when statesync.trust_hash is set"),
], ids=["height-a-string", "height-negative", "hash-an-integer", "hash-not-hex", "hash-too-long", "hash-0x-prefixed",
        "height-without-hash", "hash-without-height", "hash-with-height-0"])
def test_bad_trust_keys_name_the_key(config_dir, extra, key, problem):
    path = config_dir / "node.toml"
    path.write_text(NODE + "[statesync]\n" + extra.replace("HASH", HASH) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.file, caught.value.key) == (str(path), key)
    assert caught.value.problem.startswith(problem), caught.value.problem


def test_a_node_with_one_trust_key_does_not_start(config_dir, capsys):
    from node.main import run

    path = config_dir / "node.toml"
    path.write_text(NODE + "[statesync]\nenabled = true\ntrust_height = 42\n")
    assert run(str(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "statesync.trust_hash" in err[0] and str(path) in err[0], err
