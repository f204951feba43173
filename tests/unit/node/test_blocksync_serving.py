"""Block sync's other half and its loop: what a node serves to a peer behind it, whom it asks and
in what order, what it does with a silent, lying or departed peer, and how loudly it reports a
peer whose state root or block differs from its own at a height both hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from nacl.signing import SigningKey

from consensus.certificate import CommitCertificate
from consensus.messages import MessageType, Vote, sign_bytes
from ledger import GenesisValidator, Ledger, queries
from ledger.testing import test_genesis as genesis_for_tests
from node.p2p import wire
from node.sync import blocksync
from node.sync.blocksync import REQUEST_BLOCKS, BlockSync
from node.validator.validator_sets import ValidatorSets

P1, P2 = b"\x01" * 32, b"\x02" * 32
ZERO = b"\x00" * 32


def certificate(keys: list[SigningKey], chain_id: str, height: int, block_id: bytes) -> bytes:
    votes = []
    for key in keys:
        data = sign_bytes(chain_id, MessageType.PRECOMMIT, height, 0, block_id, -1)
        votes.append(Vote(MessageType.PRECOMMIT, height, 0, block_id, bytes(key.verify_key), key.sign(data).signature))
    return CommitCertificate.from_votes(height, 0, block_id, votes).encode()


class Chain:
    """A ledger that grows certified empty blocks, as an honest peer's would."""

    def __init__(self, path, genesis, keys: list[SigningKey], *, time_step_ms: int = 1000) -> None:
        self.ledger = Ledger.open(str(path), genesis)
        self.keys, self.time_step_ms = keys, time_step_ms
        self.blocks: list[tuple[bytes, bytes]] = []

    def grow(self, count: int) -> None:
        for _ in range(count):
            tip = self.ledger.tip
            block = self.ledger.build_block((), time_ms=tip.time_ms + self.time_step_ms,
                                            proposer=bytes(self.keys[0].verify_key))
            cert = certificate(self.keys, self.ledger.chain_id, block.height, block.hash)
            self.ledger.apply_block(block, cert)
            self.blocks.append((block.encode(), cert))


class Syncing:
    """A BlockSync over a fresh ledger, with what it sent, applied and reported."""

    def __init__(self, ledger: Ledger, *, response_bytes_max: int = 1 << 20, send_ok: bool = True) -> None:
        self.ledger = ledger
        self.sent: list[tuple[bytes, wire.GetBlocks]] = []
        self.applied: list[int] = []
        self.caught_up = 0
        self.send_ok = {P1: send_ok, P2: send_ok}

        def send(peer: bytes, data: bytes) -> bool:
            self.sent.append((peer, wire.decode(data, bytes_max=1 << 20)))
            return self.send_ok[peer]

        def apply(block, cert):
            result = ledger.apply_block(block, cert)
            self.applied.append(block.height)
            return result

        def caught_up() -> None:
            self.caught_up += 1

        self.sync = BlockSync(ledger=ledger, validators_at=ValidatorSets(ledger).at, send=send, apply=apply,
                              on_caught_up=caught_up, response_bytes_max=response_bytes_max)

    async def wait_for_request(self, count: int = 1) -> None:
        for _ in range(500):
            if len(self.sent) >= count:
                return
            await asyncio.sleep(0.002)
        raise AssertionError(f"no request {count} (sent {self.sent})")

    async def settle(self) -> None:
        if self.sync._task is not None:
            await asyncio.wait_for(asyncio.shield(self.sync._task), 5)


@pytest.fixture
def net(tmp_path, monkeypatch):
    monkeypatch.setattr(blocksync, "RESPONSE_TIMEOUT_S", 0.2)
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
    genesis = dataclasses.replace(genesis_for_tests(), validators=tuple(
        GenesisValidator(f"v{i}", bytes(k.verify_key), bytes([i + 50]) * 32, 10) for i, k in enumerate(keys)))
    source = Chain(tmp_path / "source", genesis, keys)
    source.grow(3)
    ledger = Ledger.open(str(tmp_path / "syncing"), genesis)
    syncing = Syncing(ledger)
    opened = [source.ledger, ledger]

    def other_chain(name: str, **kwargs) -> Chain:
        chain = Chain(tmp_path / name, genesis, keys, **kwargs)
        opened.append(chain.ledger)
        return chain

    yield source, syncing, other_chain
    syncing.sync.stop()
    for opened_ledger in opened:
        opened_ledger.close()


# --- serving -----------------------------------------------------------------------------------------


def test_a_node_serves_its_certified_blocks_from_the_height_asked_until_it_has_no_more(net):
    source, _, _ = net
    server = Syncing(source.ledger).sync
    assert server.serve(wire.GetBlocks(1, 32)).blocks == tuple(source.blocks)
    assert server.serve(wire.GetBlocks(2, 1)).blocks == (source.blocks[1],)
    assert server.serve(wire.GetBlocks(3, 5)).blocks == (source.blocks[2],)
    assert server.serve(wire.GetBlocks(4, 5)).blocks == ()
    assert source.blocks[0] == queries.block(source.ledger, 1)


def test_an_answer_stays_within_the_size_bound_but_always_holds_one_block(net):
    source, _, _ = net
    sizes = [len(b) + len(c) for b, c in source.blocks]
    assert Syncing(source.ledger, response_bytes_max=1).sync.serve(wire.GetBlocks(1, 3)).blocks == (
        source.blocks[0],)
    exactly_two = Syncing(source.ledger, response_bytes_max=sizes[0] + sizes[1]).sync
    assert exactly_two.serve(wire.GetBlocks(1, 3)).blocks == tuple(source.blocks[:2])
    one_short = Syncing(source.ledger, response_bytes_max=sizes[0] + sizes[1] - 1).sync
    assert one_short.serve(wire.GetBlocks(1, 3)).blocks == (source.blocks[0],)


# --- asking ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_most_advanced_peer_is_asked_for_the_blocks_above_our_tip(net):
    source, s, _ = net
    s.sync.on_status(P1, wire.Status(2, ZERO, ZERO))
    s.sync.on_status(P2, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    assert s.sent == [(P2, wire.GetBlocks(1, REQUEST_BLOCKS))]
    s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks)))  # not asked: ignored
    await asyncio.sleep(0.01)
    assert s.applied == []
    s.sync.on_blocks(P2, wire.Blocks(tuple(source.blocks)))
    await s.settle()
    assert s.applied == [1, 2, 3] and s.sync.blocks_synced == 3
    assert s.caught_up == 1 and not s.sync.syncing


@pytest.mark.asyncio
async def test_a_peer_that_cannot_be_sent_to_or_stays_silent_gives_way_to_the_next(net):
    source, s, _ = net
    s.send_ok[P2] = False
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    s.sync.on_status(P2, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request(2)
    assert [peer for peer, _ in s.sent] == [P2, P1]  # P2 first (ties: the larger key), unreachable
    await s.wait_for_request(3)  # P1 never answers: after the response timeout, the round starts again
    assert s.applied == []
    s.send_ok[P2] = True
    await s.wait_for_request(4)
    asked = s.sent[-1][0]
    s.sync.on_blocks(asked, wire.Blocks(tuple(source.blocks)))
    await s.settle()
    assert s.applied == [1, 2, 3]


@pytest.mark.asyncio
async def test_a_departed_peer_is_forgotten(net):
    _, s, _ = net
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    s.sync.on_peer_down(P1)
    assert P1 not in s.sync.peer_heights
    await s.settle()  # nobody left ahead: the loop ends
    assert s.caught_up == 1 and s.applied == []


@pytest.mark.asyncio
async def test_a_stopped_sync_asks_nobody_and_never_reports_caught_up(net):
    _, s, _ = net
    s.sync.stop()
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await asyncio.sleep(0.02)
    assert s.sent == [] and not s.sync.syncing and s.caught_up == 0


@pytest.mark.asyncio
async def test_a_block_beyond_the_next_height_is_refused(net):
    source, s, _ = net
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks[1:])))
    await s.wait_for_request(2)
    assert s.applied == [] and s.sync.rejected_responses == 1


@pytest.mark.asyncio
async def test_blocks_we_hold_already_are_skipped_and_the_rest_applied(net, caplog):
    source, s, _ = net
    block, cert = source.blocks[0]
    from ledger import Block
    s.ledger.apply_block(Block.decode(block), cert)  # consensus committed height 1 meanwhile
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    with caplog.at_level(logging.WARNING, logger="secledger.sync"):
        s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks)))
        await s.settle()
    assert s.applied == [2, 3] and s.sync.blocks_synced == 2 and s.sync.rejected_responses == 0
    assert caplog.records == []  # the same block again is no news
    assert [queries.block(s.ledger, h) for h in (1, 2, 3)] == source.blocks  # with the certificates received


@pytest.mark.asyncio
async def test_another_certified_block_at_a_height_we_hold_is_reported_as_critical(net, caplog):
    source, s, other_chain = net
    fork = other_chain("fork", time_step_ms=1500)
    fork.grow(1)
    from ledger import Block
    s.ledger.apply_block(Block.decode(source.blocks[0][0]), source.blocks[0][1])
    s.sync.on_status(P1, wire.Status(2, ZERO, ZERO))
    await s.wait_for_request()
    with caplog.at_level(logging.CRITICAL, logger="secledger.sync"):
        s.sync.on_blocks(P1, wire.Blocks((fork.blocks[0], source.blocks[1])))
        await s.settle()
    assert [r.levelno for r in caplog.records if r.name == "secledger.sync"] == [logging.CRITICAL]
    assert s.ledger.tip.height == 2 and s.applied == [2]


# --- state roots ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_peer_reporting_another_state_root_at_a_height_we_hold_is_an_error(net, caplog):
    source, s, _ = net
    from ledger import Block
    for block, cert in source.blocks[:2]:
        s.ledger.apply_block(Block.decode(block), cert)
    ours = {h: queries.state_root_at(s.ledger, h) for h in (1, 2)}
    with caplog.at_level(logging.ERROR, logger="secledger.sync"):
        s.sync.on_status(P1, wire.Status(2, ZERO, ours[2]))  # at our tip, the same root
        s.sync.on_status(P1, wire.Status(1, ZERO, ours[1]))  # below it, the same root
        s.sync.on_status(P1, wire.Status(0, ZERO, b"\x09" * 32))  # before any block: nothing to compare
        assert caplog.records == []
        s.sync.on_status(P1, wire.Status(2, ZERO, b"\x09" * 32))
        s.sync.on_status(P2, wire.Status(1, ZERO, b"\x09" * 32))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]
    assert not s.sync.syncing and s.sent == []  # nobody is ahead
    assert s.sync.peer_heights == {P1: 2, P2: 1}


@pytest.mark.asyncio
async def test_stop_ends_a_sync_that_is_waiting_for_a_peer(net):
    _, s, _ = net
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    task = s.sync._task
    s.sync.stop()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert s.caught_up == 0



@pytest.mark.asyncio
async def test_a_silent_peer_times_out_and_the_next_one_is_asked(net):
    source, s, _ = net
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    s.sync.on_status(P2, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request(2)
    assert [peer for peer, _ in s.sent] == [P2, P1]  # P2 (asked first) never answered
    s.sync.on_blocks(P2, wire.Blocks(tuple(source.blocks)))  # too late: it is not waited for any more
    s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks)))
    await s.settle()
    assert s.applied == [1, 2, 3]
    s.sync.on_blocks(P2, wire.Blocks(tuple(source.blocks)))  # stray answers once caught up: nothing
    s.sync.on_peer_down(P2)
    assert s.applied == [1, 2, 3]


@pytest.mark.asyncio
async def test_another_peer_going_away_does_not_cancel_the_wait_and_an_unknown_one_is_nothing(net):
    source, s, _ = net
    s.sync.on_peer_down(P2)  # never heard of, nothing waited for
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    s.sync.on_peer_down(P2)
    s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks)))
    await s.settle()
    assert s.applied == [1, 2, 3] and [peer for peer, _ in s.sent] == [P1]


@pytest.mark.asyncio
async def test_answers_follow_one_another_without_a_pause_and_their_blocks_add_up(net, monkeypatch):
    source, s, _ = net
    monkeypatch.setattr(blocksync, "RESPONSE_TIMEOUT_S", 30.0)  # a pause would be 6 s
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i, block in enumerate(source.blocks):  # one block an answer: three requests
        await s.wait_for_request(i + 1)
        assert s.sent[i] == (P1, wire.GetBlocks(i + 1, REQUEST_BLOCKS))
        s.sync.on_blocks(P1, wire.Blocks((block,)))
        await until_applied(s, i + 1)
    await s.settle()
    assert s.applied == [1, 2, 3] and s.sync.blocks_synced == 3
    assert loop.time() - started < 3


async def until_applied(s: Syncing, count: int) -> None:
    for _ in range(1000):
        if len(s.applied) >= count:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"applied {s.applied}")


@pytest.mark.asyncio
async def test_after_a_refused_answer_the_sync_pauses_before_asking_again(net, monkeypatch):
    source, s, _ = net
    monkeypatch.setattr(blocksync, "RESPONSE_TIMEOUT_S", 1.0)  # the pause: 0.2 s
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    loop = asyncio.get_running_loop()
    refused_at = loop.time()
    s.sync.on_blocks(P1, wire.Blocks((source.blocks[1],)))  # not the next height: refused
    await s.wait_for_request(2)
    assert loop.time() - refused_at >= 0.15
    s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks[:1])))
    await s.wait_for_request(3)
    s.sync.on_blocks(P1, wire.Blocks((source.blocks[2],)))  # refused again
    await s.wait_for_request(4)
    assert s.sync.rejected_responses == 2 and s.sync.blocks_synced == 1
    s.sync.stop()


@pytest.mark.asyncio
async def test_a_good_block_then_a_forged_one_counts_the_good_one(net):
    source, s, _ = net
    (b1, c1), (b2, _), _ = source.blocks
    s.sync.on_status(P1, wire.Status(2, ZERO, ZERO))
    await s.wait_for_request()
    s.sync.on_blocks(P1, wire.Blocks(((b1, c1), (b2, c1))))  # block 2 with block 1's certificate
    await s.wait_for_request(2)
    assert s.applied == [1] and s.sync.blocks_synced == 1 and s.sync.rejected_responses == 1
    s.sync.stop()


@pytest.mark.asyncio
async def test_a_block_the_node_fails_to_apply_ends_the_answer_without_blaming_the_peer(net):
    source, s, _ = net
    real_apply = s.sync._apply
    s.sync._apply = lambda block, cert: None if block.height == 1 else real_apply(block, cert)  # halted
    s.sync.on_status(P1, wire.Status(3, ZERO, ZERO))
    await s.wait_for_request()
    s.sync.on_blocks(P1, wire.Blocks(tuple(source.blocks)))
    await s.wait_for_request(2)
    assert s.applied == [] and s.sync.blocks_synced == 0 and s.sync.rejected_responses == 0
    s.sync.stop()
