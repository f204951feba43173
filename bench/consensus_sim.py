"""Benchmark (not a test): the consensus core in the simulator, without faults and with f faults.

Reports decided heights per second of CPU and consensus messages (proposals and votes) delivered
per height, for n = 4, 7, 10 and 13 validators, and writes them to the "## Consensus (simulated)"
section of docs/BENCHMARKS.md (other sections of that file are left as they are).

    .venv/bin/python bench/consensus_sim.py            # and update docs/BENCHMARKS.md
    .venv/bin/python bench/consensus_sim.py --no-write # print only
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consensus.testing import Simulation  # noqa: E402

SIZES = (4, 7, 10, 13)
SEEDS = 3
#: Simulated milliseconds of the run before the (no-op) heal: long enough for many heights.
RUN_MS = 10_000
CALM = dict(loss_pct=0, dup_pct=0, partition_pct=0, crash_pct=0, crash_mid_pct=0, slow_pct=0,
            observer=False, delay_min_ms=1, delay_max_ms=20, healed_delay_max_ms=20, fault_ms=RUN_MS,
            membership_steps=0, joiners=0)  # a fixed set, as in the earlier figures
SECTION = "## Consensus (simulated)"
COMMAND = ".venv/bin/python bench/consensus_sim.py"


def scenarios(n: int) -> list[tuple[str, tuple[str, ...]]]:
    f = (n - 1) // 3
    mixed = tuple(("equivocator", "double-voter", "garbage")[i % 3] for i in range(f))
    return [("no faults", ()), (f"f={f} silent", ("silent",) * f), (f"f={f} Byzantine", mixed)]


def measure(n: int, byzantine: tuple[str, ...]) -> tuple[float, float, float, int]:
    heights = messages = protocol = 0
    cpu = 0.0
    for seed in range(SEEDS):
        sim = Simulation(seed, n, byzantine, **CALM)
        began = time.process_time()
        result = sim.run()
        cpu += time.process_time() - began
        heights += result.heights_decided
        messages += result.consensus_delivered
        protocol += result.protocol_sent
    return heights / cpu, protocol / heights, messages / heights, heights // SEEDS


def table() -> str:
    lines = [
        "| validators | faults | decided heights per CPU second | messages per height (protocol) "
        "| messages per height (delivered, with gossip repair) | heights per run |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for n in SIZES:
        for label, byzantine in scenarios(n):
            rate, protocol, delivered, heights = measure(n, byzantine)
            lines.append(f"| {n} | {label} | {rate:,.0f} | {protocol:,.0f} | {delivered:,.0f} | {heights} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def section(body: str) -> str:
    return f"""{SECTION}

Command: `{COMMAND}` (Python {platform.python_version()}, {platform.machine()}, one core).

The whole network (n cores, the simulated network and the checkers) runs in one process, so
"per CPU second" is the cost of every node together: one decided height costs n cores' work.
Each row is {SEEDS} seeds of {RUN_MS // 1000} simulated seconds with no loss, delays of 1-20 ms and
the simulator's short timeouts (propose 200 ms, prevote and precommit 100 ms, +50 ms per round).
"Protocol" messages are the proposals and votes the cores broadcast, once per peer (about
(n - 1)(2n + 1) for a height decided in its first round, plus proof-of-lock prevotes on
re-proposals); "delivered" adds what the simulated gossip re-sends to peers that lack it, and
excludes gossip status and block-sync traffic (and anything sent to a silent validator). Silent validators never send; Byzantine ones are a
mix of an equivocating proposer, a double voter and a garbage voter. Rows with silent validators
decide fewer heights per simulated second (their rounds end by timeout) but each height costs
less CPU, since fewer messages are signed, sent and checked. Ed25519 signing and checking
(libsodium through PyNaCl) dominate; verification is memoised per (key, bytes, signature), which
helps the simulation more than a real node, where every message is checked once anyway.

{body}
"""


def write(text: str) -> Path:
    path = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = text.rstrip("\n") + "\n\n"
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    new = new.rstrip("\n") + "\n"
    path.write_text(new)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs alone")
    args = parser.parse_args()
    text = section(table())
    if not args.no_write:
        print(f"wrote {write(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
