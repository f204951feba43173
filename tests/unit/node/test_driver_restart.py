"""A block decided but not yet stored when the node stops is applied after the restart, from
the node's own consensus WAL: if every validator stopped in that window, no peer would have it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from nacl.signing import SigningKey

from consensus.core import TendermintCore
from consensus.signing import Signer as ConsensusSigner
from consensus.timeouts import TimeoutConfig
from consensus.validators import Validator, ValidatorSet
from ledger.testing import LedgerHarness
from node.mempool.pool import Mempool
from node.validator.consensus_wal import ConsensusWal
from node.validator.driver import BlockLimits, ConsensusDriver
from node.validator.evidence_pool import EvidencePool
from node.validator.sign_guard import SignStateFile

KEY = SigningKey(bytes(range(32)))
VALIDATORS = ValidatorSet([Validator(bytes(KEY.verify_key), 1)])  # alone: it decides by itself


def start_driver(chain: LedgerHarness, home, *, missing: list[int], committed: list[int]) -> ConsensusDriver:
    sign_state = SignStateFile(home / "sign_state.bin")
    core = TendermintCore(chain.ledger.chain_id, VALIDATORS,
                          ConsensusSigner(KEY, chain.ledger.chain_id, sign_state.load()),
                          chain.ledger.tip.height + 1, TimeoutConfig())
    driver = ConsensusDriver(
        core=core, ledger=chain.ledger, mempool=Mempool(chain.ledger), validators_at=lambda height: VALIDATORS,
        proposer_key=bytes(KEY.verify_key), sign_state_file=sign_state, evidence=EvidencePool(home / "evidence"),
        broadcast=lambda frame: None, on_commit=lambda result, block: committed.append(result.height),
        on_halt=lambda reason: pytest.fail(reason), request_missing_block=missing.append,
        limits=BlockLimits(100, 1 << 20), timeout_commit_ms=10_000, wal=ConsensusWal(home / "wal"))
    return driver


async def until(done: Callable[[], object]) -> None:
    for _ in range(500):  # up to 5 s on a slow machine; done in milliseconds here
        if done():
            return
        await asyncio.sleep(0.01)


class Restart:
    """A single validator's store and WAL after it decided the next block and stopped before
    storing it; `restart()` starts a new driver on the same home, as the process would."""

    def __init__(self, home) -> None:
        self.home = home
        self.chain = LedgerHarness(str(home / "store"))
        self.start_height = self.chain.ledger.tip.height
        self.missing: list[int] = []
        self.committed: list[int] = []

    async def decide_then_stop(self) -> None:
        first = self._driver()
        decided: list[int] = []
        first._commit_decided = lambda height, block_id, certificate: decided.append(height)  # stops here
        first.start()
        await until(lambda: decided)
        first.stop()
        assert decided == [self.start_height + 1]  # decided, not stored

    async def restart_until(self, done: Callable[[], object]) -> None:
        second = self._driver()
        second.start()  # replays the WAL
        await until(done)
        second.stop()

    def _driver(self) -> ConsensusDriver:
        return start_driver(self.chain, self.home, missing=self.missing, committed=self.committed)


@pytest.mark.asyncio
async def test_a_decided_block_not_yet_applied_survives_a_restart(tmp_path):
    node = Restart(tmp_path)
    await node.decide_then_stop()

    await node.restart_until(lambda: node.committed)  # the decision comes back, and with it the block
    assert node.committed == [node.start_height + 1] and node.chain.ledger.tip.height == node.start_height + 1
    assert node.missing == []  # not fetched from a peer: none might have it
    node.chain.close()


@pytest.mark.asyncio
async def test_a_block_torn_by_the_crash_is_skipped_and_fetched_from_a_peer(tmp_path):
    node = Restart(tmp_path)
    await node.decide_then_stop()
    [kept] = (tmp_path / "wal").glob("*.block")
    kept.write_bytes(kept.read_bytes()[: len(kept.read_bytes()) // 2])  # the write was cut short

    await node.restart_until(lambda: node.missing)  # must not fail on the torn file
    assert node.missing == [node.start_height + 1] and node.committed == []  # asked the peers
    node.chain.close()
