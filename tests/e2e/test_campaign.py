"""The fault campaign as tests: a short mixed-fault run under a modest open-loop load and a short
Byzantine run in `make test`; longer, more and more loaded runs behind environment variables
(docs/FAULTS.md):

    SECLEDGER_CAMPAIGN_SEED=1234        replay one seed (the failing run prints it)
    SECLEDGER_CAMPAIGN_SECONDS=600      how long each run injects faults (default 20; Byzantine: half)
    SECLEDGER_CAMPAIGN_SEEDS=20         how many runs, with seeds SEED, SEED+1, ...
    SECLEDGER_CAMPAIGN_RATE=700         open-loop load of both runs, tx/s (default: 50 mixed, 0 Byzantine)
    SECLEDGER_CAMPAIGN_FAULTS=100       at least this many faults per run (default: one of every kind)
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

import pytest

from .campaign import (
    FAULTS_VARIABLE,
    RATE_VARIABLE,
    SECONDS_VARIABLE,
    SEED_VARIABLE,
    SEEDS_VARIABLE,
    Campaign,
    CampaignConfig,
    CampaignFailure,
    replay_command,
)

#: Fault-injection time of the default (CI) runs. A run always injects every kind of fault at least
#: once, whatever this says, and spends ~10 s more starting, setting up and checking.
DEFAULT_SECONDS: float = 20.0
#: Open-loop load of the default mixed run, tx/s: modest, so that the run stays well under a minute
#: and robust on a loaded 2-core CI machine (besides the waiting clients' trickle of ~10 tx/s).
DEFAULT_RATE_MIXED: float = 50.0


def _seeds() -> list[int]:
    first = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1, 2**31))
    return [first + i for i in range(int(os.environ.get(SEEDS_VARIABLE) or 1))]


def _seconds(default: float) -> float:
    return float(os.environ.get(SECONDS_VARIABLE) or default)


def _rate(default: float) -> float:
    return float(os.environ.get(RATE_VARIABLE) or default)


def _faults_min() -> int:
    return int(os.environ.get(FAULTS_VARIABLE) or 0)


def _run(tmp_path, seed: int, seconds: float, byzantine: tuple[str, ...], test: str, rate: float = 0.0) -> None:
    """One run; `seconds` is the SECLEDGER_CAMPAIGN_SECONDS value (a Byzantine run takes half)."""
    duration_s = seconds / 2 if byzantine else seconds
    faults_min = _faults_min()
    replay = replay_command(seed, seconds, test, rate=rate if RATE_VARIABLE in os.environ else None,
                            faults_min=faults_min)
    # Print the seed first, so that even a hung run can be replayed.
    print(f"\n[campaign] seed {seed}, {duration_s:g}s of faults (at least {faults_min or 'one of each kind'}), "
          f"load {rate:g} tx/s, byzantine={list(byzantine)}", file=sys.stderr, flush=True)
    config = CampaignConfig(seed=seed, duration_s=duration_s, directory=tmp_path / f"seed-{seed}",
                            byzantine=byzantine, rate=rate, faults_min=faults_min)
    campaign = Campaign(config)
    failure: CampaignFailure | None = None
    try:
        report = asyncio.run(campaign.run())
    except CampaignFailure as exc:
        failure = exc
    except BaseException:
        print(f"[campaign] seed {seed} broke the harness; replay: {replay}", file=sys.stderr, flush=True)
        raise
    if failure is not None:
        faults = "\n".join(f"  {f}" for f in campaign.report.faults)
        pytest.fail(f"{failure}\nfaults so far:\n{faults}\nnode logs: {config.directory / 'logs'}\n"
                    f"replay: {replay}", pytrace=False)
    for line in report.summary().splitlines():
        print(f"[campaign] {line}", file=sys.stderr, flush=True)
    print("[campaign]   injected  fault          target                       hold   heal-to-progress",
          file=sys.stderr, flush=True)
    for fault in report.faults:
        print(f"[campaign]   {fault}", file=sys.stderr, flush=True)
    for kind, times in sorted(report.heal_to_progress().items()):
        times = sorted(times)
        print(f"[campaign]   heal-to-progress of {kind}: median {times[len(times) // 2]:.1f}s, worst {times[-1]:.1f}s "
              f"({len(times)} faults)", file=sys.stderr, flush=True)


def test_mixed_fault_campaign(tmp_path):
    """Kill -9, pause, cut links, wipe a store, kill the observer, change the validator set, all
    under an open-loop load: safe, live, converged, and most of the load committed."""
    for seed in _seeds():
        _run(tmp_path, seed, _seconds(DEFAULT_SECONDS), (),
             "tests/e2e/test_campaign.py::test_mixed_fault_campaign", rate=_rate(DEFAULT_RATE_MIXED))


def test_byzantine_campaign(tmp_path):
    """Validator-3 lies for the whole run, equivocating as proposer and, after its first restart,
    double voting (and it is also killed, paused, isolated): the honest three stay safe and live,
    and their evidence names the liar, for each way it lied, and nobody else."""
    for seed in _seeds():
        _run(tmp_path, seed, _seconds(DEFAULT_SECONDS), ("equivocate", "double_vote"),
             "tests/e2e/test_campaign.py::test_byzantine_campaign", rate=_rate(0.0))
