"""Fixtures shared by every level of tests."""

from __future__ import annotations

import pytest

from ledger.testing import LedgerHarness


@pytest.fixture
def chain(tmp_path):
    """A fresh ledger with an admin, a KYC provider ("kyc") and a token issuer ("issuer")."""
    harness = LedgerHarness(str(tmp_path / "store"))
    harness.standard_setup()
    yield harness
    harness.close()
