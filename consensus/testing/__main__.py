"""Command line for the simulator: replay one seed, or sweep a range of them.

    .venv/bin/python -m consensus.testing --seed 1234 --validators 7 --byzantine equivocator
    .venv/bin/python -m consensus.testing --seeds 0:5000
    .venv/bin/python -m consensus.testing --seeds 0:100000 --jobs 2    # over two processes
    .venv/bin/python -m consensus.testing --seed 7 --validators 4 --set loss_pct=30 --set slow_pct=25
    .venv/bin/python -m consensus.testing --seed 7 --set membership_steps=4 --set joiners=2

Exit codes, as VOPR's: 0 all passed, 1 crash (an exception escaped: a bug), 2 correctness
(safety) violation, 3 liveness violation.
"""

from __future__ import annotations

import argparse
import sys
import time

from consensus.testing.sim import BYZANTINE_KINDS, InvariantViolation, Simulation
from consensus.testing.sweep import print_progress, sweep

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


def _exit_code(exc: InvariantViolation) -> int:
    print(exc, file=sys.stderr)
    if exc.kind == "crash":
        return EXIT_CRASH
    return EXIT_LIVENESS if exc.kind == "liveness" else EXIT_CORRECTNESS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consensus.testing", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", default="0:100", help="range start:stop of seeds to sweep")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes to sweep with (each seed still runs alone and the same)")
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
        sim = Simulation(args.seed, args.validators, args.byzantine, **overrides)  # type: ignore[arg-type]
        try:
            result = sim.run()
        except InvariantViolation as exc:
            return _exit_code(exc)
        cfg = result.config
        changes = "; ".join(f"h{h}: {'+'.join(kinds)}" for h, kinds in result.membership) or "none"
        print(f"seed {args.seed}: n={cfg.validators} byzantine={list(cfg.byzantine)} observer={cfg.observer} "
              f"joiners={cfg.joiners} loss={cfg.loss_pct}% dup={cfg.dup_pct}% partitions={cfg.partition_pct}% "
              f"crashes={cfg.crash_pct}% -> {result.heights_decided} heights, max round "
              f"{result.max_round}, {result.messages_delivered} deliveries, {result.evidence} evidence, "
              f"set changes decided {changes}, ended at {result.end_ms}ms")
        return 0
    start, _, stop = args.seeds.partition(":")
    seeds = range(int(start), int(stop))
    began = time.monotonic()
    passed, failure = sweep(seeds, args.jobs, args.validators, args.byzantine,
                            progress=print_progress(10_000) if len(seeds) >= 20_000 else None, **overrides)
    if failure is not None:
        return _exit_code(failure.error())
    elapsed = time.monotonic() - began
    print(f"{passed} seeds passed in {elapsed:.1f}s ({passed / max(elapsed, 1e-9):.1f} seeds/s, "
          f"{args.jobs} process{'es' if args.jobs > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
