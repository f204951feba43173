"""Benchmark (not a test): the time for a new node to join a chain of many transfers, by block
sync (verify every certificate, apply every block) and by state sync (verify the newest snapshot
against the root block h + 1 certifies, install it, apply the blocks after it).

In one process, without the network: both sides read the source ledger's own blocks, so the
figures are the joining node's CPU and disk work, not transfer time (state sync moves the state,
about 18 LMDB entries' worth per active investor; block sync moves every block).

    .venv/bin/python bench/statesync.py [--transfers 100000] [--block 2000] [--investors 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ledger_apply import setup, signed_transfers  # noqa: E402

from consensus.certificate import CommitCertificate  # noqa: E402
from consensus.messages import MessageType, Vote, sign_bytes  # noqa: E402
from consensus.validators import Validator, ValidatorSet  # noqa: E402
from ledger import Block, Ledger, queries  # noqa: E402
from ledger.testing import LedgerHarness, address_of, key_for  # noqa: E402
from node.sync.statesync import snapshot as snap  # noqa: E402
from node.sync.statesync.install import install  # noqa: E402
from node.sync.statesync.verify import verify  # noqa: E402


def certificate(chain_id: str, height: int, block_id: bytes) -> bytes:
    key = key_for("validator-0")
    data = sign_bytes(chain_id, MessageType.PRECOMMIT, height, 0, block_id, -1)
    vote = Vote(MessageType.PRECOMMIT, height, 0, block_id, bytes(key.verify_key), key.sign(data).signature)
    return CommitCertificate.from_votes(height, 0, block_id, [vote]).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=2000)
    parser.add_argument("--investors", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        source = LedgerHarness(os.path.join(directory, "source"))
        names = setup(source, args.investors)
        txs = signed_transfers(source, names, args.transfers, seed=7)
        for start in range(0, len(txs), args.block):
            block = source.block(txs[start:start + args.block])
            source.ledger.apply_block(block, certificate(source.ledger.chain_id, block.height, block.hash))
        snapshot = snap.take(source.ledger)  # the snapshot a peer would serve, at the tip
        h = snapshot.manifest.point.height
        last = source.block([])  # block h + 1, which certifies root(h)
        source.ledger.apply_block(last, certificate(source.ledger.chain_id, last.height, last.hash))
        chain_id = source.ledger.chain_id
        # every block with a real certificate (the set-up blocks were committed with placeholders)
        blocks = []
        for height in range(1, last.height + 1):
            raw = queries.block(source.ledger, height)[0]
            blocks.append((raw, certificate(chain_id, height, Block.decode(raw).hash)))
        validators = ValidatorSet([Validator(address_of("validator-0"), 10)])

        started, cpu = time.perf_counter(), time.process_time()
        joined = Ledger.open(os.path.join(directory, "block-sync"), source.genesis)
        for raw, cert in blocks:
            block = Block.decode(raw)
            CommitCertificate.decode(cert).verify(chain_id, validators, height=block.height, block_id=block.hash)
            joined.apply_block(block, cert)
        block_sync = (time.perf_counter() - started, time.process_time() - cpu)
        assert joined.tip == source.ledger.tip
        joined.close()

        started, cpu = time.perf_counter(), time.process_time()
        joined = Ledger.open(os.path.join(directory, "state-sync"), source.genesis)
        verified = verify(joined, snapshot.manifest, list(snapshot.chunks), block=blocks[h - 1][0],
                          next_block=blocks[h][0], next_certificate=blocks[h][1])
        install(joined, verified)
        joined.apply_block(Block.decode(blocks[h][0]), blocks[h][1])
        state_sync = (time.perf_counter() - started, time.process_time() - cpu)
        assert joined.tip == source.ledger.tip
        joined.close()
        source.close()
    size = sum(len(c) for c in snapshot.chunks)
    print(f"chain: {args.transfers} transfers in {last.height} blocks, {args.investors} investors")
    print(f"snapshot at {h}: {snapshot.manifest.entries} entries, {len(snapshot.chunks)} chunks, {size} bytes")
    print(f"block sync: {block_sync[0]:.2f} s wall, {block_sync[1]:.2f} s CPU")
    print(f"state sync: {state_sync[0]:.2f} s wall, {state_sync[1]:.2f} s CPU")


if __name__ == "__main__":
    main()
