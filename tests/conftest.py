"""Fixtures shared by every level of tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from ledger.testing import LedgerHarness

# `make test` draws the same examples on every run (seeded from each test), so a red CI run
# replays exactly; SECLEDGER_HYPOTHESIS_EXPLORE=1 draws fresh ones, to look for new failures
# (with the *_EXAMPLES variables for longer runs). Either way a failure prints its reproduction blob.
settings.register_profile("replayable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("explore" if os.environ.get("SECLEDGER_HYPOTHESIS_EXPLORE") else "replayable")


@pytest.fixture
def chain(tmp_path):
    """A fresh ledger with an admin, a KYC provider ("kyc") and a token issuer ("issuer")."""
    harness = LedgerHarness(str(tmp_path / "store"))
    harness.standard_setup()
    yield harness
    harness.close()
