"""Command line for the simulator: replay one seed, or sweep a range of them.

    .venv/bin/python -m consensus.testing --seed 1234 --validators 7 --byzantine equivocator
    .venv/bin/python -m consensus.testing --seeds 0:5000
    .venv/bin/python -m consensus.testing --seed 7 --validators 4 --set loss_pct=30 --set slow_pct=25

Exit codes, as VOPR's: 0 all passed, 1 crash (an exception escaped: a bug), 2 correctness
(safety) violation, 3 liveness violation.
"""

from __future__ import annotations

import argparse
import sys
import time

from consensus.testing.sim import BYZANTINE_KINDS, InvariantViolation, run_seed

EXIT_CRASH = 1
EXIT_CORRECTNESS = 2
EXIT_LIVENESS = 3


def _byzantine(text: str) -> tuple[str, ...]:
    if text == "none":
        return ()
    kinds = tuple(text.split(","))
    for kind in kinds:
        if kind not in BYZANTINE_KINDS:
            raise argparse.ArgumentTypeError(f"unknown Byzantine kind {kind!r}; one of {BYZANTINE_KINDS}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consensus.testing", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", default="0:100", help="range start:stop of seeds to sweep")
    parser.add_argument("--validators", type=int, default=None, help="validator count (default: drawn)")
    parser.add_argument("--byzantine", type=_byzantine, default=None,
                        help="comma-separated Byzantine kinds, or 'none' (default: drawn)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=INT",
                        help="override one drawn setting, e.g. --set loss_pct=30 (repeatable)")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = int(value)
    if args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        start, _, stop = args.seeds.partition(":")
        seeds = range(int(start), int(stop))
    began = time.process_time()
    for seed in seeds:
        try:
            result = run_seed(seed, args.validators, args.byzantine, **overrides)
        except InvariantViolation as exc:
            print(exc, file=sys.stderr)
            if exc.kind == "crash":
                return EXIT_CRASH
            return EXIT_LIVENESS if exc.kind == "liveness" else EXIT_CORRECTNESS
        if len(seeds) == 1:
            cfg = result.config
            print(f"seed {seed}: n={cfg.validators} byzantine={list(cfg.byzantine)} observer={cfg.observer} "
                  f"loss={cfg.loss_pct}% dup={cfg.dup_pct}% partitions={cfg.partition_pct}% "
                  f"crashes={cfg.crash_pct}% -> {result.heights_decided} heights, max round "
                  f"{result.max_round}, {result.messages_delivered} deliveries, {result.evidence} evidence, "
                  f"ended at {result.end_ms}ms")
    print(f"{len(seeds)} seeds passed in {time.process_time() - began:.1f}s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
