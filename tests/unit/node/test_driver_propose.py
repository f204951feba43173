"""The proposer's block: what the node does just before reaping goes into it."""

from __future__ import annotations

from consensus.validators import Validator, ValidatorSet
from ledger.testing import LedgerHarness
from node.driver import BlockLimits, ConsensusDriver
from node.evidence_pool import EvidencePool
from node.mempool import Mempool
from node.sign_guard import SignStateFile


class _Core:
    """Stands in for the Tendermint core: records the block id it was asked to propose."""

    def __init__(self) -> None:
        self.proposed: list[bytes] = []

    def propose(self, height: int, round_: int, block_id: bytes) -> list:
        self.proposed.append(block_id)
        return []


def test_the_hook_runs_before_the_reap_so_drained_gossip_is_in_the_block(tmp_path):
    chain = LedgerHarness(str(tmp_path / "store"))
    chain.standard_setup()
    chain.investor("alice")
    chain.investor("bob")
    chain.token("ACME", rules={"required_claims": ["kyc"]})
    assert chain.run(chain.signer("agent").issue("ACME", chain.address("alice"), 100)).ok
    mempool = Mempool(chain.ledger)
    alice = chain.signer("alice")
    early, late = (alice.transfer("ACME", chain.address("bob"), n) for n in (1, 2))
    mempool.add(early)
    core = _Core()
    proposer = chain.address("alice")
    driver = ConsensusDriver(
        core=core, ledger=chain.ledger, mempool=mempool, validators=ValidatorSet([Validator(proposer, 1)]),
        proposer_key=proposer, sign_state_file=SignStateFile(tmp_path / "sign_state.bin"),
        evidence=EvidencePool(tmp_path / "evidence"), broadcast=lambda frame: None,
        on_commit=lambda result, block: None, on_halt=lambda reason: None,
        request_missing_block=lambda height: None, limits=BlockLimits(100, 1 << 20), timeout_commit_ms=10,
        before_propose=lambda: mempool.add(late, check_rules=False))  # gossip that waited in the queue

    driver._propose(chain.ledger.tip.height + 1, 0)

    block = driver._blocks[core.proposed[0]]
    assert block.txs == (early, late)
    chain.close()
