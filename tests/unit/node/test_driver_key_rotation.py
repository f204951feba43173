"""A validator whose consensus key the chain rotates signs with the new key from the height the
rotation takes effect, proposes under it, and keeps its double-sign guard across the switch."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from nacl.signing import SigningKey

from consensus.core import TendermintCore
from consensus.messages import Proposal, decode_message
from consensus.signing import Signer as ConsensusSigner
from consensus.signing import verify_message
from consensus.timeouts import TimeoutConfig
from consensus.validators import Validator, ValidatorSet
from ledger import queries
from ledger.block import Block
from ledger.testing import LedgerHarness
from node.mempool.pool import Mempool
from node.p2p import wire
from node.validator.driver import BlockLimits, ConsensusDriver, ConsensusParams
from node.validator.evidence_pool import EvidencePool
from node.validator.sign_guard import SignStateFile

OLD, NEW = SigningKey(bytes([1]) * 32), SigningKey(bytes([2]) * 32)
ROTATED_AT = 3
FAST = TimeoutConfig(propose_ms=50, propose_delta_ms=10, prevote_ms=50, prevote_delta_ms=10,
                     precommit_ms=50, precommit_delta_ms=10)


#: What the chain would hand each height (node.service.Node.consensus_params).
PARAMS = ConsensusParams(BlockLimits(50, 1 << 19), dataclasses.replace(FAST, prevote_ms=60), 5)


def set_of(key: SigningKey) -> ValidatorSet:
    return ValidatorSet([Validator(bytes(key.verify_key), 1)])


def validators_at(height: int) -> ValidatorSet:
    return set_of(OLD if height < ROTATED_AT else NEW)


@pytest.mark.asyncio
async def test_the_driver_switches_to_the_rotated_key_at_its_height(tmp_path):
    chain = LedgerHarness(str(tmp_path / "store"))
    sign_state = SignStateFile(tmp_path / "sign_state.bin")
    chain_id = chain.ledger.chain_id
    core = TendermintCore(chain_id, validators_at(1), ConsensusSigner(OLD, chain_id, sign_state.load()), 1, FAST)
    signed: list = []

    def broadcast(frame: bytes) -> None:
        message = wire.decode(frame, bytes_max=1 << 22)
        if isinstance(message, wire.ConsensusMessage):
            signed.append(decode_message(message.message))

    driver = ConsensusDriver(
        core=core, ledger=chain.ledger, mempool=Mempool(chain.ledger), validators_at=validators_at,
        proposer_key=bytes(OLD.verify_key), sign_state_file=sign_state, evidence=EvidencePool(tmp_path / "ev"),
        broadcast=broadcast, on_commit=lambda result, block: None, on_halt=pytest.fail,
        request_missing_block=lambda height: None, limits=BlockLimits(100, 1 << 20), timeout_commit_ms=1_000,
        signing_keys=lambda: [OLD, NEW], consensus_params=lambda: PARAMS)
    driver.start()
    for _ in range(500):
        if chain.ledger.tip.height >= ROTATED_AT + 1:
            break
        await asyncio.sleep(0.01)
    driver.stop()
    assert chain.ledger.tip.height >= ROTATED_AT + 1
    assert (driver.core.timeouts, driver.limits, driver.timeout_commit_ms) == (PARAMS.timeouts, PARAMS.limits, 5)
    for message in signed:
        expected = OLD if message.height < ROTATED_AT else NEW
        assert message.signer == bytes(expected.verify_key), message
        assert verify_message(chain_id, message)
    assert {m.height for m in signed if isinstance(m, Proposal)} >= {1, 2, 3, 4}
    for height in range(1, ROTATED_AT + 2):
        block = Block.decode(queries.block(chain.ledger, height)[0])
        assert block.header.proposer == bytes((OLD if height < ROTATED_AT else NEW).verify_key)
    record = SignStateFile(tmp_path / "sign_state.bin").load()
    assert record is not None and record.height >= ROTATED_AT + 1  # one guard, carried across the switch
    chain.close()


@pytest.mark.asyncio
async def test_a_new_signer_must_carry_the_record_on(tmp_path):
    from consensus.errors import UsageError

    core = TendermintCore("c", set_of(OLD), ConsensusSigner(OLD, "c"), 1, FAST)
    core.start()
    core.propose(1, 0, b"\x01" * 32)  # something signed: the record is no longer blank
    with pytest.raises(UsageError, match="record"):
        core.start_height(2, set_of(NEW), ConsensusSigner(NEW, "c"))  # a fresh record: refused
