"""State sync over the peer protocol: the fetcher against fake peers (a forger is refused with its
reason and the next peer is tried), and a new observer joining a running in-process network by
state sync, then following by block sync to the same state roots."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from consensus.certificate import CommitCertificate
from ledger import Ledger, NotFound, queries
from ledger.chain import PrunedHistory
from ledger.testing import test_genesis as genesis_for_tests
from node.p2p import wire
from node.sync.blocksync import BlockSync
from node.sync.statesync import fetch
from node.sync.statesync import snapshot as snap
from node.sync.statesync.fetch import StateSyncer
from node.sync.statesync.serve import SnapshotServer
from node.testing import LocalNetwork

from .test_statesync import Source


class FakePeer:
    """Answers as a node would, from `Source`'s ledger and a snapshot directory; `forge` changes
    the chunks it sends (after the manifest)."""

    def __init__(self, source: Source, directory, *, forge=None) -> None:
        self.source = source
        self.server = SnapshotServer(source.h.ledger, directory, interval=0, kept=2)
        self.server.files.write(source.snapshot)
        self.forge = forge
        self.blocks = BlockSync(ledger=source.h.ledger, validators_at=lambda _h: None, send=lambda *_: True,
                                apply=lambda *_: None, on_caught_up=lambda: None,
                                response_bytes_max=1 << 22)

    def answer(self, message: wire.WireMessage) -> wire.WireMessage:
        match message:
            case wire.GetSnapshots():
                return self.server.snapshots()
            case wire.GetBlocks():
                return self.blocks.serve(message)
            case wire.GetSnapshotChunk():
                answer = self.server.chunk(message)
                if self.forge is not None:
                    answer = dataclasses.replace(answer, chunk=self.forge(answer.index, answer.chunk))
                return answer
        raise AssertionError(message)


async def test_a_forging_peer_is_refused_and_the_next_one_used(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_S", 0.01)
    source = Source(tmp_path / "source")
    ledger = Ledger.open(str(tmp_path / "fresh"), genesis_for_tests())
    try:
        def flip(index, chunk):
            return chunk[:-1] + bytes([chunk[-1] ^ 1]) if index == 1 else chunk
        peers = {b"F" * 32: FakePeer(source, tmp_path / "forger", forge=flip),
                 b"H" * 32: FakePeer(source, tmp_path / "honest")}
        installed = []
        syncer: StateSyncer

        def send(peer: bytes, data: bytes) -> bool:
            answer = peers[peer].answer(wire.decode(data, bytes_max=1 << 22))
            asyncio.get_running_loop().call_soon(syncer.on_answer, peer,
                                                 wire.decode(wire.encode(answer), bytes_max=1 << 22))
            return True

        syncer = StateSyncer(ledger=ledger, send=send, on_installed=installed.append)
        tip = source.h.ledger.tip
        syncer.on_status(b"F" * 32, wire.Status(tip.height + 1, tip.block_hash, tip.state_root))  # asked first
        syncer.on_status(b"H" * 32, wire.Status(tip.height, tip.block_hash, tip.state_root))
        syncer.start()
        await asyncio.wait_for(syncer._task, 10)
        assert syncer.refusals == [(b"F" * 32, "chunk-hash")]
        assert installed and syncer.installed_height == source.height
        assert ledger.tip.state_root == queries.state_root_at(source.h.ledger, source.height)
    finally:
        ledger.close()
        source.h.close()


def test_wire_snapshot_messages_round_trip_and_are_bounded():
    for message in (wire.GetSnapshots(), wire.Snapshots(((7, b"m"), (3, b"n"))), wire.GetSnapshotChunk(7, 2),
                    wire.SnapshotChunk(7, 2, b"chunk")):
        assert wire.decode(wire.encode(message), bytes_max=1 << 22) == message
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(wire.Snapshots(tuple((i, b"m") for i in range(wire.SNAPSHOTS_MAX + 1)))),
                    bytes_max=1 << 22)
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(wire.SnapshotChunk(1, 0, b"x" * (wire.SNAPSHOT_CHUNK_BYTES_MAX + 1))),
                    bytes_max=1 << 22)
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(wire.GetSnapshotChunk(1, 0))[:-1] + b"\xff", bytes_max=1 << 22)
    assert snap.CHUNK_BYTES_MAX == wire.SNAPSHOT_CHUNK_BYTES_MAX


async def test_an_observer_joins_a_running_network_by_state_sync(tmp_path):
    net = LocalNetwork(tmp_path / "net", validators=1, observers=1)
    validator, observer = (p.name for p in net.plans)
    net.configs[validator] = dataclasses.replace(
        net.configs[validator], statesync=dataclasses.replace(net.configs[validator].statesync, snapshot_interval=4))
    net.configs[observer] = dataclasses.replace(
        net.configs[observer], statesync=dataclasses.replace(net.configs[observer].statesync, enabled=True))
    try:
        await net.start(validator)
        await net.wait_for_height(10, names=[validator])
        await net.start(observer)
        joined = net.nodes[observer]
        await asyncio.wait_for(_until(lambda: joined.statesync.installed_height is not None), 30)
        snapshot_height = joined.statesync.installed_height
        assert snapshot_height >= 8 and snapshot_height % 4 == 0
        target = net.nodes[validator].ledger.tip.height + 3
        await net.wait_for_height(target, names=[observer])
        source_ledger, joined_ledger = net.nodes[validator].ledger, joined.ledger
        for height in range(snapshot_height, target + 1):
            assert queries.state_root_at(joined_ledger, height) == queries.state_root_at(source_ledger, height)
        assert joined_ledger.verify_accumulator()
        assert joined_ledger.history_from == snapshot_height + 1
        with pytest.raises(NotFound):
            queries.block(joined_ledger, 1)
        with pytest.raises(PrunedHistory):
            joined_ledger.check_history(1)
        assert joined.halted is None
    finally:
        await net.stop()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def test_a_wiped_validator_rejoins_by_state_sync_and_votes_again(tmp_path):
    """Three of four validators (a quorum) run; the fourth, whose store is empty, joins by state
    sync, block-syncs, and then takes part in consensus at the heights after it."""
    net = LocalNetwork(tmp_path / "net", validators=4, observers=0)
    names = [p.name for p in net.plans]
    late = names[-1]
    for name in names:
        section = net.configs[name].statesync
        net.configs[name] = dataclasses.replace(net.configs[name], statesync=dataclasses.replace(
            section, snapshot_interval=3, enabled=name == late))
    try:
        for name in names[:-1]:
            await net.start(name)
        await net.wait_for_height(7, names=names[:-1], timeout_s=60)
        await net.start(late)
        node = net.nodes[late]
        await asyncio.wait_for(_until(lambda: node.statesync.installed_height is not None), 60)
        assert node.driver is not None
        target = max(n.ledger.tip.height for n in net.nodes.values()) + 3
        await net.wait_for_height(target, timeout_s=60)
        other = net.nodes[names[0]].ledger
        for height in range(node.statesync.installed_height, target + 1):
            assert queries.state_root_at(node.ledger, height) == queries.state_root_at(other, height)
        # it signs again: a certificate after it joined carries its precommit
        key = bytes(node.validator_key.verify_key)
        await asyncio.wait_for(_until(lambda: any(
            key in dict(CommitCertificate.decode(queries.block(other, h)[1]).precommits)
            for h in range(node.statesync.installed_height + 1, other.tip.height + 1))), 30)
        assert node.halted is None
    finally:
        await net.stop()
