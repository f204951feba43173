"""Block sync and observers follow every change of the validator set from genesis, trusting no peer.

The consortium adds a validator at height 1 (it signs from height 3) and removes one at height 3
(it stops at height 5). A node syncing from genesis must check each certificate against the set of
its height, which its own chain fixes: the new validator's signature counts from height 3, the
removed one's no longer from height 5, and the old set's quorum stops being enough once the set grew.
"""

from __future__ import annotations

import asyncio

import pytest

from consensus.certificate import CommitCertificate
from consensus.messages import MessageType, Vote, sign_bytes
from ledger import Block, Ledger, NotFound
from ledger.client import Action
from ledger.testing import LedgerHarness, address_of, governed_genesis, key_for
from node.p2p import wire
from node.sync.blocksync import BlockSync
from node.validator.validator_sets import ValidatorSets

PEER = b"\x09" * 32
GENESIS = governed_genesis(validators=(("v0", 10), ("v1", 10), ("v2", 10), ("v3", 10)))


def certificate(chain_id: str, block: Block, signers: list[str]) -> bytes:
    votes = []
    for name in signers:
        key = key_for(f"validator:{name}")
        data = sign_bytes(chain_id, MessageType.PRECOMMIT, block.height, 0, block.hash, -1)
        votes.append(Vote(MessageType.PRECOMMIT, block.height, 0, block.hash, bytes(key.verify_key),
                          key.sign(data).signature))
    return CommitCertificate.from_votes(block.height, 0, block.hash, votes).encode()


@pytest.fixture(scope="module")
def governed_chain(tmp_path_factory):
    """Five certified blocks of a chain whose set changes twice, each certified by its own set."""
    h = LedgerHarness(str(tmp_path_factory.mktemp("source") / "store"), genesis=GENESIS)
    member = h.signer("m0")  # the only member, 1 of 1: a proposal executes in its own block
    plan = [
        ([member.propose([Action.add_validator(address_of("validator:v4"), address_of("node:v4"), 10,
                                               "127.0.0.1:7", "v4")], expires_at_height=50)],
         ["v0", "v1", "v2", "v3"]),
        ([], ["v0", "v1", "v2", "v3"]),
        ([member.propose([Action.remove_validator(address_of("validator:v0"))], expires_at_height=50)],
         ["v1", "v2", "v3", "v4"]),  # v4 signs from height 3; without it 30 of 50 is no quorum
        ([], ["v1", "v2", "v3", "v4"]),
        ([], ["v1", "v2", "v3", "v4"]),  # v0 is out from height 5
    ]
    blocks = []
    for txs, signers in plan:
        block = h.block(txs)
        h.ledger.validate_block(block)
        cert = certificate(h.ledger.chain_id, block, signers)
        result = h.ledger.apply_block(block, cert)
        assert all(r.outcome.ok for r in result.receipts), [str(r.outcome) for r in result.receipts]
        blocks.append((block, cert))
    yield blocks
    h.close()


class Syncing:
    def __init__(self, path: str) -> None:
        self.ledger = Ledger.open(path, GENESIS)
        self.sets = ValidatorSets(self.ledger)
        self.sent: list[tuple[bytes, bytes]] = []
        self.sync = BlockSync(ledger=self.ledger, validators_at=self.sets.at,
                              send=lambda peer, data: self.sent.append((peer, data)) or True,
                              apply=lambda block, cert: self.ledger.apply_block(block, cert),
                              on_caught_up=lambda: None, response_bytes_max=1 << 20)

    async def feed(self, pairs: list[tuple[Block, bytes]], peer_height: int) -> None:
        self.sync.on_status(PEER, wire.Status(peer_height, b"\x00" * 32, b"\x00" * 32))
        for _ in range(500):
            if self.sent:
                break
            await asyncio.sleep(0.005)
        self.sent.clear()
        self.sync.on_blocks(PEER, wire.Blocks(tuple((b.encode(), c) for b, c in pairs)))
        await asyncio.sleep(0.02)

    def close(self) -> None:
        self.sync.stop()
        self.ledger.close()


def keys(validator_set) -> set[bytes]:
    return {v.public_key for v in validator_set}


def named(*names: str) -> set[bytes]:
    return {address_of(f"validator:{n}") for n in names}


@pytest.mark.asyncio
async def test_a_node_syncing_from_genesis_follows_both_changes(governed_chain, tmp_path):
    node = Syncing(str(tmp_path / "store"))
    try:
        await node.feed(governed_chain, peer_height=5)
        assert node.ledger.tip.height == 5 and node.sync.rejected_responses == 0
        assert keys(node.sets.at(2)) == named("v0", "v1", "v2", "v3")
        assert keys(node.sets.at(3)) == named("v0", "v1", "v2", "v3", "v4")
        assert keys(node.sets.at(5)) == named("v1", "v2", "v3", "v4")
        with pytest.raises(NotFound):
            node.sets.at(8)  # no block this node holds has fixed it yet
    finally:
        node.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("height, signers, why", [
    (3, ["v0", "v1", "v2"], "the old set's quorum (30 of 40) is no quorum of the grown set (30 of 50)"),
    (5, ["v0", "v1", "v2", "v3"], "v0 was removed from height 5: an unknown signer"),
    (2, ["v1", "v2", "v3", "v4"], "v4 signs only from height 3"),
])
async def test_a_forged_transition_is_refused(governed_chain, tmp_path, height, signers, why):
    node = Syncing(str(tmp_path / "store"))
    try:
        await node.feed(governed_chain[:height - 1], peer_height=5)
        assert node.ledger.tip.height == height - 1
        block, _ = governed_chain[height - 1]
        await node.feed([(block, certificate(node.ledger.chain_id, block, signers))], peer_height=5)
        assert node.ledger.tip.height == height - 1, why
        assert node.sync.rejected_responses == 1
    finally:
        node.close()


def test_a_block_that_names_another_set_is_refused_by_the_ledger(governed_chain, tmp_path):
    """The header commits to the set of its height and the next; the ledger checks both."""
    import dataclasses

    from ledger import InvalidBlock

    ledger = Ledger.open(str(tmp_path / "store"), GENESIS)
    try:
        for block, cert in governed_chain[:1]:
            ledger.apply_block(block, cert)
        block, cert = governed_chain[1]  # height 2: its next set (height 3) holds v4
        stale = Block(dataclasses.replace(block.header, next_validators_hash=block.header.validators_hash), block.txs)
        with pytest.raises(InvalidBlock, match="next validators hash"):
            ledger.apply_block(stale, cert)
        assert block.header.next_validators_hash != block.header.validators_hash
    finally:
        ledger.close()
