"""The consensus driver: the only code that touches the Tendermint core.

It feeds the core peers' proposals and votes and its own timeouts, and carries out the actions the
core returns, in order: persist the double-sign guard (fsync) before anything it signed leaves,
broadcast, schedule timeouts, build a proposal from the mempool, judge proposed blocks through the
ledger, and apply decided blocks. Everything runs on the event loop, one step at a time, so the
core never sees two inputs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nacl.signing import SigningKey

from consensus.actions import (
    Action,
    Broadcast,
    Decide,
    PersistSignState,
    ReportEvidence,
    RequestProposal,
    ScheduleTimeout,
    ValidateBlock,
)
from consensus.certificate import CommitCertificate
from consensus.core import TendermintCore
from consensus.errors import MalformedMessage
from consensus.messages import Proposal, decode_message, encode_message
from consensus.signing import Signer as ConsensusSigner
from consensus.timeouts import TimeoutConfig
from consensus.validators import ValidatorSet
from ledger import Block, BlockResult, InvalidBlock, Ledger

from .. import fault_points
from ..mempool.pool import Mempool
from ..p2p import wire
from .byzantine import Byzantine
from .consensus_wal import ConsensusWal
from .evidence_pool import EvidencePool
from .sign_guard import SignStateFile

log = logging.getLogger("secledger.consensus")

#: Proposed blocks kept for the current and next height, waiting for their proposal or decision.
CANDIDATE_BLOCKS_MAX: int = 64
#: How far ahead of this node's clock a proposed block's time may be before we prevote nil.
CLOCK_DRIFT_MAX_MS: int = 10_000
#: Own messages of the current height re-sent when the height does not move (lost on a cut link).
OWN_MESSAGES_MAX: int = 16


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BlockLimits:
    txs_max: int
    bytes_max: int


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    """What a height runs with: the block limits, the round timeouts and the commit wait."""

    limits: BlockLimits
    timeouts: TimeoutConfig
    commit_ms: int


class ConsensusDriver:
    def __init__(
        self,
        *,
        core: TendermintCore,
        ledger: Ledger,
        mempool: Mempool,
        validators_at: Callable[[int], ValidatorSet],
        proposer_key: bytes,
        sign_state_file: SignStateFile,
        evidence: EvidencePool,
        broadcast: Callable[[bytes], None],
        on_commit: Callable[[BlockResult, Block], None],
        on_halt: Callable[[str], None],
        request_missing_block: Callable[[int], None],
        limits: BlockLimits,
        timeout_commit_ms: int,
        empty_block_interval_ms: int = 0,
        wal: ConsensusWal | None = None,
        before_propose: Callable[[], None] | None = None,
        peers_committed: Callable[[int], bool] | None = None,
        propose_wait_ms: int = 0,
        signing_keys: Callable[[], Sequence[SigningKey]] | None = None,
        consensus_params: Callable[[], ConsensusParams] | None = None,
    ) -> None:
        self.core = core
        self.ledger = ledger
        self.mempool = mempool
        self.validators_at = validators_at  # the set of each height, from the chain (node/validator/validator_sets.py)
        self.proposer_key = proposer_key
        self.sign_state_file = sign_state_file
        self.evidence = evidence
        self._broadcast = broadcast
        self._on_commit = on_commit
        self._on_halt = on_halt
        self._request_missing_block = request_missing_block
        self.limits = limits
        self.timeout_commit_ms = timeout_commit_ms
        self.empty_block_interval_ms = empty_block_interval_ms
        self._idle = False  # waiting before the next height because there is nothing to order
        self._blocks: OrderedDict[bytes, Block] = OrderedDict()
        self._awaiting: dict[bytes, int] = {}  # block id -> height of a ValidateBlock not yet answered
        self._own: list[bytes] = []  # wire messages we signed at this height, for re-sending
        self._timers: set[asyncio.TimerHandle] = set()
        self._next_height_timer: asyncio.TimerHandle | None = None
        self.stopped = False
        self.byzantine: Byzantine | None = None  # fault campaigns only; see node/validator/byzantine.py
        self._kill_before_send = fault_points.from_environment("kill_before_send")  # tests only
        self.wal = wal
        self._before_propose = before_propose
        self._peers_committed = peers_committed
        self.propose_wait_ms = propose_wait_ms
        self._held_proposal: tuple[int, int] | None = None  # (height, round) waiting for peers
        self._held_proposal_timer: asyncio.TimerHandle | None = None
        # Every consensus key this validator holds: the chain may rotate it to another of them.
        self._signing_keys = signing_keys
        # Block limits and timeouts as the chain's members set them, read at each height.
        self._consensus_params = consensus_params
        #: Told `(stage, seconds)` after each timed step, for metrics (node/ops/metrics.py):
        #: "validate" (judging a proposed block), "apply" (the ledger's write of a decided block),
        #: "commit" (apply and the node's bookkeeping after it), "sign_state_save" (the guard's fsync).
        self.on_timing: Callable[[str, float], None] | None = None

    # --- start / stop ----------------------------------------------------------------------------

    def start(self) -> None:
        self._run(self.core.start())
        if self.core.signer is not None and not self.core.voting:
            log.warning("this validator's key is not in the validator set of height %d: it follows the "
                        "chain without voting", self.core.height)
        self._replay_wal()

    def _replay_wal(self) -> None:
        """After a restart, feed the core what it had received for the heights not yet decided."""
        if self.wal is None:
            return
        self.wal.forget_below(self.core.height)
        for height in (self.core.height, self.core.height + 1, self.core.height + 2):
            for raw in self.wal.read_blocks(height):
                with contextlib.suppress(InvalidBlock):  # torn by the crash: a peer still has it
                    self._remember(Block.decode(raw))
            for data in self.wal.read(height):
                if self.stopped:
                    return
                self._run(self.core.receive_bytes(data))

    def stop(self) -> None:
        self.stopped = True
        self.sign_state_file.close()
        if self.wal is not None:
            self.wal.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._next_height_timer is not None:
            self._next_height_timer.cancel()
        if self._held_proposal_timer is not None:
            self._held_proposal_timer.cancel()

    # --- inputs ------------------------------------------------------------------------------------

    def on_consensus_message(self, data: bytes) -> None:
        if self.stopped:
            return
        try:
            message = decode_message(data)
        except MalformedMessage:
            self.core.drops.malformed += 1
            return
        if self.wal is not None and self.core.height <= message.height <= self.core.height + 2:
            self.wal.append(message.height, data)
        if self._idle and message.height > self.core.height:
            self.wake()  # a peer has started the next height: join it
        self._run(self.core.receive(message))

    def wake(self) -> None:
        """Something to order arrived (a transaction, or a peer's message for the next height):
        stop idling and start the next height now."""
        if self._idle and self._next_height_timer is not None:
            self._idle = False
            self._next_height_timer.cancel()
            self._next_height_timer = asyncio.get_running_loop().call_soon(self.catch_up)

    def on_proposal_block(self, data: bytes) -> None:
        """A proposer's block; judge it at once if the core is waiting on it."""
        try:
            block = Block.decode(data)
        except InvalidBlock as exc:
            log.info("dropped an undecodable proposal block: %s", exc)
            return
        if block.height not in (self.core.height, self.core.height + 1):
            return
        self._remember(block)
        if block.height > self.core.height:
            self.wake()
        if block.hash in self._awaiting and not self.stopped:
            height = self._awaiting.pop(block.hash)
            self._run(self.core.block_validity(height, block.hash, self._judge(block)))

    def gossip_messages(self) -> list[bytes]:
        """What to re-send when the height does not move: our own messages (with our proposal's
        block), and every proposal and vote we hold for the current round with its proof of lock,
        so a peer that lost some on a cut link, or restarted without them, gets them again."""
        held = self.core.round_messages(self.core.round) + self.core.pol_prevotes(self.core.round)
        return list(self._own) + [wire.encode(wire.ConsensusMessage(encode_message(m))) for m in held]

    def catch_up(self) -> None:
        """Move the core to the height above the ledger's tip (after a commit, or block sync)."""
        self._idle = False
        target = self.ledger.tip.height + 1
        if target > self.core.height and not self.stopped:
            self._enter_height(target)

    # --- carrying out actions ----------------------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if self.stopped:
                return
            match action:
                case PersistSignState(state):
                    started = time.perf_counter()
                    self.sign_state_file.save(state)
                    self._timed("sign_state_save", started)
                case Broadcast(message):
                    self._send(message)
                case ScheduleTimeout(height, round_, step, duration_ms):
                    self._schedule(duration_ms / 1000, self._timeout, height, round_, step)
                case RequestProposal(height, round_):
                    self._propose(height, round_)
                case ValidateBlock(height, _round, block_id):
                    self._validate(height, block_id)
                case Decide(height, _round, block_id, certificate):
                    self._decide(height, block_id, certificate)
                case ReportEvidence(evidence):
                    if self.evidence.add(evidence):
                        log.warning("evidence: validator %s signed conflicting messages at height %d",
                                    evidence.validator.hex(), evidence.height)

    def _send(self, message: object) -> None:
        frames = []
        if isinstance(message, Proposal):
            block = self._blocks.get(message.block_id)
            if block is not None:
                frames.append(wire.encode(wire.ProposalBlock(block.encode())))
        encoded = encode_message(message)
        frames.append(wire.encode(wire.ConsensusMessage(encoded)))
        if self.wal is not None:
            self.wal.append(message.height, encoded)
        if self._kill_before_send is not None:
            self._kill_before_send.reached()
        for frame in frames:
            self._broadcast(frame)
        self._own.extend(frames)
        del self._own[:-OWN_MESSAGES_MAX]
        if self.byzantine is not None:
            self.byzantine.after_send(message, self._blocks.get(getattr(message, "block_id", b"")))

    def _schedule(self, delay_s: float, callback: Callable[..., None], *args: object) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    def _timeout(self, height: int, round_: int, step: object) -> None:
        if not self.stopped:
            self._run(self.core.on_timeout(height, round_, step))

    def _propose(self, height: int, round_: int) -> None:
        if height != self.ledger.tip.height + 1:
            return  # the ledger is not at the height below; sync will move us
        if (round_ == 0 and self._peers_committed is not None and self.propose_wait_ms > 0
                and not self._peers_committed(height - 1)):
            # Each peer sends what its clients gave it before it says it committed the last block
            # (on the same ordered link), so once all have said so, this block can carry all of it;
            # a peer still applying would otherwise see its clients' transactions wait a whole
            # height. Bounded, and only in round 0: a later round must not wait for a dead peer.
            self._held_proposal = (height, round_)
            self._held_proposal_timer = asyncio.get_running_loop().call_later(
                self.propose_wait_ms / 1000, self._release_proposal)
            return
        self._propose_now(height, round_)

    def on_peer_committed(self) -> None:
        """A peer reported a commit: release a proposal waiting for it, if it was the last one."""
        if self._held_proposal is not None and self._peers_committed is not None:
            if self._peers_committed(self._held_proposal[0] - 1):
                self._release_proposal()

    def _release_proposal(self) -> None:
        held, self._held_proposal = self._held_proposal, None
        if self._held_proposal_timer is not None:
            self._held_proposal_timer.cancel()
            self._held_proposal_timer = None
        if held is None or self.stopped or (self.core.height, self.core.round) != held:
            return
        if held[0] == self.ledger.tip.height + 1:
            self._propose_now(*held)

    def _propose_now(self, height: int, round_: int) -> None:
        if self._before_propose is not None:
            self._before_propose()
        txs = self.mempool.reap(txs_max=self.limits.txs_max, bytes_max=self.limits.bytes_max)
        block = self.ledger.build_block(txs, time_ms=now_ms(), proposer=self.proposer_key)
        self._remember(block)
        self._keep_in_wal(block)
        self._run(self.core.propose(height, round_, block.hash))

    def _validate(self, height: int, block_id: bytes) -> None:
        block = self._blocks.get(block_id)
        if block is None:
            self._awaiting[block_id] = height  # answered when the block arrives
            return
        if block.header.proposer == self.proposer_key:
            # Our own proposal: its frames are only queued so far, and the peer links write them
            # when this callback returns. Judge it on the next turn of the loop, so the proposal
            # leaves before our own check of it (tens of milliseconds of a big block) and not after.
            asyncio.get_running_loop().call_soon(self._answer_validity, height, block)
            return
        self._answer_validity(height, block)

    def _answer_validity(self, height: int, block: Block) -> None:
        if not self.stopped:
            self._run(self.core.block_validity(height, block.hash, self._judge(block)))

    def _judge(self, block: Block) -> bool:
        if block.header.time_ms > now_ms() + CLOCK_DRIFT_MAX_MS:
            log.info("block %s is too far in the future", block.hash.hex()[:12])
            return False
        started = time.perf_counter()
        try:
            txs = self.ledger.validate_block(block, known=self.mempool.transactions)
        except InvalidBlock as exc:
            log.warning("proposed block %s at height %d is invalid: %s", block.hash.hex()[:12], block.height, exc)
            return False
        finally:
            self._timed("validate", started)
        self.mempool.note_proposed(txs)
        self._keep_in_wal(block)
        return True

    def _keep_in_wal(self, block: Block) -> None:
        """Before this node signs anything for `block` (its proposal, or a vote after judging it),
        so a decision replayed after a restart finds the block (see node/validator/consensus_wal.py)."""
        if self.wal is not None and not self.wal.has_block(block.height, block.hash):
            self.wal.append_block(block.height, block.hash, block.encode())

    def _decide(self, height: int, block_id: bytes, certificate: CommitCertificate) -> None:
        # Apply on the next turn of the loop: the precommit that completed this decision may be
        # our own, still queued, and the peers waiting for it should not wait for our apply too.
        asyncio.get_running_loop().call_soon(self._commit_decided, height, block_id, certificate)

    def _commit_decided(self, height: int, block_id: bytes, certificate: CommitCertificate) -> None:
        if self.stopped or height <= self.ledger.tip.height:
            return  # block sync got there first
        block = self._blocks.get(block_id)
        if block is None:
            # Decided from others' precommits without the block: fetch it, certified, from a peer.
            self._request_missing_block(height)
            return
        self.commit(block, certificate.encode())

    def commit(self, block: Block, certificate: bytes) -> BlockResult | None:
        """Apply a decided block; on a divergence, halt loudly rather than go on."""
        started = time.perf_counter()
        try:
            result = self.ledger.apply_block(block, certificate, known=self.mempool.transactions)
        except Exception as exc:  # StateRootMismatch, InvalidBlock of a certified block, disk errors
            self._on_halt(f"cannot apply certified block {block.height}: {type(exc).__name__}: {exc}")
            return None
        self._timed("apply", started)
        committed_at = asyncio.get_running_loop().time()
        self._on_commit(result, block)
        self._schedule_next_height(committed_at)
        self._timed("commit", started)
        return result

    def _schedule_next_height(self, committed_at: float) -> None:
        """Enter the next height `timeout_commit` after the block was applied: the commit's own
        bookkeeping (mempool, notifications) runs inside that wait, not before it."""
        if self._next_height_timer is not None:
            self._next_height_timer.cancel()
        delay_ms = self.timeout_commit_ms
        # An idle chain need not make a block every few hundred milliseconds; like CometBFT's
        # create_empty_blocks_interval, wait for work (see `wake`) up to the interval.
        self._idle = len(self.mempool) == 0 and self.empty_block_interval_ms > delay_ms
        if self._idle:
            delay_ms = self.empty_block_interval_ms
        loop = asyncio.get_running_loop()
        self._next_height_timer = loop.call_at(committed_at + delay_ms / 1000, self.catch_up)

    def _enter_height(self, height: int) -> None:
        self._own.clear()
        self._held_proposal = None
        if self._held_proposal_timer is not None:
            self._held_proposal_timer.cancel()
            self._held_proposal_timer = None
        if self.wal is not None:
            self.wal.forget_below(height)
        self._awaiting.clear()
        for block_id in [k for k, b in self._blocks.items() if b.height < height]:
            del self._blocks[block_id]
        if self._consensus_params is not None:
            params = self._consensus_params()
            self.limits, self.core.timeouts, self.timeout_commit_ms = params.limits, params.timeouts, params.commit_ms
        validators = self.validators_at(height)
        was_voting = self.core.voting
        signer = self._rotated_signer(height, validators)
        self._run(self.core.start_height(height, validators, signer))
        if was_voting and not self.core.voting:
            log.warning("this validator is not in the validator set from height %d on: it follows the "
                        "chain and serves reads without voting", height)

    def _rotated_signer(self, height: int, validators: ValidatorSet) -> ConsensusSigner | None:
        """A signer for the key the chain rotated this validator to, if it did so at `height`."""
        current = self.core.signer
        if current is None or current.public_key in validators or self._signing_keys is None:
            return None
        for key in self._signing_keys():
            public_key = bytes(key.verify_key)
            if public_key != current.public_key and public_key in validators:
                log.warning("consensus key rotated at height %d: signing as %s instead of %s", height,
                            public_key.hex()[:16], current.public_key.hex()[:16])
                self.proposer_key = public_key
                # The record goes on: the guard covers this node, whichever key it signs with.
                return ConsensusSigner(key, current.chain_id, current.state)
        return None

    def _timed(self, stage: str, started: float) -> None:
        if self.on_timing is not None:
            self.on_timing(stage, time.perf_counter() - started)

    def _remember(self, block: Block) -> None:
        self._blocks[block.hash] = block
        while len(self._blocks) > CANDIDATE_BLOCKS_MAX:
            self._blocks.popitem(last=False)
