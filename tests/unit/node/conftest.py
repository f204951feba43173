"""Fixtures of the node's unit tests."""

from __future__ import annotations

import pytest

from ledger.testing import LedgerHarness


@pytest.fixture
def chain(tmp_path):
    """A ledger with two KYC'd investors, alice and bob, and a token ACME of which alice holds 100."""
    harness = LedgerHarness(str(tmp_path / "store"))
    harness.standard_setup()
    harness.investor("alice")
    harness.investor("bob")
    harness.token("ACME", rules={"required_claims": ["kyc"]})
    assert harness.run(harness.signer("agent").issue("ACME", harness.address("alice"), 100)).ok
    yield harness
    harness.close()
