"""A trading desk for settlement tests: a share token ACME and a tokenized deposit USD, each with its
own rules, and investors holding them.

`desk` holds: alice 1,000 ACME (two wallets: alice, alice-2), bob 500,000 USD (cents), carol 200 ACME
and 100,000 USD; dave is registered and holds nothing; "venue" is a registered wallet without the
venue_operator role (tests grant it when they need it).
"""

from __future__ import annotations

import pytest

from ledger import layout
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of

A = address_of


class Desk:
    """Helpers over the harness: create, act, read an instruction, balances and reservations."""

    def __init__(self, h: LedgerHarness) -> None:
        self.h = h

    def __getattr__(self, name):
        return getattr(self.h, name)

    def create(self, signer: str, legs, **terms):
        terms.setdefault("expires_at", FAR_FUTURE_S)
        legs = [(t, A(f), A(r), n) for t, f, r, n in legs]
        result = self.h.commit(self.h.signer(signer).create_instruction(legs, **terms))
        receipt = result.receipts[0]
        ids = [e.data["id"] for e in receipt.events if e.kind == "settlement.created"]
        return (ids[0] if ids else None), receipt.outcome

    def do(self, signer: str, verb: str, instruction_id: int, *, advance_ms: int = 1000):
        """(outcome, event kinds) of `settlement.<verb>` signed by `signer`, alone in a block."""
        method = {"affirm": "affirm_instruction", "withdraw": "withdraw_affirmation", "reject": "reject_instruction",
                  "execute": "execute_instruction", "expire": "expire_instruction"}[verb]
        receipt = self.h.commit(getattr(self.h.signer(signer), method)(instruction_id),
                                advance_ms=advance_ms).receipts[0]
        return str(receipt.outcome), [e.kind for e in receipt.events]

    def run(self, tx: bytes) -> str:
        return str(self.h.run(tx))

    def record(self, instruction_id: int):
        with self.h.ledger.store.read() as txn:
            return self.h.ledger.store.state_over(txn).get(layout.settle_instruction(instruction_id))

    def balance(self, token: str, wallet: str) -> int:
        with self.h.ledger.store.read() as txn:
            return self.h.ledger.store.state_over(txn).get(layout.balance(token, A(wallet)), (0, 0, False))[0]

    def reserved(self, token: str, wallet: str) -> int:
        with self.h.ledger.store.read() as txn:
            return self.h.ledger.store.state_over(txn).get(layout.reserved(token, A(wallet)), 0)


@pytest.fixture
def desk(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("alice", wallets=("alice", "alice-2"), accredited=True)
    h.investor("bob", accredited=True)
    h.investor("carol", country="DE")
    h.investor("dave")
    h.investor("venue-firm", wallets=("venue",))
    h.token("ACME", rules={"required_claims": ["kyc"]})
    h.token("USD", rules={"required_claims": ["kyc"]}, decimals=2)
    agent = h.signer("agent")
    result = h.commit(agent.issue("ACME", A("alice"), 1_000), agent.issue("USD", A("bob"), 500_000),
                      agent.issue("ACME", A("carol"), 200), agent.issue("USD", A("carol"), 100_000))
    assert all(r.outcome.ok for r in result.receipts)
    yield Desk(h)
    h.close()
