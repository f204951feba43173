"""Benchmark tool (not a test): where each profiled node's CPU per committed transfer goes, by stage.

Reads what `bench/cluster.py --profile --profile-nodes ...` kept (the raw py-spy stacks of each node,
and `cluster.json` of the same session) and prints one table: each stage's share of the node's
samples, times the node's CPU per committed transfer in the session's unprofiled saturation run
(py-spy slows the profiled run, so its own CPU per transfer is a little higher), in microseconds,
and the total in Ed25519 verifications (the bound's own rate on this machine: one process per core).

    .venv/bin/python bench/cluster.py --no-write --saturation-only --profile \\
        --profile-nodes validator-0,validator-1,observer-0 --out /tmp/prof
    .venv/bin/python bench/profile_stages.py /tmp/prof

With `--profile-load RATE` the profiled run offers a fixed load and the session has no unprofiled
run at that load: `--profiled-run` takes each node's CPU per transfer from the profiled run itself
(a few per cent high: py-spy shares the cores).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import START_UP, categorize  # noqa: E402


def stage(category: str) -> str:
    """One of the table's rows for a `cluster.categorize` category (phase, then activity)."""
    phase, _, activity = category.partition(": ")
    if activity == "Ed25519 verify":
        return "Ed25519 verify (once per transaction, wherever it happens)"
    if activity == "tx decode + canonical check":
        return "decode + canonical check"
    if phase.startswith("client tx admission"):
        return "client admission: rules on the pending state, mempool"
    if phase.startswith(("gossiped tx admission", "tx admission, other", "proposal's txs")):
        return "gossip admission (nonce, mempool)"
    if phase.startswith("mempool rebuild"):
        return "mempool rebuild after a block (the rules again)"
    if phase.startswith("block apply"):
        return "block apply: rules and state" if activity == "rules and state" else \
            "block apply: write (LMDB, receipts, events, root), the rest"
    if phase.startswith("block validation"):
        return "block validation (nonces, header)"
    if phase.startswith("projection"):
        return "projection (tx index, event indexes, wallet history)"
    if phase.startswith("JSON-RPC"):
        return "JSON-RPC server (aiohttp, dispatch, JSON)"
    if phase.startswith(("consensus", "double-sign", "peer", "proposal", "commit bookkeeping")):
        return "consensus, double-sign guard, peer links, proposal"
    return "event loop, asyncio, metrics, other"


def shares(raw: Path) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    for line in gzip.decompress(raw.read_bytes()).decode().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if not any(START_UP.match(f) for f in frames):
            counts[stage(categorize(frames))] += int(count)
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the --out of bench/cluster.py --profile")
    parser.add_argument("--profiled-run", action="store_true",
                        help="CPU per transfer from the profiled run itself (for --profile-load)")
    args = parser.parse_args()
    report = json.loads((args.directory / "cluster.json").read_text())
    saturation = next(r for r in report["runs"] if r["mode"] == "saturation")
    verify_us = 1e6 * report["bound_workers"] / report["verify_per_s"]
    nodes = {}
    for raw in sorted(args.directory.glob("cluster-profile-*.txt.gz")):
        name = raw.name.removeprefix("cluster-profile-").removesuffix(".txt.gz")
        if args.profiled_run:
            cpu_us = report["profiles"][name]["cpu_us_per_tx"]
        else:
            cpu_us = saturation["cores_used"][name] * saturation["span_s"] / saturation["committed"] * 1e6
        nodes[name] = (cpu_us, shares(raw))
    if not nodes:
        print(f"error: no cluster-profile-*.txt.gz in {args.directory}", file=sys.stderr)
        return 2
    first = next(iter(nodes.values()))[1]
    rows = sorted({s for _, by_stage in nodes.values() for s in by_stage}, key=lambda s: -first.get(s, 0.0))
    profiled = next(iter(report["profiles"].values()), {})
    print(f"saturation {saturation['throughput']:.0f} tx/s; profiled run: {profiled.get('mode', 'saturation')} at "
          f"{profiled.get('throughput', 0):.0f} tx/s; one Ed25519 verification = {verify_us:.1f} us of a core")
    print("| stage | " + " | ".join(nodes) + " |")
    print("| --- |" + " ---: |" * len(nodes))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{100 * s.get(row, 0.0):.1f} % = {cpu * s.get(row, 0.0):.1f} us"
                                         for cpu, s in nodes.values()) + " |")
    print("| **total, CPU per committed transfer** | " + " | ".join(
        f"**{cpu:.0f} us = {cpu / verify_us:.2f} verifies**" for cpu, _ in nodes.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
