"""The fault campaign as tests: a short mixed-fault run and a short Byzantine run in `make test`;
longer and more runs behind environment variables (docs/FAULTS.md):

    SECLEDGER_CAMPAIGN_SEED=1234        replay one seed (the failing run prints it)
    SECLEDGER_CAMPAIGN_SECONDS=600      how long each run injects faults (default 20; Byzantine: half)
    SECLEDGER_CAMPAIGN_SEEDS=20         how many runs, with seeds SEED, SEED+1, ...
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

import pytest

from .campaign import (
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


def _seeds() -> list[int]:
    first = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1, 2**31))
    return [first + i for i in range(int(os.environ.get(SEEDS_VARIABLE) or 1))]


def _seconds(default: float) -> float:
    return float(os.environ.get(SECONDS_VARIABLE) or default)


def _run(tmp_path, seed: int, seconds: float, byzantine: tuple[str, ...], test: str) -> None:
    """One run; `seconds` is the SECLEDGER_CAMPAIGN_SECONDS value (a Byzantine run takes half)."""
    duration_s = seconds / 2 if byzantine else seconds
    # Print the seed first, so that even a hung run can be replayed.
    print(f"\n[campaign] seed {seed}, {duration_s:g}s of faults, byzantine={list(byzantine)}", file=sys.stderr, flush=True)
    config = CampaignConfig(seed=seed, duration_s=duration_s, directory=tmp_path / f"seed-{seed}",
                            byzantine=byzantine)
    campaign = Campaign(config)
    failure: CampaignFailure | None = None
    try:
        report = asyncio.run(campaign.run())
    except CampaignFailure as exc:
        failure = exc
    except BaseException:
        print(f"[campaign] seed {seed} broke the harness; replay: {replay_command(seed, seconds, test)}",
              file=sys.stderr, flush=True)
        raise
    if failure is not None:
        faults = "\n".join(f"  {f}" for f in campaign.report.faults)
        pytest.fail(f"{failure}\nfaults so far:\n{faults}\nnode logs: {config.directory / 'logs'}\n"
                    f"replay: {replay_command(seed, seconds, test)}", pytrace=False)
    print(f"[campaign] {report.summary()}", file=sys.stderr, flush=True)
    for fault in report.faults:
        print(f"[campaign]   {fault}", file=sys.stderr, flush=True)


def test_mixed_fault_campaign(tmp_path):
    """Kill -9, pause, cut links, wipe a store, kill the observer: safe, live, converged."""
    for seed in _seeds():
        _run(tmp_path, seed, _seconds(DEFAULT_SECONDS), (),
             "tests/e2e/test_campaign.py::test_mixed_fault_campaign")


def test_byzantine_campaign(tmp_path):
    """Validator-3 lies for the whole run, equivocating as proposer and, after its first restart,
    double voting (and it is also killed, paused, isolated): the honest three stay safe and live,
    and their evidence names the liar, for each way it lied, and nobody else."""
    for seed in _seeds():
        _run(tmp_path, seed, _seconds(DEFAULT_SECONDS), ("equivocate", "double_vote"),
             "tests/e2e/test_campaign.py::test_byzantine_campaign")
