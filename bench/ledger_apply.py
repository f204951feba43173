"""Benchmark (not a test): checked transfers applied per second by `Ledger.apply_block`.

Every transfer is applied the way a node applies a decided block it did not validate itself:
decode, canonical check, Ed25519 signature check, nonce, the token's rules (required claims on
both sides, country allow list, holder cap, balance cap, lock-up, volume window), then the block's
one LMDB write (the write side: state, the history execution reads, receipts, events, state root).
After each block (or every `--project-every` blocks) the projector brings the read side (tx index,
event indexes, wallet history) up to the tip, as a node does after each commit; its CPU time is
counted apart, and the two together are the whole cost.

Beside it, the same run measures its bound on this machine: Ed25519 verifies per second (pynacl,
the same payloads) and bare LMDB puts per second (one write transaction, keys and values of the
ledger's sizes), combined with the number of LMDB entries the block's write transaction makes per
transfer into the best any implementation of this design could do in one thread. The ratio says
how close we are.

    .venv/bin/python bench/ledger_apply.py [--transfers 40000] [--block 2000] [--investors 1000]
        [--project-every 1] [--marks]

`--marks` writes a line to stderr as the timed part begins and ends, so that a trace of the
store's writes (`strace -f -y -e trace=pwrite64,pwritev,write,fdatasync`) can be cut to it
(docs/BENCHMARKS.md, "Pass 6").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lmdb  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

from ledger.block import Block  # noqa: E402
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of  # noqa: E402
from ledger.tx import SIGN_DOMAIN, decode_transaction  # noqa: E402

#: The benchmark counts CPU time of this process: the figures hold on a machine shared with other
#: work (a loaded CI runner), and one process on one core is what is measured. Wall time is printed too.
CLOCK = time.process_time
#: LMDB puts one checked transfer costs in the block's write transaction: state 7 (nonce, two
#: balances, two holdings, supply, volume), history 2 (two identities), wallet changes 2 (appended),
#: results 2 (receipt and event, appended). The projector makes 9 more later (tx index, the event's
#: kind, token, two address and two identity index entries, two wallet history versions) and deletes
#: the two wallet changes.
PUTS_PER_TRANSFER: int = 13

RULES = {
    "required_claims": ["kyc"],
    "country_allow": ["DE", "FR", "US"],
    "check_sender": True,
    "holders_max": 100_000,
    "balance_max_per_identity": 10**15,
    "holding_period_s": 1,
    "volume_limit": {"window_s": 86_400, "amount_max": 10**12},
}


def setup(harness: LedgerHarness, investors: int) -> list[str]:
    harness.standard_setup()
    kyc, names = harness.signer("kyc"), [f"inv-{i:05d}" for i in range(investors)]
    countries = ("DE", "FR", "US")
    for start in range(0, investors, 500):
        part = names[start:start + 500]
        txs = [kyc.register_identity(n, [address_of(n)]) for n in part]
        txs += [kyc.grant_claim(n, "kyc", FAR_FUTURE_S) for n in part]
        txs += [kyc.grant_claim(n, "country", FAR_FUTURE_S, countries[i % 3]) for i, n in enumerate(part)]
        harness.commit(*txs)
    harness.token("BENCH", rules=RULES)
    agent = harness.signer("agent")
    for start in range(0, investors, 1000):
        harness.commit(*(agent.issue("BENCH", address_of(n), 10**9) for n in names[start:start + 1000]))
    harness.commit(advance_ms=10_000)  # past the lock-up
    return names


def signed_transfers(harness: LedgerHarness, names: list[str], count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sender, receiver = rng.sample(names, 2)
        out.append(harness.signer(sender).transfer("BENCH", address_of(receiver), rng.randint(1, 1000)))
    return out


def bench_apply(harness: LedgerHarness, txs: list[bytes], block_size: int,
                project_every: int, marks: bool) -> tuple[float, float, float, int]:
    """CPU seconds spent in apply_block (signatures checked there) and in the projector, wall
    seconds of both, and the bytes /proc/self/io counts as written meanwhile (-1 where it is
    missing). That count over-counts the store's real writes several times on some kernels
    (docs/BENCHMARKS.md): compare runs with it."""
    spent = projecting = wall = 0.0
    written = 0
    catch_up = getattr(harness.ledger, "catch_up", None)  # absent before the read side was split off
    if marks:
        print("bench: timed part begins", file=sys.stderr, flush=True)
    for number, start in enumerate(range(0, len(txs), block_size), 1):
        block: Block = harness.block(txs[start:start + block_size])
        began, began_wall, began_bytes = CLOCK(), time.perf_counter(), bytes_written()
        result = harness.ledger.apply_block(block, b"certificate:" + block.hash)
        applied = CLOCK()
        if catch_up is not None and (number % project_every == 0 or start + block_size >= len(txs)):
            if marks:
                print("bench: projection begins", file=sys.stderr, flush=True)
            catch_up()
            if marks:
                print("bench: projection ends", file=sys.stderr, flush=True)
        spent += applied - began
        projecting += CLOCK() - applied
        wall += time.perf_counter() - began_wall
        written = -1 if began_bytes < 0 else written + bytes_written() - began_bytes
        refused = [str(r.outcome) for r in result.receipts if not r.outcome.ok]
        assert not refused, refused[:3]
    if marks:
        print("bench: timed part ends", file=sys.stderr, flush=True)
    return spent, projecting, wall, written


def bytes_written() -> int:
    """Bytes this process has caused to be written to storage (Linux), or -1."""
    try:
        with open("/proc/self/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("write_bytes:"))
    except (OSError, StopIteration, ValueError):
        return -1


def bench_verify(txs: list[bytes], chain_id: str) -> float:
    decoded = [decode_transaction(raw, chain_id=chain_id, verify_signature=False) for raw in txs]
    jobs = [(VerifyKey(tx.signer), SIGN_DOMAIN + b"\x95" + tx.raw[1:-66], tx.signature) for tx in decoded]
    began = CLOCK()
    for key, payload, signature in jobs:
        key.verify(payload, signature)
    return len(jobs) / (CLOCK() - began)


def bench_puts(count: int, directory: str) -> float:
    rng = random.Random(1)
    items = sorted((rng.randbytes(45), rng.randbytes(24)) for _ in range(count))
    env = lmdb.open(os.path.join(directory, "puts"), map_size=1 << 32, sync=True, metasync=True)
    began = CLOCK()
    with env.begin(write=True) as txn:
        for key, value in items:
            txn.put(key, value)
    rate = count / (CLOCK() - began)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=40_000)
    parser.add_argument("--block", type=int, default=2_000, help="transfers per block")
    parser.add_argument("--investors", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--project-every", type=int, default=1, metavar="BLOCKS",
                        help="run the projector after every BLOCKS blocks (a node: 1)")
    parser.add_argument("--marks", action="store_true", help="mark the timed part on stderr (for strace)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        harness = LedgerHarness(os.path.join(tmp, "store"))
        names = setup(harness, args.investors)
        txs = signed_transfers(harness, names, args.transfers, args.seed)
        spent, projecting, wall, written = bench_apply(harness, txs, args.block, args.project_every, args.marks)
        applied = len(txs) / spent
        verifies = bench_verify(txs[:20_000], harness.genesis.chain_id)
        puts = bench_puts(200_000, tmp)
        bound = 1 / (1 / verifies + PUTS_PER_TRANSFER / puts)
        assert harness.ledger.verify_accumulator()
        harness.close()
    print(f"transfers: {len(txs)} in blocks of {args.block}, {args.investors} investors, one core, CPU time")
    print(f"apply_block, signatures checked: {applied:10,.0f} transfers/s")
    if projecting > 1e-3:  # the code before the split has no projector
        print(f"projector (read side):           {len(txs) / projecting:10,.0f} transfers/s")
    print(f"both:                            {len(txs) / (spent + projecting):10,.0f} transfers/s   "
          f"(wall {len(txs) / wall:,.0f}/s)")
    if written >= 0:
        blocks = -(-len(txs) // args.block)
        print(f"write_bytes (/proc/self/io):     {written / blocks / 1e6:10.2f} MB per block   "
              f"({written / len(txs) / 1e3:.1f} kB per transfer)")
    print(f"Ed25519 verifies (pynacl):       {verifies:10,.0f} /s            ratio {applied / verifies:.2f}")
    print(f"bare LMDB puts:                  {puts:10,.0f} /s            ({PUTS_PER_TRANSFER} per transfer)")
    print(f"bound, 1 verify + {PUTS_PER_TRANSFER} puts:        {bound:10,.0f} transfers/s  ratio {applied / bound:.2f}")


if __name__ == "__main__":
    main()
