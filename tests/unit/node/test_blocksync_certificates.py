"""Block sync trusts no peer: a block comes in only with a commit certificate that proves +2/3 of
the validator set precommitted exactly that block at exactly that height.

A syncing validator and an observer (the regulator's node) apply what block sync hands them, so a
peer able to slip one forged certificate past it could feed them a chain of its own making. Each
forgery here is refused: nothing is applied, and the peer's answer counts as rejected.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import msgpack
import pytest
from nacl.signing import SigningKey

from consensus.certificate import CommitCertificate
from consensus.messages import MessageType, Vote, sign_bytes
from ledger import Block, GenesisValidator, Ledger
from ledger.testing import test_genesis as genesis_for_tests
from node.p2p import wire
from node.p2p.peers import PeerManager
from node.service import Node
from node.setup.config import load_config
from node.setup.keys import load_key
from node.setup.netgen import generate
from node.sync.blocksync import BlockSync
from node.validator.validator_sets import ValidatorSets

PEER = b"\x07" * 32


def precommit(key: SigningKey, chain_id: str, height: int, block_id: bytes, round_: int = 0) -> Vote:
    data = sign_bytes(chain_id, MessageType.PRECOMMIT, height, round_, block_id, -1)
    return Vote(MessageType.PRECOMMIT, height, round_, block_id, bytes(key.verify_key), key.sign(data).signature)


def certificate(keys: list[SigningKey], chain_id: str, height: int, block_id: bytes) -> bytes:
    votes = [precommit(k, chain_id, height, block_id) for k in keys]
    return CommitCertificate.from_votes(height, 0, block_id, votes).encode()


def forged(kind: str, keys: list[SigningKey], outsiders: list[SigningKey], chain_id: str, block: Block) -> bytes:
    """A certificate for `block` that must not convince anyone, forged in one way."""
    h, bid = block.height, block.hash
    match kind:
        case "signed by non-validators":
            return certificate(outsiders, chain_id, h, bid)
        case "for another block":
            return certificate(keys, chain_id, h, b"\x42" * 32)
        case "for another height":
            return certificate(keys, chain_id, h + 1, bid)
        case "of another chain":
            return certificate(keys, "another-chain", h, bid)
        case "without a quorum":  # 2 of 4 equal powers: half, not more than two thirds
            return certificate(keys[:2], chain_id, h, bid)
        case "with a repeated signer":  # one validator's precommit three times looks like 3 of 4
            vote = precommit(keys[0], chain_id, h, bid)
            entry = [vote.validator, vote.signature]
            return msgpack.packb([h, 0, bid, [entry, entry, entry]], use_bin_type=True)
        case "with a signature over other bytes":
            votes = [precommit(k, chain_id, h, bid) for k in keys]
            bad = precommit(keys[0], chain_id, h, b"\x43" * 32)
            votes[0] = Vote(MessageType.PRECOMMIT, h, 0, bid, bad.validator, bad.signature)
            return CommitCertificate.from_votes(h, 0, bid, votes).encode()
    raise AssertionError(kind)


FORGERIES = ["signed by non-validators", "for another block", "for another height", "of another chain",
             "without a quorum", "with a repeated signer", "with a signature over other bytes"]


class CertifiedChain:
    """Blocks made on a source ledger of the same genesis, each with a real certificate from
    `keys`: what an honest peer would serve."""

    def __init__(self, path: Path, genesis, keys: list[SigningKey]) -> None:
        self.source = Ledger.open(str(path), genesis)
        self.keys = keys
        self.blocks: list[tuple[Block, bytes]] = []

    def grow(self, count: int) -> None:
        for _ in range(count):
            tip = self.source.tip
            block = self.source.build_block((), time_ms=tip.time_ms + 1000, proposer=bytes(self.keys[0].verify_key))
            cert = certificate(self.keys, self.source.chain_id, block.height, block.hash)
            self.source.apply_block(block, cert)
            self.blocks.append((block, cert))

    def close(self) -> None:
        self.source.close()


async def feed(sync: BlockSync, sent: list[tuple[bytes, bytes]], answers: list[wire.Blocks], *,
               peer_height: int) -> None:
    """Announce a peer ahead of us and answer each of sync's requests with the next answer."""
    pending = list(answers)

    async def answer_requests() -> None:
        while pending:
            if sent:
                sent.clear()
                sync.on_blocks(PEER, pending.pop(0))
            await asyncio.sleep(0.001)

    responder = asyncio.get_running_loop().create_task(answer_requests())
    sync.on_status(PEER, wire.Status(peer_height, b"\x00" * 32, b"\x00" * 32))
    await asyncio.wait_for(responder, 5)
    await asyncio.sleep(0.01)  # let the last answer be taken


@pytest.fixture
def four_validators(tmp_path):
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
    genesis = dataclasses.replace(genesis_for_tests(), validators=tuple(
        GenesisValidator(f"v{i}", bytes(k.verify_key), bytes([i + 50]) * 32, 10) for i, k in enumerate(keys)))
    chain = CertifiedChain(tmp_path / "source", genesis, keys)
    chain.grow(3)
    ledger = Ledger.open(str(tmp_path / "syncing"), genesis)
    applied: list[int] = []

    def apply(block: Block, cert: bytes):
        result = ledger.apply_block(block, cert)
        applied.append(block.height)
        return result

    sent: list[tuple[bytes, bytes]] = []
    sync = BlockSync(ledger=ledger, validators_at=ValidatorSets(ledger).at,
                     send=lambda peer, data: sent.append((peer, data)) or True, apply=apply,
                     on_caught_up=lambda: None, response_bytes_max=1 << 20)
    yield chain, ledger, sync, sent, applied
    sync.stop()
    ledger.close()
    chain.close()


@pytest.mark.asyncio
async def test_certified_blocks_are_applied(four_validators):
    chain, ledger, sync, sent, applied = four_validators
    await feed(sync, sent, [wire.Blocks(tuple((b.encode(), c) for b, c in chain.blocks))], peer_height=3)
    assert applied == [1, 2, 3] and ledger.tip.block_hash == chain.blocks[-1][0].hash
    assert sync.rejected_responses == 0 and sync.blocks_synced == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", FORGERIES)
async def test_a_forged_certificate_is_refused_and_nothing_applied(four_validators, kind):
    chain, ledger, sync, sent, applied = four_validators
    outsiders = [SigningKey(bytes([i + 101]) * 32) for i in range(4)]
    block, _ = chain.blocks[0]
    bad = forged(kind, chain.keys, outsiders, ledger.chain_id, block)
    await feed(sync, sent, [wire.Blocks(((block.encode(), bad),))], peer_height=3)
    assert applied == [] and ledger.tip.height == 0
    assert sync.rejected_responses == 1


@pytest.mark.asyncio
async def test_a_forged_certificate_stops_the_rest_of_the_answer(four_validators):
    """Blocks after a refused one are not taken from that answer, even if their own
    certificates are good: they would not chain onto our tip anyway, and the peer lied once."""
    chain, ledger, sync, sent, applied = four_validators
    (b1, c1), (b2, _), (b3, c3) = chain.blocks
    forged_2 = certificate(chain.keys[:2], ledger.chain_id, b2.height, b2.hash)
    answer = wire.Blocks(((b1.encode(), c1), (b2.encode(), forged_2), (b3.encode(), c3)))
    await feed(sync, sent, [answer], peer_height=3)
    assert applied == [1] and sync.rejected_responses == 1


# --- an observer, the regulator's node, wired as `secledger start` wires it --------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", FORGERIES)
async def test_an_observer_refuses_a_forged_chain(tmp_path, monkeypatch, kind):
    plans = generate(tmp_path / "net", validators=4, observers=1, port_base=20_000)
    observer_plan = next(p for p in plans if p.mode == "observer")
    keys = [load_key(tmp_path / "net" / "keys" / f"{p.name}.validator.json") for p in plans if p.mode == "validator"]
    sent: list[tuple[bytes, bytes]] = []
    monkeypatch.setattr(PeerManager, "send", lambda self, peer, data: sent.append((peer, data)) or True)
    node = Node(load_config(tmp_path / "net" / observer_plan.config_file))
    assert node.observer and node.driver is None
    chain = CertifiedChain(tmp_path / "source", node.genesis, keys)
    chain.grow(2)
    outsiders = [SigningKey(bytes([i + 101]) * 32) for i in range(4)]
    (block, good), _ = chain.blocks
    try:
        bad = forged(kind, keys, outsiders, node.chain_id, block)
        await feed(node.sync, sent, [wire.Blocks(((block.encode(), bad),))], peer_height=2)
        assert node.ledger.tip.height == 0 and node.sync.rejected_responses == 1
        # the same block with its real certificate is taken: the refusal was the certificate's
        await feed(node.sync, sent, [wire.Blocks(((block.encode(), good),))], peer_height=2)
        assert node.ledger.tip.height == 1 and node.ledger.tip.block_hash == block.hash
    finally:
        node.sync.stop()
        node.ledger.close()
        chain.close()


async def asked(sync: BlockSync, sent: list[tuple[bytes, bytes]]) -> None:
    """Announce a peer ahead of us and wait until sync asks it for blocks."""
    sync.on_status(PEER, wire.Status(3, b"\x00" * 32, b"\x00" * 32))
    for _ in range(100):
        if sent:
            return
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_cancelling_the_sync_task_ends_it_even_while_it_waits_for_a_peer(four_validators):
    """Shutdown cancels every task and waits for it: a sync loop that took the cancellation for a
    lost peer would go on asking, and the node's shutdown would never finish."""
    _, _, sync, sent, _ = four_validators
    await asked(sync, sent)
    assert sent and sync.syncing  # waiting for the peer's answer
    task = sync._task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


@pytest.mark.asyncio
async def test_a_peer_that_goes_away_mid_request_is_not_a_shutdown(four_validators):
    chain, ledger, sync, sent, applied = four_validators
    await asked(sync, sent)
    sent.clear()
    sync.on_peer_down(PEER)  # its pending answer is cancelled, not the sync task
    await asyncio.sleep(0.01)
    assert sync.syncing
    await feed(sync, sent, [wire.Blocks(tuple((b.encode(), c) for b, c in chain.blocks))], peer_height=3)
    assert applied == [1, 2, 3]
