"""The driver carries out the core's actions in order: what it signed is on disk before it leaves.

The consensus core emits `PersistSignState` before the `Broadcast` of what it signed; the core's
own tests prove that much. These prove the driver keeps that order when it carries the actions
out, because a save put off until after the send (a later turn of the loop, a background task)
opens a window in which a crash forgets a signature that peers already hold, and the restarted
validator may then sign a conflicting message: a double sign.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from nacl.signing import SigningKey

from consensus.actions import Broadcast, PersistSignState, ScheduleTimeout
from consensus.core import TendermintCore
from consensus.messages import MessageType, Proposal, Vote, decode_message
from consensus.signing import Signer as ConsensusSigner
from consensus.signing import SignState, SignStep
from consensus.timeouts import Step, TimeoutConfig
from consensus.validators import Validator, ValidatorSet
from ledger.testing import LedgerHarness
from node.mempool.pool import Mempool
from node.p2p import wire
from node.validator.consensus_wal import ConsensusWal
from node.validator.driver import BlockLimits, ConsensusDriver
from node.validator.evidence_pool import EvidencePool
from node.validator.sign_guard import SignStateFile

CHAIN_ID = "secledger-test"  # ledger.testing's chain id
KEY = SigningKey(bytes(range(32)))
PUBLIC_KEY = bytes(KEY.verify_key)
VALIDATORS = ValidatorSet([Validator(PUBLIC_KEY, 1)])  # alone: it proposes, votes and decides by itself
#: Short rounds, so a restarted validator refused at round 0 decides in round 1 within the test.
FAST = TimeoutConfig(propose_ms=50, propose_delta_ms=10, prevote_ms=50, prevote_delta_ms=10,
                     precommit_ms=50, precommit_delta_ms=10)
_STEP_OF = {MessageType.PROPOSAL: SignStep.PROPOSE, MessageType.PREVOTE: SignStep.PREVOTE,
            MessageType.PRECOMMIT: SignStep.PRECOMMIT}


class Killed(Exception):
    """The process died here: nothing after this point happens."""


class DyingSignStateFile(SignStateFile):
    """A sign-state file that stops writing once its process is killed, as a real one would."""

    dead = False

    def save(self, state: SignState) -> None:
        if not self.dead:
            super().save(state)


def kind_of(message: Proposal | Vote) -> MessageType:
    return MessageType.PROPOSAL if isinstance(message, Proposal) else message.kind


def signed_messages(frame: bytes) -> list[Proposal | Vote]:
    """Our own signed proposal or vote carried by a wire frame, if any."""
    message = wire.decode(frame, bytes_max=1 << 22)
    if not isinstance(message, wire.ConsensusMessage):
        return []
    decoded = decode_message(message.message)
    return [decoded] if decoded.signer == PUBLIC_KEY else []


def covers(record: SignState | None, message: Proposal | Vote) -> bool:
    """True if the double-sign guard's record on disk already accounts for `message`: it is the
    very message, or something signed after it."""
    if record is None:
        return False
    signed = (record.height, record.round, record.step)
    wanted = (message.height, message.round, _STEP_OF[kind_of(message)])
    if signed == wanted:
        return record.sign_bytes == message.sign_bytes(CHAIN_ID)
    return signed > wanted


class Validator1:
    """One validator's home (store, WAL, sign-state file) and the drivers started on it."""

    def __init__(self, home) -> None:
        self.home = home
        self.chain = LedgerHarness(str(home / "store"))
        self.committed: list[int] = []
        self.sent: list[Proposal | Vote] = []  # every signed message that left, across restarts
        self.unguarded: list[Proposal | Vote] = []  # sent while the guard on disk did not cover it

    def driver(self, broadcast) -> tuple[ConsensusDriver, DyingSignStateFile]:
        sign_state = DyingSignStateFile(self.home / "sign_state.bin")
        core = TendermintCore(CHAIN_ID, VALIDATORS, ConsensusSigner(KEY, CHAIN_ID, sign_state.load()),
                              self.chain.ledger.tip.height + 1, FAST)
        driver = ConsensusDriver(
            core=core, ledger=self.chain.ledger, mempool=Mempool(self.chain.ledger), validators_at=lambda height: VALIDATORS,
            proposer_key=PUBLIC_KEY, sign_state_file=sign_state, evidence=EvidencePool(self.home / "evidence"),
            broadcast=broadcast, on_commit=lambda result, block: self.committed.append(result.height),
            on_halt=lambda reason: pytest.fail(reason), request_missing_block=lambda height: None,
            limits=BlockLimits(100, 1 << 20), timeout_commit_ms=10_000, wal=ConsensusWal(self.home / "wal"))
        return driver, sign_state

    def record(self, frame: bytes) -> list[Proposal | Vote]:
        """Note what a frame carries, checking the guard on disk at the moment it leaves."""
        messages = signed_messages(frame)
        for message in messages:
            on_disk = SignStateFile(self.home / "sign_state.bin").load()  # what a crash now would keep
            if not covers(on_disk, message):
                self.unguarded.append(message)
            self.sent.append(message)
        return messages

    def conflicts(self) -> list[tuple[Proposal | Vote, Proposal | Vote]]:
        by_slot: dict[tuple[int, int, int], Proposal | Vote] = {}
        found = []
        for message in self.sent:
            slot = (message.height, message.round, int(kind_of(message)))
            first = by_slot.setdefault(slot, message)
            if first.sign_bytes(CHAIN_ID) != message.sign_bytes(CHAIN_ID):
                found.append((first, message))
        return found


async def until(done, *, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_every_signed_message_is_on_disk_before_the_driver_sends_it(tmp_path):
    node = Validator1(tmp_path)
    driver, _ = node.driver(node.record)
    driver.start()
    await until(lambda: node.committed)
    driver.stop()
    kinds = {kind_of(m) for m in node.sent}
    assert node.committed == [1]
    assert kinds == {MessageType.PROPOSAL, MessageType.PREVOTE, MessageType.PRECOMMIT}
    assert node.unguarded == []
    node.chain.close()


def _persist(height: int, round_: int, step: SignStep, tag: bytes) -> PersistSignState:
    return PersistSignState(SignState(height, round_, step, b"test:" + tag))


@pytest.mark.asyncio
@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
async def test_actions_are_carried_out_in_the_order_the_core_gave_them(tmp_path, order):
    """Whatever order the actions come in, their effects happen in that order, each finished
    before the next starts: a save is on disk before any later broadcast."""
    node = Validator1(tmp_path)
    effects: list[str] = []
    driver, sign_state = node.driver(lambda frame: effects.append(f"send:{len(effects)}"))
    original_save = sign_state.save

    def save(state: SignState) -> None:
        original_save(state)
        effects.append("save:" + state.sign_bytes.decode())

    sign_state.save = save  # type: ignore[method-assign]
    vote = ConsensusSigner(SigningKey(bytes(32)), CHAIN_ID).sign_vote(MessageType.PREVOTE, 1, 0, None)
    actions = [_persist(1, 0, SignStep.PREVOTE, b"a"), Broadcast(vote),
               _persist(1, 0, SignStep.PRECOMMIT, b"b"), ScheduleTimeout(1, 0, Step.PREVOTE, 60_000)]
    given = [actions[i] for i in order]
    driver._run(given)
    expected = []
    for action in given:
        if isinstance(action, PersistSignState):
            expected.append("save:" + action.state.sign_bytes.decode())
        elif isinstance(action, Broadcast):
            expected.append("send")
    assert [e.split(":")[0] if e.startswith("send") else e for e in effects] == expected
    assert len(driver._timers) == 1  # the timeout was scheduled too
    driver.stop()
    node.chain.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [MessageType.PROPOSAL, MessageType.PREVOTE, MessageType.PRECOMMIT])
async def test_a_validator_killed_as_it_sends_signs_nothing_that_conflicts_after_restart(tmp_path, kind):
    """The process dies at the moment its proposal, prevote or precommit leaves (the message
    counts as sent: a peer may hold it). The restarted validator must not sign another message
    for the same height, round and step, and the chain goes on."""
    node = Validator1(tmp_path)
    first_sign_state: list[DyingSignStateFile] = []

    def send_then_die(frame: bytes) -> None:
        if any(kind_of(m) == kind for m in node.record(frame)):
            first_sign_state[0].dead = True  # nothing the dying process does after this reaches disk
            raise Killed

    driver, sign_state = node.driver(send_then_die)
    first_sign_state.append(sign_state)
    loop = asyncio.get_running_loop()
    died = loop.create_future()
    loop.set_exception_handler(lambda _loop, context: died.done() or died.set_result(context.get("exception")))
    try:
        driver.start()
    except Killed:
        died.set_result(None)
    await asyncio.wait_for(died, 5)
    driver.stop()
    loop.set_exception_handler(None)
    await asyncio.sleep(0.05)  # anything the dead process had scheduled must not matter

    restarted, _ = node.driver(node.record)
    restarted.start()
    await until(lambda: node.committed)
    restarted.stop()
    assert node.committed == [1]
    assert node.conflicts() == []
    assert node.unguarded == []
    node.chain.close()
