"""A ledger on a temporary store with named, deterministic keys: for tests and benchmarks.

Not used by the node. Keys come from the SHA-256 of a name, so a scenario reads as a story
("alice", "kyc-provider") and replays byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from nacl.signing import SigningKey

from .block import Block
from .chain import BlockResult, Ledger
from .client import Signer
from .genesis import Genesis, GenesisMember, GenesisValidator, Thresholds
from .reasons import Outcome

CHAIN_ID = "secledger-test"
GENESIS_TIME_MS = 1_700_000_000_000
#: A claim expiry far in the future (2100-01-01).
FAR_FUTURE_S = 4_102_444_800
#: `SECLEDGER_TEST_PROJECTION=lazy` makes every harness leave the read side unprojected (the
#: default projects it after each commit; a node does every few blocks): every query must then give the same
#: answer from the write side (docs/TESTING.md).
PROJECTION_ENVIRONMENT_VARIABLE = "SECLEDGER_TEST_PROJECTION"


def key_for(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"secledger-test-key:" + name.encode()).digest())


def address_of(name: str) -> bytes:
    return bytes(key_for(name).verify_key)


def test_genesis(chain_id: str = CHAIN_ID, admins: tuple[str, ...] = ("admin",)) -> Genesis:
    validator = GenesisValidator("v0", address_of("validator-0"), address_of("node-0"), 10)
    return Genesis(chain_id, GENESIS_TIME_MS, (validator,), (), tuple(address_of(a) for a in admins))


def governed_genesis(members: tuple[tuple[str, tuple[str, ...]], ...] = (("m0", ("m0",)),), *,
                     threshold: tuple[int, int] = (1, 1), thresholds: dict[str, tuple[int, int]] | None = None,
                     validators: tuple[tuple[str, int], ...] = (("v0", 10),), admins: tuple[str, ...] = ("admin",),
                     chain_id: str = CHAIN_ID) -> Genesis:
    """A genesis naming consortium members: (id, names of its keys) each, one threshold for every
    class unless `thresholds` gives some; validators (name, power) with keys named after them
    ("validator:<name>", "node:<name>")."""
    fractions = {c: (thresholds or {}).get(c, threshold) for c in ("validators", "members", "roles", "params")}
    return Genesis(
        chain_id, GENESIS_TIME_MS,
        tuple(GenesisValidator(name, address_of(f"validator:{name}"), address_of(f"node:{name}"), power)
              for name, power in validators),
        (), tuple(address_of(a) for a in admins),
        tuple(GenesisMember(member_id, f"Member {member_id}", tuple(address_of(k) for k in keys))
              for member_id, keys in members),
        Thresholds(**fractions),
    )


class LedgerHarness:
    """Drives a `Ledger` block by block, as a node would after consensus decided."""

    def __init__(self, path: str, *, genesis: Genesis | None = None, project: bool | None = None) -> None:
        """`project`: bring the read side to the tip after each commit (default,
        unless `SECLEDGER_TEST_PROJECTION=lazy`); False leaves it to the test (`ledger.project`)."""
        self.genesis = genesis or test_genesis()
        self.ledger = Ledger.open(path, self.genesis)
        if project is None:
            project = os.environ.get(PROJECTION_ENVIRONMENT_VARIABLE, "eager") != "lazy"
        self.project = project
        self.signers: dict[str, Signer] = {}
        self.time_ms = self.ledger.tip.time_ms

    def close(self) -> None:
        self.ledger.close()

    def signer(self, name: str) -> Signer:
        if name not in self.signers:
            key = key_for(name)
            self.signers[name] = Signer(key, self.genesis.chain_id, self.ledger.next_nonce(bytes(key.verify_key)))
        return self.signers[name]

    def address(self, name: str) -> bytes:
        return address_of(name)

    @property
    def now_s(self) -> int:
        return self.time_ms // 1000

    def block(self, txs: list[bytes], *, advance_ms: int = 1000) -> Block:
        self.time_ms += advance_ms
        return self.ledger.build_block(tuple(txs), time_ms=self.time_ms, proposer=address_of("validator-0"))

    def commit(self, *txs: bytes, advance_ms: int = 1000) -> BlockResult:
        block = self.block(list(txs), advance_ms=advance_ms)
        self.ledger.validate_block(block)
        result = self.ledger.apply_block(block, b"certificate:" + block.hash)
        if self.project:
            self.ledger.catch_up()
        return result

    def run(self, tx: bytes, *, advance_ms: int = 1000) -> Outcome:
        """Commit one transaction alone in a block; its outcome."""
        return self.commit(tx, advance_ms=advance_ms).receipts[0].outcome

    # --- common set-ups -----------------------------------------------------------------------

    def appoint(self, role: str, name: str) -> None:
        assert self.run(self.signer("admin").grant_role(role, address_of(name))).ok

    def investor(self, identity: str, *, wallets: tuple[str, ...] | None = None, country: str | None = "US",
                 accredited: bool = False, investor_type: str | None = None, kyc: bool = True,
                 issuer: str = "kyc") -> None:
        """Register an identity (wallets named after it by default) with the given valid claims."""
        s = self.signer(issuer)
        txs = [s.register_identity(identity, [address_of(w) for w in (wallets or (identity,))])]
        if kyc:
            txs.append(s.grant_claim(identity, "kyc", FAR_FUTURE_S))
        if accredited:
            txs.append(s.grant_claim(identity, "accredited", FAR_FUTURE_S))
        if country:
            txs.append(s.grant_claim(identity, "country", FAR_FUTURE_S, country))
        if investor_type:
            txs.append(s.grant_claim(identity, "investor_type", FAR_FUTURE_S, investor_type))
        result = self.commit(*txs)
        assert all(r.outcome.ok for r in result.receipts), [str(r.outcome) for r in result.receipts]

    def token(self, symbol: str, *, owner: str = "issuer", agent: str = "agent",
              rules: dict[str, Any] | None = None, paused: bool = False, decimals: int = 0) -> None:
        roles = ["force_transfer", "freeze", "pause", "recovery", "supply"]
        outcome = self.run(self.signer(owner).create_token(
            symbol, f"{symbol} shares", decimals=decimals, paused=paused, rules=rules or {},
            agents={address_of(agent): roles}))
        assert outcome.ok, str(outcome)

    def standard_setup(self) -> None:
        """An admin, a KYC provider "kyc" and a token issuer "issuer"."""
        result = self.commit(self.signer("admin").grant_role("claim_issuer", address_of("kyc")),
                             self.signer("admin").grant_role("token_issuer", address_of("issuer")))
        assert all(r.outcome.ok for r in result.receipts)
