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
from node.consensus_wal import ConsensusWal
from node.driver import BlockLimits, ConsensusDriver
from node.evidence_pool import EvidencePool
from node.mempool import Mempool
from node.sign_guard import SignStateFile

KEY = SigningKey(bytes(range(32)))
VALIDATORS = ValidatorSet([Validator(bytes(KEY.verify_key), 1)])  # alone: it decides by itself


def start_driver(chain: LedgerHarness, home, *, missing: list[int], committed: list[int]) -> ConsensusDriver:
    sign_state = SignStateFile(home / "sign_state.bin")
    core = TendermintCore(chain.ledger.chain_id, VALIDATORS,
                          ConsensusSigner(KEY, chain.ledger.chain_id, sign_state.load()),
                          chain.ledger.tip.height + 1, TimeoutConfig())
    driver = ConsensusDriver(
        core=core, ledger=chain.ledger, mempool=Mempool(chain.ledger), validators=VALIDATORS,
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


async def decide_then_stop(chain: LedgerHarness, home, *, missing: list[int], committed: list[int]) -> None:
    """Run a driver until it decides the next block, and stop it before it stores the block."""
    first = start_driver(chain, home, missing=missing, committed=committed)
    decided: list[int] = []
    first._commit_decided = lambda height, block_id, certificate: decided.append(height)  # stops here
    first.start()
    await until(lambda: decided)
    first.stop()
    assert decided == [chain.ledger.tip.height + 1]  # decided, not stored


@pytest.mark.asyncio
async def test_a_decided_block_not_yet_applied_survives_a_restart(tmp_path):
    chain = LedgerHarness(str(tmp_path / "store"))
    start_height = chain.ledger.tip.height
    missing: list[int] = []
    committed: list[int] = []
    await decide_then_stop(chain, tmp_path, missing=missing, committed=committed)

    second = start_driver(chain, tmp_path, missing=missing, committed=committed)  # the restart
    second.start()  # replays the WAL: the decision comes back, and with it the block
    await until(lambda: committed)
    second.stop()
    assert committed == [start_height + 1] and chain.ledger.tip.height == start_height + 1
    assert missing == []  # not fetched from a peer: none might have it
    chain.close()


@pytest.mark.asyncio
async def test_a_block_torn_by_the_crash_is_skipped_and_fetched_from_a_peer(tmp_path):
    chain = LedgerHarness(str(tmp_path / "store"))
    start_height = chain.ledger.tip.height
    missing: list[int] = []
    committed: list[int] = []
    await decide_then_stop(chain, tmp_path, missing=missing, committed=committed)
    [kept] = (tmp_path / "wal").glob("*.block")
    kept.write_bytes(kept.read_bytes()[: len(kept.read_bytes()) // 2])  # the write was cut short

    second = start_driver(chain, tmp_path, missing=missing, committed=committed)
    second.start()  # must not fail on the torn file
    await until(lambda: missing)
    second.stop()
    assert missing == [start_height + 1] and committed == []  # asked the peers, as before the WAL kept blocks
    chain.close()
