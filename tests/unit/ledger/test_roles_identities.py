"""Chain-wide roles, identities, claims and token administration: who may do what, and the exact
code when someone else tries. A refused transaction consumes its nonce and changes nothing else."""

from __future__ import annotations

import pytest

from ledger import layout, queries
from ledger.testing import FAR_FUTURE_S, address_of


def _state(ledger) -> dict[bytes, bytes]:
    with ledger.store.read() as txn:
        return dict(txn.cursor(db=ledger.store.dbs["state"]))


# --- roles ---------------------------------------------------------------------------------------------


def test_admin_grants_and_revokes_roles(chain):
    admin = chain.signer("admin")
    assert str(chain.run(admin.grant_role("admin", address_of("admin-2")))) == "0x51 success"
    assert sorted(queries.accounts_with_role(chain.ledger, "admin")) == sorted(
        [address_of("admin"), address_of("admin-2")])
    assert str(chain.run(admin.revoke_role("admin", address_of("admin-2")))) == "0x51 success"
    assert queries.accounts_with_role(chain.ledger, "admin") == [address_of("admin")]


@pytest.mark.parametrize("who", ["kyc", "issuer", "nobody"])
@pytest.mark.parametrize("kind", ["grant", "revoke"])
def test_only_an_admin_may_grant_or_revoke_roles(chain, who, kind):
    signer = chain.signer(who)
    tx = (signer.grant_role("token_issuer", address_of(who)) if kind == "grant"
          else signer.revoke_role("claim_issuer", address_of("kyc")))
    assert str(chain.run(tx)) == "0x58 not_authorized:admin"


def test_role_already_held_and_not_held(chain):
    admin = chain.signer("admin")
    assert str(chain.run(admin.grant_role("claim_issuer", address_of("kyc")))) == "0x50 role_already_held"
    assert str(chain.run(admin.revoke_role("token_issuer", address_of("kyc")))) == "0x50 role_not_held"


def test_the_last_admin_cannot_be_removed(chain):
    admin = chain.signer("admin")
    assert str(chain.run(admin.revoke_role("admin", address_of("admin")))) == "0x50 last_admin"
    assert chain.run(admin.grant_role("admin", address_of("admin-2"))).ok
    assert chain.run(admin.revoke_role("admin", address_of("admin"))).ok  # may step down now
    assert str(chain.run(admin.grant_role("admin", address_of("x")))) == "0x58 not_authorized:admin"
    second = chain.signer("admin-2")
    assert str(chain.run(second.revoke_role("admin", address_of("admin-2")))) == "0x50 last_admin"


def test_a_refused_transaction_consumes_its_nonce_and_changes_nothing_else(chain):
    before = _state(chain.ledger)
    result = chain.commit(chain.signer("nobody").grant_role("admin", address_of("nobody")))
    receipt = result.receipts[0]
    assert str(receipt.outcome) == "0x58 not_authorized:admin"
    assert [e.kind for e in receipt.events] == ["tx.rejected"]
    assert receipt.events[0].data == {"kind": "role.grant", "code": 0x58, "reason": "not_authorized:admin"}
    after = _state(chain.ledger)
    nonce_key = layout.nonce(address_of("nobody"))
    assert nonce_key not in before and after.pop(nonce_key) is not None
    assert after == before
    assert chain.ledger.next_nonce(address_of("nobody")) == 1
    assert queries.transaction(chain.ledger, receipt.tx_hash)["status"] == "rejected"


# --- identities ------------------------------------------------------------------------------------------


def test_claim_issuer_registers_identities_with_wallets(chain):
    assert chain.run(chain.signer("kyc").register_identity("alice", [address_of("a1"), address_of("a2")])).ok
    assert queries.wallet_identity(chain.ledger, address_of("a1")) == "alice"
    assert queries.identity(chain.ledger, "alice")["wallets"] == sorted([address_of("a1"), address_of("a2")])
    assert chain.run(chain.signer("kyc").add_wallet("alice", address_of("a3"))).ok
    assert queries.wallet_identity(chain.ledger, address_of("a3")) == "alice"
    assert len(queries.identity(chain.ledger, "alice")["wallets"]) == 3


@pytest.mark.parametrize("who", ["admin", "issuer", "alice"])
def test_only_a_claim_issuer_registers_identities_and_grants_claims(chain, who):
    chain.investor("bob")
    s = chain.signer(who)
    for tx in (s.register_identity("alice", [address_of("alice")]), s.add_wallet("bob", address_of("b2")),
               s.grant_claim("bob", "accredited", FAR_FUTURE_S), s.revoke_claim("bob", "kyc")):
        assert str(chain.run(tx)) == "0x58 not_authorized:claim_issuer"


def test_identity_and_wallet_uniqueness(chain):
    kyc = chain.signer("kyc")
    chain.investor("alice")
    assert str(chain.run(kyc.register_identity("alice", [address_of("x")]))) == "0x50 identity_exists"
    assert str(chain.run(kyc.register_identity("bob", [address_of("alice")]))) == "0x50 wallet_already_registered"
    assert str(chain.run(kyc.add_wallet("alice", address_of("alice")))) == "0x50 wallet_already_registered"
    assert str(chain.run(kyc.add_wallet("nobody", address_of("x")))) == "0x50 unknown_identity"


# --- claims ------------------------------------------------------------------------------------------------


def test_claims_grant_renew_revoke(chain):
    kyc = chain.signer("kyc")
    chain.investor("alice")
    assert str(chain.run(kyc.grant_claim("ghost", "kyc", FAR_FUTURE_S))) == "0x50 unknown_identity"
    assert str(chain.run(kyc.grant_claim("alice", "kyc", chain.now_s + 1))) == "0x50 claim_already_expired"
    assert chain.run(kyc.grant_claim("alice", "country", FAR_FUTURE_S, "FR")).ok  # renewal replaces
    claims = {c["topic"]: c for c in queries.identity(chain.ledger, "alice")["claims"]}
    assert claims["country"]["value"] == "FR" and claims["country"]["valid"]
    assert chain.run(kyc.revoke_claim("alice", "country")).ok
    assert str(chain.run(kyc.revoke_claim("alice", "country"))) == "0x50 unknown_claim"


def test_only_the_granting_claim_issuer_revokes_a_claim(chain):
    chain.appoint("claim_issuer", "kyc-2")
    chain.investor("alice")
    assert str(chain.run(chain.signer("kyc-2").revoke_claim("alice", "kyc"))) == \
        "0x58 not_authorized:claim_issuer_of_claim"


def test_claims_of_a_removed_claim_issuer_no_longer_count(chain):
    chain.investor("alice")
    assert all(c["valid"] for c in queries.identity(chain.ledger, "alice")["claims"])
    assert chain.run(chain.signer("admin").revoke_role("claim_issuer", address_of("kyc"))).ok
    assert not any(c["valid"] for c in queries.identity(chain.ledger, "alice")["claims"])


def test_expired_claims_are_reported_invalid(chain):
    kyc = chain.signer("kyc")
    chain.investor("alice", kyc=False)
    assert chain.run(kyc.grant_claim("alice", "kyc", chain.now_s + 5)).ok
    assert {c["topic"]: c["valid"] for c in queries.identity(chain.ledger, "alice")["claims"]}["kyc"]
    chain.commit(advance_ms=5000)
    assert not {c["topic"]: c["valid"] for c in queries.identity(chain.ledger, "alice")["claims"]}["kyc"]


# --- token administration ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "kyc", "nobody"])
def test_only_a_token_issuer_creates_tokens(chain, who):
    assert str(chain.run(chain.signer(who).create_token("ACME", "Acme"))) == "0x58 not_authorized:token_issuer"


def test_token_creation(chain):
    chain.token("ACME", rules={"holders_max": 5}, decimals=6)
    info = queries.token_info(chain.ledger, "ACME")
    assert info["owner"] == address_of("issuer") and info["decimals"] == 6 and not info["paused"]
    assert info["rules"] == {"holders_max": 5} and info["total_supply"] == 0 and info["holder_count"] == 0
    assert info["agents"] == [{"address": address_of("agent"),
                               "roles": ["force_transfer", "freeze", "pause", "recovery", "supply"]}]
    assert str(chain.run(chain.signer("issuer").create_token("ACME", "again"))) == "0x50 token_exists"


def test_token_starts_paused_by_explicit_choice(chain):
    chain.token("PAUSED", paused=True)
    chain.token("OPEN", paused=False)
    assert queries.token_info(chain.ledger, "PAUSED")["paused"]
    assert not queries.token_info(chain.ledger, "OPEN")["paused"]


@pytest.mark.parametrize("who", ["agent", "admin", "kyc"])
def test_only_the_owner_sets_agents_and_rules(chain, who):
    chain.token("ACME")
    s = chain.signer(who)
    assert str(chain.run(s.set_agent("ACME", address_of(who), ["supply"]))) == "0x58 not_authorized:owner"
    assert str(chain.run(s.set_rules("ACME", {"holders_max": 1}))) == "0x58 not_authorized:owner"


def test_owner_sets_and_removes_agents_and_rules(chain):
    chain.token("ACME")
    owner = chain.signer("issuer")
    assert chain.run(owner.set_agent("ACME", address_of("pauser"), ["pause"])).ok
    assert chain.run(owner.set_agent("ACME", address_of("agent"), [])).ok
    assert queries.token_info(chain.ledger, "ACME")["agents"] == [{"address": address_of("pauser"),
                                                                   "roles": ["pause"]}]
    assert chain.run(owner.set_rules("ACME", {"supply_cap": 10})).ok
    assert queries.token_info(chain.ledger, "ACME")["rules"] == {"supply_cap": 10}
    assert str(chain.run(owner.set_rules("NOPE", {}))) == "0x50 unknown_token"
    assert str(chain.run(owner.set_agent("NOPE", address_of("x"), ["pause"]))) == "0x50 unknown_token"


def test_the_owner_is_not_an_agent_unless_appointed(chain):
    chain.investor("alice")
    chain.token("ACME")
    owner = chain.signer("issuer")
    assert str(chain.run(owner.issue("ACME", address_of("alice"), 1))) == "0x58 not_authorized:agent.supply"
    assert chain.run(owner.set_agent("ACME", address_of("issuer"), ["supply"])).ok
    assert chain.run(owner.issue("ACME", address_of("alice"), 1)).ok
