"""The driver between the core and the node, on one validator that decides alone: heights follow one
another, the proposal's block travels ahead of the proposal, what a peer sends is judged or
dropped, a decision without its block asks block sync for it, an idle chain waits for work, and a
block that cannot be applied halts the node instead of being skipped.
"""

from __future__ import annotations

import asyncio

import pytest
from nacl.signing import SigningKey

from consensus.core import TendermintCore
from consensus.messages import Proposal, decode_message
from consensus.signing import Signer as ConsensusSigner
from consensus.timeouts import TimeoutConfig
from consensus.validators import Validator, ValidatorSet
from ledger import Block
from ledger.testing import LedgerHarness
from node.mempool.pool import Mempool
from node.p2p import wire
from node.validator.driver import (
    CANDIDATE_BLOCKS_MAX,
    CLOCK_DRIFT_MAX_MS,
    OWN_MESSAGES_MAX,
    BlockLimits,
    ConsensusDriver,
    now_ms,
)
from node.validator.evidence_pool import EvidencePool
from node.validator.sign_guard import SignStateFile

CHAIN_ID = "secledger-test"  # ledger.testing's chain id
KEY = SigningKey(bytes(range(32)))
PUBLIC_KEY = bytes(KEY.verify_key)
VALIDATORS = ValidatorSet([Validator(PUBLIC_KEY, 1)])
FAST = TimeoutConfig(propose_ms=50, propose_delta_ms=10, prevote_ms=50, prevote_delta_ms=10,
                     precommit_ms=50, precommit_delta_ms=10)


class Node:
    def __init__(self, home, *, signer: bool = True, timeout_commit_ms: int = 5,
                 empty_block_interval_ms: int = 0) -> None:
        self.chain = LedgerHarness(str(home / "store"))
        self.frames: list[object] = []
        self.committed: list[int] = []
        self.halts: list[str] = []
        self.missing: list[int] = []
        self.mempool = Mempool(self.chain.ledger)
        core = TendermintCore(CHAIN_ID, VALIDATORS, ConsensusSigner(KEY, CHAIN_ID) if signer else None,
                              self.chain.ledger.tip.height + 1, FAST)
        self.driver = ConsensusDriver(
            core=core, ledger=self.chain.ledger, mempool=self.mempool, validators_at=lambda height: VALIDATORS,
            proposer_key=PUBLIC_KEY, sign_state_file=SignStateFile(home / "sign_state.bin"),
            evidence=EvidencePool(home / "evidence"),
            broadcast=lambda frame: self.frames.append(wire.decode(frame, bytes_max=1 << 22)),
            on_commit=lambda result, block: self.committed.append(result.height),
            on_halt=self.halts.append, request_missing_block=self.missing.append,
            limits=BlockLimits(100, 1 << 20), timeout_commit_ms=timeout_commit_ms,
            empty_block_interval_ms=empty_block_interval_ms)

    def close(self) -> None:
        self.driver.stop()
        self.chain.close()


async def until(done, *, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if done():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


@pytest.fixture
def node(tmp_path):
    made = Node(tmp_path)
    yield made
    made.close()


@pytest.mark.asyncio
async def test_a_lone_validator_commits_height_after_height_each_proposal_after_its_block(node):
    node.driver.start()
    await until(lambda: len(node.committed) >= 3)
    assert node.committed[:3] == [1, 2, 3]
    assert node.chain.ledger.tip.height >= 3 and node.halts == []
    proposals = 0
    for i, frame in enumerate(node.frames):
        if isinstance(frame, wire.ConsensusMessage) and isinstance(decode_message(frame.message), Proposal):
            proposal = decode_message(frame.message)
            block = node.frames[i - 1]
            assert isinstance(block, wire.ProposalBlock) and Block.decode(block.block).hash == proposal.block_id
            proposals += 1
    assert proposals >= 3


@pytest.mark.asyncio
async def test_gossip_offers_our_last_messages_and_what_we_hold_for_the_round(node):
    node.driver.start()
    await until(lambda: len(node.committed) >= 6)
    node.driver.stop()
    offered = node.driver.gossip_messages()
    own = node.driver._own
    assert 0 < len(own) <= OWN_MESSAGES_MAX
    assert offered[:len(own)] == own
    held = node.driver.core.round_messages(node.driver.core.round)
    assert len(offered) == len(own) + len(held) + len(node.driver.core.pol_prevotes(node.driver.core.round))


@pytest.mark.asyncio
async def test_a_message_that_does_not_decode_is_counted_and_one_after_stop_is_ignored(node):
    node.driver.on_consensus_message(b"\x01garbage")
    node.driver.on_consensus_message(b"\xc1")
    assert node.driver.core.drops.malformed == 2
    node.driver.stop()
    node.driver.on_consensus_message(b"\x01garbage")
    assert node.driver.core.drops.malformed == 2


@pytest.mark.asyncio
async def test_proposal_blocks_out_of_reach_or_undecodable_are_dropped(node):
    ledger = node.chain.ledger
    node.driver.on_proposal_block(b"\x01not a block")
    block = ledger.build_block((), time_ms=now_ms(), proposer=PUBLIC_KEY)
    far = Block.build(chain_id=CHAIN_ID, height=3, time_ms=block.header.time_ms, previous_block_hash=b"\x00" * 32,
                      previous_state_root=b"\x00" * 32, proposer=PUBLIC_KEY, txs=(),
                      validators_hash=block.header.validators_hash,
                      next_validators_hash=block.header.next_validators_hash)
    node.driver.on_proposal_block(far.encode())
    assert node.driver._blocks == {}
    node.driver.on_proposal_block(block.encode())
    assert list(node.driver._blocks) == [block.hash]


@pytest.mark.asyncio
async def test_a_block_from_beyond_the_clock_drift_or_invalid_is_judged_invalid(node):
    ledger = node.chain.ledger
    assert node.driver._judge(ledger.build_block((), time_ms=now_ms(), proposer=PUBLIC_KEY))
    assert not node.driver._judge(ledger.build_block((), time_ms=now_ms() + CLOCK_DRIFT_MAX_MS + 60_000,
                                                     proposer=PUBLIC_KEY))
    good = ledger.build_block((), time_ms=now_ms(), proposer=PUBLIC_KEY)
    wrong_chain = Block.build(chain_id="another-chain", height=good.height, time_ms=good.header.time_ms,
                              previous_block_hash=good.header.previous_block_hash,
                              previous_state_root=good.header.previous_state_root, proposer=PUBLIC_KEY, txs=(),
                              validators_hash=good.header.validators_hash,
                              next_validators_hash=good.header.next_validators_hash)
    assert not node.driver._judge(wrong_chain)


@pytest.mark.asyncio
async def test_a_decision_whose_block_we_lack_is_fetched_and_one_below_the_tip_is_left_to_sync(node):
    certificate = object()
    node.driver._commit_decided(1, b"\x05" * 32, certificate)
    assert node.missing == [1] and node.committed == []
    node.driver.start()
    await until(lambda: node.committed)
    node.driver._commit_decided(1, b"\x05" * 32, certificate)  # block sync got there first
    assert node.missing == [1]


@pytest.mark.asyncio
async def test_a_certified_block_that_cannot_be_applied_halts_the_node(node):
    ledger = node.chain.ledger
    block = ledger.build_block((), time_ms=now_ms(), proposer=PUBLIC_KEY)
    wrong = Block.build(chain_id=CHAIN_ID, height=block.height, time_ms=block.header.time_ms,
                        previous_block_hash=block.header.previous_block_hash,
                        previous_state_root=b"\x07" * 32, proposer=PUBLIC_KEY, txs=(),
                        validators_hash=block.header.validators_hash,
                        next_validators_hash=block.header.next_validators_hash)
    assert node.driver.commit(wrong, b"certificate") is None
    assert len(node.halts) == 1 and "cannot apply certified block 1" in node.halts[0]
    assert node.committed == [] and ledger.tip.height == 0


@pytest.mark.asyncio
async def test_an_idle_chain_waits_for_work_up_to_the_interval(tmp_path):
    idle = Node(tmp_path, timeout_commit_ms=5, empty_block_interval_ms=60_000)
    try:
        idle.driver.start()
        await until(lambda: idle.committed)
        await asyncio.sleep(0.2)
        assert idle.committed == [1]  # nothing to order: no empty block every few milliseconds
        idle.driver.wake()  # a transaction arrived
        await until(lambda: len(idle.committed) >= 2)
    finally:
        idle.close()


@pytest.mark.asyncio
async def test_only_the_latest_candidate_blocks_are_kept(node):
    ledger = node.chain.ledger
    blocks = [ledger.build_block((), time_ms=now_ms() + i, proposer=PUBLIC_KEY) for i in range(CANDIDATE_BLOCKS_MAX + 3)]
    for block in blocks:
        node.driver.on_proposal_block(block.encode())
    assert list(node.driver._blocks) == [b.hash for b in blocks[3:]]


# --- two validators: each needs the other's proposal and votes -------------------------------------

PAIR_KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(2)]
PAIR = ValidatorSet([Validator(bytes(k.verify_key), 1) for k in PAIR_KEYS])  # a quorum is both


class PairNode:
    def __init__(self, home, key: SigningKey, deliver) -> None:
        from node.validator.consensus_wal import ConsensusWal

        home.mkdir()
        self.chain = LedgerHarness(str(home / "store"))
        self.committed: list[int] = []
        self.halts: list[str] = []
        self.blocks_committed: list[int] = []
        core = TendermintCore(CHAIN_ID, PAIR, ConsensusSigner(key, CHAIN_ID), 1, FAST)
        self.wal = ConsensusWal(home / "wal")
        self.driver = ConsensusDriver(
            core=core, ledger=self.chain.ledger, mempool=Mempool(self.chain.ledger), validators_at=lambda h: PAIR,
            proposer_key=bytes(key.verify_key), sign_state_file=SignStateFile(home / "sign_state.bin"),
            evidence=EvidencePool(home / "evidence"), broadcast=deliver,
            on_commit=self.on_commit, on_halt=self.halts.append,
            request_missing_block=lambda height: None, limits=BlockLimits(100, 1 << 20), timeout_commit_ms=5,
            wal=self.wal)

    def on_commit(self, result, block) -> None:
        self.committed.append(result.height)
        self.blocks_committed.append(block.height)

    def take(self, frame: bytes) -> None:
        message = wire.decode(frame, bytes_max=1 << 22)
        if isinstance(message, wire.ConsensusMessage):
            self.driver.on_consensus_message(message.message)
        elif isinstance(message, wire.ProposalBlock):
            self.driver.on_proposal_block(message.block)


@pytest.mark.asyncio
async def test_two_validators_agree_height_after_height_through_each_others_messages(tmp_path):
    loop = asyncio.get_running_loop()
    nodes: list[PairNode] = []
    for i, key in enumerate(PAIR_KEYS):
        def deliver(frame: bytes, other: int = 1 - i) -> None:
            loop.call_soon(lambda: nodes[other].take(frame))
        nodes.append(PairNode(tmp_path / f"v{i}", key, deliver))
    try:
        for node in nodes:
            node.driver.start()
        await until(lambda: all(len(n.committed) >= 4 for n in nodes))
        assert all(n.halts == [] for n in nodes)
        for height in range(1, 5):
            hashes = {queries_block_hash(n.chain.ledger, height) for n in nodes}
            assert len(hashes) == 1
            for node in nodes:  # each block is stored with the certificate that decided it
                from consensus.certificate import CommitCertificate
                from ledger import queries

                certificate = CommitCertificate.decode(queries.block(node.chain.ledger, height)[1])
                certificate.verify(CHAIN_ID, PAIR, height=height, block_id=next(iter(hashes)))
        assert all(n.blocks_committed == n.committed for n in nodes)
        for node in nodes:
            assert node.driver.core.drops.malformed == node.driver.core.drops.bad_signature == 0
    finally:
        for node in nodes:
            node.driver.stop()
            node.chain.close()


def queries_block_hash(ledger, height: int) -> bytes:
    from ledger import queries

    return Block.decode(queries.block(ledger, height)[0]).hash


@pytest.mark.asyncio
async def test_a_validator_that_starts_late_is_brought_in_by_timeouts_and_gossip(tmp_path):
    """What the first validator sends before the second runs is lost; the rounds time out and the
    messages each re-offers (`gossip_messages`, as the node's gossip loop sends them) carry on."""
    loop = asyncio.get_running_loop()
    nodes: list[PairNode] = []
    started = [False, False]

    def take(index: int, frame: bytes) -> None:
        if started[index]:
            nodes[index].take(frame)

    for i, key in enumerate(PAIR_KEYS):
        def deliver(frame: bytes, other: int = 1 - i) -> None:
            loop.call_soon(take, other, frame)
        nodes.append(PairNode(tmp_path / f"v{i}", key, deliver))

    async def gossip() -> None:
        while True:
            await asyncio.sleep(0.02)
            for i, node in enumerate(nodes):
                for frame in node.driver.gossip_messages():
                    take(1 - i, frame)

    gossiping = loop.create_task(gossip())
    try:
        nodes[0].driver.start()
        started[0] = True
        await asyncio.sleep(0.15)
        assert nodes[0].committed == []  # alone it is no quorum
        nodes[1].driver.start()
        started[1] = True
        await until(lambda: all(len(n.committed) >= 2 for n in nodes))
        assert {queries_block_hash(n.chain.ledger, 1) for n in nodes} == {queries_block_hash(nodes[0].chain.ledger, 1)}
        assert all(n.halts == [] for n in nodes)
    finally:
        gossiping.cancel()
        for node in nodes:
            node.driver.stop()
            node.chain.close()



@pytest.mark.asyncio
async def test_a_block_for_the_next_height_that_came_early_is_kept_when_that_height_starts(tmp_path):
    waiting = Node(tmp_path, timeout_commit_ms=60_000)
    try:
        waiting.driver.start()
        await until(lambda: waiting.committed)
        ledger = waiting.chain.ledger
        early = ledger.build_block((), time_ms=now_ms(), proposer=b"\x09" * 32)  # another proposer's, height 2
        waiting.driver.on_proposal_block(early.encode())
        waiting.driver.catch_up()
        assert waiting.driver.core.height == 2
        assert early.hash in waiting.driver._blocks
        assert all(b.height == 2 for b in waiting.driver._blocks.values())
    finally:
        waiting.close()


@pytest.mark.asyncio
async def test_a_key_outside_the_validator_set_says_it_follows_without_voting(tmp_path, caplog):
    import logging

    outsider = Node(tmp_path)
    outsider.driver.core = TendermintCore(CHAIN_ID, VALIDATORS, ConsensusSigner(SigningKey(b"\x05" * 32), CHAIN_ID), 1,
                                          FAST)
    try:
        with caplog.at_level(logging.WARNING, logger="secledger.consensus"):
            outsider.driver.start()
        assert any("without voting" in r.getMessage() for r in caplog.records)
    finally:
        outsider.close()
    caplog.clear()
    (tmp_path / "voter").mkdir()
    voter = Node(tmp_path / "voter")
    try:
        with caplog.at_level(logging.WARNING, logger="secledger.consensus"):
            voter.driver.start()
        assert not any("without voting" in r.getMessage() for r in caplog.records)
    finally:
        voter.close()


def pair(tmp_path, loop, *, drop=lambda index, frame: False, block_delay_s: float = 0.0):
    """Two PairNodes wired to each other; `drop(receiver, frame)` loses a frame, and proposal
    blocks can be made to arrive after their proposal."""
    nodes: list[PairNode] = []

    def take(index: int, frame: bytes) -> None:
        if not drop(index, frame):
            nodes[index].take(frame)

    for i, key in enumerate(PAIR_KEYS):
        def deliver(frame: bytes, other: int = 1 - i) -> None:
            if block_delay_s and isinstance(wire.decode(frame, bytes_max=1 << 22), wire.ProposalBlock):
                loop.call_later(block_delay_s, take, other, frame)
            else:
                loop.call_soon(take, other, frame)
        nodes.append(PairNode(tmp_path / f"v{i}", key, deliver))
    return nodes, take


@pytest.mark.asyncio
async def test_a_proposal_that_arrives_before_its_block_is_judged_when_the_block_comes(tmp_path):
    loop = asyncio.get_running_loop()
    nodes, _ = pair(tmp_path, loop, block_delay_s=0.02)
    try:
        for node in nodes:
            node.driver.start()
        await until(lambda: all(len(n.committed) >= 3 for n in nodes))
        assert {queries_block_hash(n.chain.ledger, 3) for n in nodes} == {queries_block_hash(nodes[0].chain.ledger, 3)}
        assert all(n.halts == [] for n in nodes)
    finally:
        for node in nodes:
            node.driver.stop()
            node.chain.close()


@pytest.mark.asyncio
async def test_a_lost_first_proposal_is_outlasted_by_the_round_timeouts(tmp_path):
    """Validator 1 never gets round 0's proposal of height 1: its propose timeout prevotes nil, the
    prevote and precommit timeouts follow, and round 1 decides."""
    loop = asyncio.get_running_loop()

    def lose_first_proposal(index: int, frame: bytes) -> bool:
        message = wire.decode(frame, bytes_max=1 << 22)
        if isinstance(message, wire.ProposalBlock):
            return Block.decode(message.block).height == 1 and nodes[index].driver.core.round == 0
        if isinstance(message, wire.ConsensusMessage):
            decoded = decode_message(message.message)
            return isinstance(decoded, Proposal) and (decoded.height, decoded.round) == (1, 0)
        return False

    nodes, take = pair(tmp_path, loop, drop=lose_first_proposal)

    async def gossip() -> None:
        while True:
            await asyncio.sleep(0.02)
            for i, node in enumerate(nodes):
                for frame in node.driver.gossip_messages():
                    take(1 - i, frame)

    timings: list[tuple[str, float]] = []
    nodes[0].driver.on_timing = lambda stage, seconds: timings.append((stage, seconds))
    gossiping = loop.create_task(gossip())
    try:
        for node in nodes:
            node.driver.start()
        await until(lambda: all(len(n.committed) >= 2 for n in nodes))
        from ledger import queries

        first = CommitCertificate_of(queries.block(nodes[0].chain.ledger, 1)[1])
        assert first.round >= 1  # round 0 could not decide
        assert {queries_block_hash(n.chain.ledger, 1) for n in nodes} == {queries_block_hash(nodes[0].chain.ledger, 1)}
        stages = {stage for stage, _ in timings}
        assert {"sign_state_save", "validate", "apply", "commit"} <= stages
        assert all(0 <= seconds < 60 for _, seconds in timings)
    finally:
        gossiping.cancel()
        for node in nodes:
            node.driver.stop()
            node.chain.close()


def CommitCertificate_of(data: bytes):  # noqa: N802
    from consensus.certificate import CommitCertificate

    return CommitCertificate.decode(data)


# --- edges of the driver's own bookkeeping -----------------------------------------------------------


def vote_bytes(height: int, key: SigningKey = PAIR_KEYS[0]) -> bytes:
    from consensus.messages import PREVOTE, encode_message

    return encode_message(ConsensusSigner(key, CHAIN_ID).sign_vote(PREVOTE, height, 0, None))


@pytest.mark.asyncio
async def test_messages_for_this_height_and_the_next_two_are_kept_in_the_wal(tmp_path):
    from node.validator.consensus_wal import ConsensusWal

    node = Node(tmp_path, timeout_commit_ms=60_000)
    node.driver.wal = ConsensusWal(tmp_path / "wal")
    try:
        node.driver.start()
        await until(lambda: node.committed)
        node.driver.catch_up()
        assert node.driver.core.height == 2
        sent = {h: vote_bytes(h) for h in (1, 2, 3, 4, 5)}
        for data in sent.values():
            node.driver.on_consensus_message(data)
        for height in (2, 3, 4):
            assert sent[height] in node.driver.wal.read(height)
        assert sent[1] not in node.driver.wal.read(1) and sent[5] not in node.driver.wal.read(5)
    finally:
        node.close()


@pytest.mark.asyncio
async def test_evidence_the_core_reports_goes_to_the_pool(node):
    from consensus.actions import ReportEvidence
    from consensus.evidence import DuplicateVoteEvidence
    from consensus.messages import PREVOTE

    signer = ConsensusSigner(PAIR_KEYS[0], CHAIN_ID)
    a = signer.sign_vote(PREVOTE, 1, 0, b"\x01" * 32)
    b = ConsensusSigner(PAIR_KEYS[0], CHAIN_ID).sign_vote(PREVOTE, 1, 0, b"\x02" * 32)
    node.driver._run([ReportEvidence(DuplicateVoteEvidence(a, b))])
    assert len(node.driver.evidence.describe()) == 1


@pytest.mark.asyncio
async def test_catching_up_to_the_height_the_core_is_at_changes_nothing(node):
    node.driver.start()
    height = node.driver.core.height
    node.driver.catch_up()  # block sync caught up, but the ledger did not move past the core
    assert node.driver.core.height == height and node.halts == []


@pytest.mark.asyncio
async def test_an_idle_chain_is_not_woken_by_late_messages_of_its_own_height(tmp_path):
    idle = Node(tmp_path, timeout_commit_ms=5, empty_block_interval_ms=60_000)
    try:
        idle.driver.start()
        await until(lambda: idle.committed)
        await asyncio.sleep(0.05)
        height = idle.driver.core.height
        idle.driver.on_consensus_message(vote_bytes(height))
        await asyncio.sleep(0.1)
        assert len(idle.committed) == 1
        idle.driver.on_consensus_message(vote_bytes(height + 1))  # a peer started the next height
        await until(lambda: len(idle.committed) >= 2)
    finally:
        idle.close()


@pytest.mark.asyncio
async def test_wake_does_not_cut_the_commit_timeout_short_when_not_idle(tmp_path):
    busy = Node(tmp_path, timeout_commit_ms=60_000)
    try:
        busy.driver.start()
        await until(lambda: busy.committed)
        busy.driver.wake()
        await asyncio.sleep(0.1)
        assert busy.committed == [1]
    finally:
        busy.close()


@pytest.mark.asyncio
async def test_fired_timers_are_forgotten(tmp_path):
    waiting = Node(tmp_path, timeout_commit_ms=60_000)
    try:
        waiting.driver.start()
        await until(lambda: waiting.committed)
        await asyncio.sleep(0.3)  # every timeout of height 1 has fired by now
        now = asyncio.get_running_loop().time()
        assert all(timer.when() > now for timer in waiting.driver._timers)
    finally:
        waiting.close()


@pytest.mark.asyncio
async def test_a_block_exactly_at_the_clock_drift_bound_is_accepted(node, monkeypatch):
    from node.validator import driver as driver_module

    block = node.chain.ledger.build_block((), time_ms=now_ms(), proposer=PUBLIC_KEY)
    monkeypatch.setattr(driver_module, "now_ms", lambda: block.header.time_ms - CLOCK_DRIFT_MAX_MS)
    assert node.driver._judge(block)
    monkeypatch.setattr(driver_module, "now_ms", lambda: block.header.time_ms - CLOCK_DRIFT_MAX_MS - 1)
    assert not node.driver._judge(block)


@pytest.mark.asyncio
async def test_a_peer_commit_with_no_proposal_held_does_nothing(tmp_path):
    from node.validator.driver import ConsensusDriver as _Driver  # noqa: F401  (the class under test)

    node = Node(tmp_path)
    node.driver._peers_committed = lambda height: True
    try:
        node.driver.on_peer_committed()
        assert node.driver._held_proposal is None
    finally:
        node.close()
