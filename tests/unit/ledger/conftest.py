"""Fixtures for the ledger's unit tests (tests run with --import-mode=importlib: no shared modules).

`chain` (from tests/conftest.py) is a fresh ledger with an admin, a KYC provider "kyc" and a token
issuer "issuer". `market` adds three investors and a token ACME whose agent "agent" holds every
agent role. `snapshot` reads every sub-database byte for byte, to show a store is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.chain import Ledger
from ledger.store import DB_NAMES


def _snapshot(ledger: Ledger) -> dict[str, list[tuple[bytes, bytes]]]:
    with ledger.store.read() as txn:
        return {name: list(txn.cursor(db=ledger.store.dbs[name])) for name in DB_NAMES}


@pytest.fixture
def snapshot() -> Callable[[Ledger], dict[str, list[tuple[bytes, bytes]]]]:
    """`snapshot(ledger)`: every key and value of every sub-database, in key order."""
    return _snapshot


@pytest.fixture
def market(chain):
    """`chain` plus investors alice (US, accredited), bob (US), carol (DE, two wallets carol and
    carol-2) and a token ACME (no rules, not paused) with one agent "agent" holding every role."""
    chain.investor("alice", accredited=True)
    chain.investor("bob")
    chain.investor("carol", wallets=("carol", "carol-2"), country="DE")
    chain.token("ACME")
    return chain
