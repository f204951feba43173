"""The proposer's block: what the node does just before reaping goes into it, and when a round-0
proposer waits for its peers' commits."""

from __future__ import annotations

import asyncio

import pytest

from consensus.validators import Validator, ValidatorSet
from node.mempool.pool import Mempool
from node.validator.driver import BlockLimits, ConsensusDriver
from node.validator.evidence_pool import EvidencePool
from node.validator.sign_guard import SignStateFile


class _Core:
    """Stands in for the Tendermint core: records the block id it was asked to propose."""

    def __init__(self, height: int = 1, round_: int = 0) -> None:
        self.height, self.round = height, round_
        self.proposed: list[bytes] = []

    def propose(self, height: int, round_: int, block_id: bytes) -> list:
        self.proposed.append(block_id)
        return []


def make_driver(chain, tmp_path, core, mempool, **hooks) -> ConsensusDriver:
    proposer = chain.address("alice")
    return ConsensusDriver(
        core=core, ledger=chain.ledger, mempool=mempool, validators_at=lambda height: ValidatorSet([Validator(proposer, 1)]),
        proposer_key=proposer, sign_state_file=SignStateFile(tmp_path / "sign_state.bin"),
        evidence=EvidencePool(tmp_path / "evidence"), broadcast=lambda frame: None,
        on_commit=lambda result, block: None, on_halt=lambda reason: None,
        request_missing_block=lambda height: None, limits=BlockLimits(100, 1 << 20), timeout_commit_ms=10,
        **hooks)


def test_the_hook_runs_before_the_reap_so_drained_gossip_is_in_the_block(chain, tmp_path):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    early, late = (alice.transfer("ACME", chain.address("bob"), n) for n in (1, 2))
    mempool.add(early)
    core = _Core()
    driver = make_driver(chain, tmp_path, core, mempool,
                         before_propose=lambda: mempool.add(late, check_rules=False))  # queued gossip

    driver._propose(chain.ledger.tip.height + 1, 0)

    block = driver._blocks[core.proposed[0]]
    assert block.txs == (early, late)


@pytest.mark.asyncio
async def test_a_round_0_proposer_waits_for_its_peers_commits_then_proposes_with_their_gossip(chain, tmp_path):
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    gossiped = alice.transfer("ACME", chain.address("bob"), 1)
    height = chain.ledger.tip.height + 1
    core = _Core(height)
    committed = {"peer": height - 2}  # the peer is still applying the last block
    driver = make_driver(chain, tmp_path, core, mempool, propose_wait_ms=60_000,
                         peers_committed=lambda h: committed["peer"] >= h)

    driver._propose(height, 0)
    assert core.proposed == []  # held while the peer has not said it committed
    mempool.add(gossiped, check_rules=False)  # its gossip arrives, then its status
    committed["peer"] = height - 1
    driver.on_peer_committed()

    assert len(core.proposed) == 1
    assert driver._blocks[core.proposed[0]].txs == (gossiped,)
    driver.stop()


def held_round_0_proposal(chain, tmp_path) -> tuple[ConsensusDriver, _Core]:
    """A proposer whose peer never reports (dead or cut off), with its round-0 proposal held."""
    height = chain.ledger.tip.height + 1
    core = _Core(height)
    driver = make_driver(chain, tmp_path, core, Mempool(chain.ledger), propose_wait_ms=20,
                         peers_committed=lambda h: False)
    driver._propose(height, 0)
    return driver, core


@pytest.mark.asyncio
async def test_the_wait_is_bounded_and_later_rounds_do_not_wait(chain, tmp_path):
    driver, core = held_round_0_proposal(chain, tmp_path)
    assert core.proposed == []
    await asyncio.sleep(0.2)
    assert len(core.proposed) == 1  # proposed once the wait ran out

    core.round = 1
    driver._propose(core.height, 1)
    assert len(core.proposed) == 2  # at once
    driver.stop()


@pytest.mark.asyncio
async def test_a_held_proposal_is_dropped_when_the_round_moves_on(chain, tmp_path):
    driver, core = held_round_0_proposal(chain, tmp_path)
    core.round = 1  # the core timed out on round 0 meanwhile
    await asyncio.sleep(0.2)
    assert core.proposed == []  # a round-0 proposal must not go out in round 1
    driver.stop()
