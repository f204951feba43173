"""A ledger with a security token (ACME), a payment token (USD) and investors, for corporate actions."""

from __future__ import annotations

import pytest

from ledger.testing import LedgerHarness


@pytest.fixture
def market(tmp_path):
    """ACME held by alice (100) and bob (50); the issuer's treasury holds 1,000,000 USD."""
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("treasury", wallets=("issuer",))
    for name in ("alice", "bob", "carol"):
        h.investor(name)
    h.token("ACME", rules={"required_claims": ["kyc"]})
    h.token("USD", rules={"required_claims": ["kyc"]}, decimals=2)
    agent = h.signer("agent")
    result = h.commit(agent.issue("ACME", h.address("alice"), 100), agent.issue("ACME", h.address("bob"), 50),
                      agent.issue("USD", h.address("issuer"), 1_000_000))
    assert all(r.outcome.ok for r in result.receipts)
    h.record_height = result.height
    yield h
    h.close()
