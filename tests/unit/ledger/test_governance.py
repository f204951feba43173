"""Consortium governance: members, proposals, thresholds, atomic execution, the validator set per
height and the one-third rule, the admin decision (docs/GOVERNANCE.md)."""

from __future__ import annotations

import pytest

from ledger import governance, layout, queries
from ledger.client import Action
from ledger.errors import IntegerOutOfBounds, InvalidBody, InvalidGenesis, NotFound
from ledger.genesis import Genesis
from ledger.kinds import PARAM_BOUNDS, check_body
from ledger.state import State
from ledger.testing import LedgerHarness, address_of, governed_genesis
from ledger.testing import test_genesis as plain_genesis

A = address_of


@pytest.fixture
def make(tmp_path):
    """`make(members=..., threshold=..., validators=...)`: a harness on a governed genesis."""
    harnesses: list[LedgerHarness] = []

    def build(**kwargs) -> LedgerHarness:
        harness = LedgerHarness(str(tmp_path / f"store-{len(harnesses)}"), genesis=governed_genesis(**kwargs))
        harnesses.append(harness)
        return harness

    yield build
    for harness in harnesses:
        harness.close()


THREE = (("m0", ("m0",)), ("m1", ("m1",)), ("m2", ("m2",)))
FOUR_VALIDATORS = (("v0", 10), ("v1", 10), ("v2", 10), ("v3", 10))


def propose(h: LedgerHarness, who: str, *actions, expires_in: int = 100):
    """(outcome, proposal id or None, the receipt) of a proposal committed alone in a block."""
    height = h.ledger.tip.height + 1
    receipt = h.commit(h.signer(who).propose(list(actions), expires_at_height=height + expires_in)).receipts[0]
    ids = [e.data["proposal"] for e in receipt.events if e.kind == "gov.proposed"]
    return receipt.outcome, (ids[0] if ids else None), receipt


def show(h: LedgerHarness, proposal_id: int) -> dict:
    return queries.gov_proposal(h.ledger, proposal_id)


def kinds(receipt) -> list[str]:
    return [e.kind for e in receipt.events]


def keys_at(h: LedgerHarness, height: int) -> list[bytes]:
    return [v["validator_key"] for v in queries.validators_at(h.ledger, height)]


# --- genesis -------------------------------------------------------------------------------------------


def test_genesis_writes_the_validator_set_the_parameters_and_the_members(make):
    h = make(members=THREE, threshold=(2, 3), validators=FOUR_VALIDATORS)
    expected = sorted(A(f"validator:v{i}") for i in range(4))
    assert keys_at(h, 1) == expected and keys_at(h, h.ledger.tip.height + 2) == expected
    first = queries.validators_at(h.ledger, 1)[0]
    assert set(first) == {"validator_key", "node_key", "power", "address", "name"} and first["address"] == ""
    assert queries.chain_params(h.ledger) == governance.PARAM_DEFAULTS
    members = queries.gov_members(h.ledger)
    assert [m["id"] for m in members["members"]] == ["m0", "m1", "m2"]
    assert members["members"][0]["keys"] == [A("m0")]
    assert members["thresholds"] == {c: [2, 3] for c in ("members", "params", "roles", "validators")}


def test_a_genesis_without_members_keeps_its_hash_and_writes_the_set(chain):
    # the hash plain_genesis() had before governance existed: existing stores and fixtures keep it
    assert plain_genesis().hash.hex() == "556dc2f97914165129f73cd5865bf1eb733497b950228aeb75c40e727543d7bf"
    assert "members" not in plain_genesis().to_dict() and "thresholds" not in plain_genesis().to_dict()
    assert keys_at(chain, 1) == [A("validator-0")]
    assert queries.gov_members(chain.ledger) == {"members": [], "thresholds": None}


def test_parameter_defaults_and_bounds_follow_the_node_config_and_the_block_limits():
    from ledger.block import BLOCK_BYTES_MAX, BLOCK_TXS_MAX
    from ledger.tx import TX_BYTES_MAX
    from node.setup.config import ConsensusSection

    defaults = ConsensusSection()
    assert governance.PARAM_DEFAULTS == {name: getattr(defaults, name) for name in PARAM_BOUNDS}
    assert PARAM_BOUNDS["block_bytes_max"][0] == TX_BYTES_MAX
    assert PARAM_BOUNDS["block_bytes_max"][1] < BLOCK_BYTES_MAX and PARAM_BOUNDS["block_txs_max"][1] == BLOCK_TXS_MAX
    for name, (lo, hi) in PARAM_BOUNDS.items():
        assert lo <= governance.PARAM_DEFAULTS[name] <= hi


def _genesis_dict(**changes) -> dict:
    plain = governed_genesis(members=THREE, threshold=(2, 3)).to_dict()
    plain.update(changes)
    return plain


@pytest.mark.parametrize("change, message", [
    ({"members": []}, "members: at least one member"),
    ({"thresholds": None}, "thresholds: expected a table"),
    ({"members": [{"id": "bad id", "name": "x", "keys": ["11" * 32]}]}, "members[0].id"),
    ({"members": [{"id": "a", "name": "", "keys": ["11" * 32]}]}, "members[0].name"),
    ({"members": [{"id": "a", "name": "A", "keys": []}]}, "members[0].keys: expected a list of 1 to 8"),
    ({"members": [{"id": "a", "name": "A", "keys": ["zz"]}]}, "members[0].keys[0]"),
    ({"members": [{"id": "a", "name": "A", "keys": ["11" * 32, "11" * 32]}]}, "members[0].keys: the same key"),
    ({"members": [{"id": "a", "name": "A", "keys": ["11" * 32], "weight": 2}]}, "unknown key 'weight'"),
    ({"members": [{"id": "a", "name": "A", "keys": ["11" * 32]}, {"id": "a", "name": "B", "keys": ["22" * 32]}]},
     "members[1].id: 'a' is already the id of members[0]"),
    ({"members": [{"id": "a", "name": "A", "keys": ["11" * 32]}, {"id": "b", "name": "B", "keys": ["11" * 32]}]},
     "is already a key of members[0]"),
    ({"thresholds": {"validators": [2, 3], "members": [2, 3], "roles": [2, 3]}}, "thresholds.params: missing"),
    ({"thresholds": {"validators": [2, 3], "members": [2, 3], "roles": [2, 3], "params": [2, 3], "x": [1, 1]}},
     "unknown key 'x'"),
    ({"thresholds": {"validators": [0, 3], "members": [2, 3], "roles": [2, 3], "params": [2, 3]}},
     "thresholds.validators: expected 1 <= numerator <= denominator <= 1000"),
    ({"thresholds": {"validators": [4, 3], "members": [2, 3], "roles": [2, 3], "params": [2, 3]}},
     "thresholds.validators"),
    ({"thresholds": {"validators": [2, 1001], "members": [2, 3], "roles": [2, 3], "params": [2, 3]}},
     "thresholds.validators"),
    ({"thresholds": {"validators": [True, 3], "members": [2, 3], "roles": [2, 3], "params": [2, 3]}},
     "thresholds.validators: expected [numerator, denominator]"),
    ({"thresholds": {"validators": [2], "members": [2, 3], "roles": [2, 3], "params": [2, 3]}},
     "thresholds.validators: expected [numerator, denominator]"),
])
def test_bad_members_and_thresholds_are_named(change, message):
    with pytest.raises(InvalidGenesis, match=message.replace("[", r"\[").replace("]", r"\]")):
        Genesis.from_dict(_genesis_dict(**change))


def test_members_and_thresholds_come_together_and_round_trip():
    plain = _genesis_dict()
    del plain["thresholds"]
    with pytest.raises(InvalidGenesis, match="thresholds: required when members is given"):
        Genesis.from_dict(plain)
    plain = _genesis_dict()
    del plain["members"]
    with pytest.raises(InvalidGenesis, match="members: required when thresholds is given"):
        Genesis.from_dict(plain)
    genesis = Genesis.from_dict(_genesis_dict())
    assert genesis == governed_genesis(members=THREE, threshold=(2, 3))
    assert genesis.hash != plain_genesis().hash
    # with members, administrators are optional (they have no power over chain roles)
    assert Genesis.from_dict(_genesis_dict(admins=[])).admins == ()
    with pytest.raises(InvalidGenesis, match="admins: at least one administrator"):
        Genesis.from_dict({**plain_genesis().to_dict(), "admins": []})


# --- proposals: lifecycle and thresholds -------------------------------------------------------------


def test_a_one_of_one_proposal_executes_in_the_block_it_is_proposed(make):
    h = make()
    outcome, pid, receipt = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    assert outcome.ok and pid == 1
    assert kinds(receipt) == ["gov.proposed", "role.granted", "gov.executed"]
    assert receipt.events[1].data == {"role": "claim_issuer", "account": A("kyc"), "proposal": 1}
    view = show(h, 1)
    assert view["status"] == "executed" and view["closed_height"] == h.ledger.tip.height
    assert view["approvals"] == 1 and view["members"] == 1 and view["threshold"] == [1, 1]
    assert queries.accounts_with_role(h.ledger, "claim_issuer") == [A("kyc")]
    assert propose(h, "m0", Action.grant_role("token_issuer", A("issuer")))[1] == 2  # sequential ids


def test_one_vote_per_member_not_per_key(make):
    h = make(members=(("m0", ("m0",)), ("m1", ("m1", "m1-backup")), ("m2", ("m2",))), threshold=(1, 1))
    _, pid, _ = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    assert h.run(h.signer("m1").approve(pid)).ok
    assert str(h.run(h.signer("m1-backup").approve(pid))) == "0x50 already_voted"
    assert str(h.run(h.signer("m0").approve(pid))) == "0x50 already_voted"  # the proposal is m0's approval
    view = show(h, pid)
    assert view["approvals"] == 2 and view["status"] == "open"
    assert [(v["member"], v["vote"]) for v in view["votes"]] == [("m0", "approve"), ("m1", "approve")]


def test_a_member_may_change_its_vote_until_execution(make):
    h = make(members=THREE, threshold=(2, 3))
    _, pid, _ = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    receipt = h.commit(h.signer("m1").reject(pid)).receipts[0]
    assert receipt.events[0].data["changed"] is False and show(h, pid)["rejections"] == 1
    receipt = h.commit(h.signer("m1").approve(pid)).receipts[0]  # changed its mind: threshold reached
    assert receipt.events[0].data["changed"] is True
    assert kinds(receipt) == ["gov.voted", "role.granted", "gov.executed"]
    assert str(h.run(h.signer("m1").reject(pid))) == "0x50 proposal_executed"


def test_the_threshold_is_reached_exactly_once(make):
    h = make(members=THREE, threshold=(2, 3))
    _, pid, _ = propose(h, "m0", Action.set_param("block_txs_max", 777))
    result = h.commit(h.signer("m1").approve(pid), h.signer("m2").approve(pid))
    first, second = result.receipts
    assert first.outcome.ok and "gov.executed" in kinds(first)
    assert str(second.outcome) == "0x50 proposal_executed" and kinds(second) == ["tx.rejected"]
    assert queries.chain_params(h.ledger)["block_txs_max"] == 777
    executed = queries.events(h.ledger, kind="gov.executed")["events"]
    assert [e["data"]["proposal"] for e in executed] == [pid]


def test_rejections_that_make_the_threshold_unreachable_reject_the_proposal(make):
    h = make(members=THREE, threshold=(2, 3))
    _, pid, _ = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    receipt = h.commit(h.signer("m1").reject(pid)).receipts[0]
    assert kinds(receipt) == ["gov.voted"]  # 2 of 3 still possible
    receipt = h.commit(h.signer("m2").reject(pid)).receipts[0]
    assert kinds(receipt) == ["gov.voted", "gov.rejected"] and show(h, pid)["status"] == "rejected"
    assert str(h.run(h.signer("m1").approve(pid))) == "0x50 proposal_rejected"


def test_expiry_boundary(make):
    h = make(members=THREE, threshold=(1, 1))
    height = h.ledger.tip.height + 1
    expires = height + 2
    assert h.run(h.signer("m0").propose([Action.grant_role("claim_issuer", A("kyc"))],
                                        expires_at_height=expires)).ok
    h.commit()
    assert h.ledger.tip.height + 1 == expires
    assert h.run(h.signer("m1").approve(1)).ok  # in the block at the expiry height: still open
    assert show(h, 1)["status"] == "expired"  # no later block may vote on it
    assert str(h.run(h.signer("m2").approve(1))) == "0x50 proposal_expired"
    assert str(h.run(h.signer("m0").withdraw(1))) == "0x50 proposal_expired"
    assert queries.gov_proposals(h.ledger, status="expired")["proposals"][0]["id"] == 1


def test_proposal_refusals(make, chain):
    h = make(members=THREE, threshold=(2, 3))
    grant = [Action.grant_role("claim_issuer", A("kyc"))]

    def proposed(who: str, actions, expires_in: int) -> str:
        return str(h.run(h.signer(who).propose(actions, expires_at_height=h.ledger.tip.height + 1 + expires_in)))

    assert proposed("stranger", grant, 5) == "0x58 not_authorized:member"
    assert proposed("m0", grant, 0) == "0x50 expiry_not_after_height"
    assert proposed("m0", grant, governance.PROPOSAL_LIFETIME_MAX + 1) == "0x50 expiry_too_far"
    assert proposed("m0", grant, governance.PROPOSAL_LIFETIME_MAX) == "0x51 success"
    assert proposed("m0", [*grant, Action.set_param("block_txs_max", 10)], 50) == "0x50 mixed_action_classes"
    assert str(h.run(h.signer("m1").approve(99))) == "0x50 unknown_proposal"
    assert str(h.run(h.signer("stranger").approve(1))) == "0x58 not_authorized:member"
    # a chain without members has no governance at all
    assert str(chain.run(chain.signer("admin").propose(grant, expires_at_height=100))) == \
        "0x50 governance_not_configured"


def test_withdrawal_by_the_proposing_member_only_before_execution(make):
    h = make(members=(("m0", ("m0", "m0-b")), ("m1", ("m1",)), ("m2", ("m2",))), threshold=(1, 1))
    _, pid, _ = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    assert str(h.run(h.signer("m1").withdraw(pid))) == "0x58 not_authorized:proposer"
    receipt = h.commit(h.signer("m0-b").withdraw(pid)).receipts[0]  # any key of the proposing member
    assert receipt.outcome.ok and kinds(receipt) == ["gov.withdrawn"]
    assert show(h, pid)["status"] == "withdrawn"
    assert str(h.run(h.signer("m1").approve(pid))) == "0x50 proposal_withdrawn"
    assert str(h.run(h.signer("m0").withdraw(pid))) == "0x50 proposal_withdrawn"
    one = make()
    _, done, _ = propose(one, "m0", Action.grant_role("claim_issuer", A("kyc")))
    assert str(one.run(one.signer("m0").withdraw(done))) == "0x50 proposal_executed"


def test_open_proposals_per_member_are_bounded(make):
    h = make(members=THREE, threshold=(1, 1))
    signer = h.signer("m0")
    top = h.ledger.tip.height + 1
    txs = [signer.propose([Action.set_param("block_txs_max", 100 + i)], expires_at_height=top + 10)
           for i in range(governance.OPEN_PROPOSALS_PER_MEMBER_MAX + 1)]
    outcomes = [str(r.outcome) for r in h.commit(*txs).receipts]
    assert outcomes[:-1] == ["0x51 success"] * governance.OPEN_PROPOSALS_PER_MEMBER_MAX
    assert outcomes[-1] == "0x50 too_many_open_proposals"
    assert h.run(h.signer("m1").propose([Action.set_param("block_txs_max", 9)], expires_at_height=top + 10)).ok
    while h.ledger.tip.height < top + 10:
        h.commit()
    # expired proposals leave the agenda
    assert h.run(signer.propose([Action.set_param("block_txs_max", 9)], expires_at_height=top + 30)).ok


# --- atomic execution ---------------------------------------------------------------------------------------


def test_a_failing_action_leaves_nothing_of_the_proposal_but_the_vote_stays(make):
    h = make(members=THREE, threshold=(2, 3))
    actions = [Action.grant_role("claim_issuer", A("kyc")), Action.grant_role("claim_issuer", A("kyc"))]
    _, pid, _ = propose(h, "m0", *actions)
    receipt = h.commit(h.signer("m1").approve(pid)).receipts[0]
    assert receipt.outcome.ok  # the vote is a valid transaction
    assert kinds(receipt) == ["gov.voted", "gov.failed"]  # no role.granted survives
    assert receipt.events[1].data == {"proposal": pid, "action": 1, "code": 0x50, "reason": "role_already_held"}
    view = show(h, pid)
    assert view["status"] == "failed" and view["failure"] == {"code": "0x50", "reason": "role_already_held",
                                                              "action": 1}
    assert queries.accounts_with_role(h.ledger, "claim_issuer") == []
    assert [v["member"] for v in view["votes"]] == ["m0", "m1"]
    assert str(h.run(h.signer("m2").approve(pid))) == "0x50 proposal_failed"


def test_a_failing_validator_change_schedules_nothing(make):
    h = make(validators=FOUR_VALIDATORS)
    before = queries.validators_hash(h.ledger, h.ledger.tip.height + 2)
    outcome, pid, receipt = propose(
        h, "m0", Action.add_validator(A("validator:new"), A("node:new"), 5, "10.0.0.5:26656", "new"),
        Action.remove_validator(A("nobody")))
    assert outcome.ok and kinds(receipt) == ["gov.proposed", "gov.failed"]
    assert show(h, pid)["failure"]["reason"] == "unknown_validator"
    tip = h.ledger.tip.height
    assert queries.validators_hash(h.ledger, tip + 2) == before and A("validator:new") not in keys_at(h, tip + 2)
    with h.ledger.store.read() as txn:
        assert txn.get(layout.gov_valset(tip + 2), db=h.ledger.store.dbs["state"]) is None


def test_nested_transactions_of_the_state():
    committed = {b"a": b"\x01"}  # msgpack 1
    state = State(committed.get)
    state.begin_transaction()
    state.set(b"x", 1)
    state.begin_transaction()
    state.set(b"x", 2)
    state.set(b"y", 2)
    assert state.get(b"x") == 2 and state.get(b"a") == 1
    state.rollback_transaction()  # the savepoint only
    assert state.get(b"x") == 1 and state.get(b"y") is None
    state.begin_transaction()
    state.set(b"z", 3)
    state.delete(b"a")
    state.begin_transaction()
    assert state.get(b"z") == 3 and state.get(b"a") is None and state.get(b"x") == 1
    state.commit_transaction()
    state.commit_transaction()  # into the outer transaction
    state.rollback_transaction()  # the outer one: everything goes
    assert state.get(b"x") is None and state.get(b"z") is None and state.get(b"a") == 1
    state.begin_transaction()
    state.set(b"k", 4)
    state.begin_transaction()
    state.set(b"k", 5)
    state.commit_transaction()
    state.commit_transaction()
    assert dict(state.block_writes()) == {b"k": 5}


# --- membership -------------------------------------------------------------------------------------------


def test_a_removed_members_votes_stop_counting(make):
    h = make(members=THREE, threshold=(2, 3))
    _, roles, _ = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    _, removal, _ = propose(h, "m1", Action.remove_member("m0"))
    assert "gov.executed" in kinds(h.commit(h.signer("m2").approve(removal)).receipts[0])
    view = show(h, roles)
    assert view["approvals"] == 0 and view["members"] == 2 and view["status"] == "open"
    assert view["votes"] == [{"member": "m0", "vote": "approve", "height": view["created_height"], "counts": False}]
    assert str(h.run(h.signer("m0").approve(roles))) == "0x58 not_authorized:member"
    assert kinds(h.commit(h.signer("m1").approve(roles)).receipts[0]) == ["gov.voted"]  # 1 of 2 < 2/3
    assert "gov.executed" in kinds(h.commit(h.signer("m2").approve(roles)).receipts[0])


FOUR_MEMBERS = (("m0", ("m0",)), ("m1", ("m1",)), ("m2", ("m2",)), ("m3", ("m3",)))


def test_a_membership_change_settles_the_other_open_proposals_in_the_same_transaction(make):
    h = make(members=FOUR_MEMBERS, thresholds={"members": (1, 2), "roles": (1, 1), "params": (3, 4)})
    _, roles, _ = propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    h.commit(h.signer("m1").approve(roles), h.signer("m3").approve(roles))  # 3 of 4: not unanimous
    _, params, _ = propose(h, "m2", Action.set_param("block_txs_max", 10))
    assert h.run(h.signer("m0").reject(params)).ok  # 3 of 4 still reachable
    assert show(h, roles)["status"] == show(h, params)["status"] == "open"
    _, removal, _ = propose(h, "m0", Action.remove_member("m2"))
    receipt = h.commit(h.signer("m1").approve(removal)).receipts[0]  # 2 of 4 = 1/2: m2 leaves
    assert kinds(receipt) == ["gov.voted", "member.removed", "gov.executed",  # the removal
                              "role.granted", "gov.executed",  # roles: now 3 of 3
                              "gov.rejected"]  # params: m2's approval is gone, 3 of 3 is out of reach
    assert show(h, roles)["status"] == "executed" and show(h, params)["status"] == "rejected"
    assert show(h, roles)["closed_height"] == show(h, removal)["closed_height"] == h.ledger.tip.height


def test_a_re_added_member_does_not_revive_its_old_votes(make):
    h = make(members=THREE, threshold=(1, 1))
    _, roles, _ = propose(h, "m2", Action.grant_role("claim_issuer", A("kyc")))
    _, removal, _ = propose(h, "m0", Action.remove_member("m2"))
    h.commit(h.signer("m1").approve(removal), h.signer("m2").approve(removal))
    _, addition, _ = propose(h, "m0", Action.add_member("m2", "Member two again", [A("m2-new")]))
    h.commit(h.signer("m1").approve(addition))
    assert show(h, removal)["status"] == show(h, addition)["status"] == "executed"
    view = show(h, roles)
    assert view["approvals"] == 0 and view["votes"][0] == {**view["votes"][0], "member": "m2", "counts": False}
    assert h.run(h.signer("m2-new").approve(roles)).ok  # the new membership votes anew, not "already voted"
    assert show(h, roles)["approvals"] == 1


def test_member_actions_and_their_refusals(make):
    h = make(members=THREE, threshold=(1, 1000))  # any one member decides
    ok = lambda *actions: propose(h, "m0", *actions)[2]  # noqa: E731

    def failure(*actions) -> str:
        view = show(h, propose(h, "m0", *actions)[1])
        assert view["status"] == "failed", view
        return view["failure"]["reason"]

    receipt = ok(Action.add_member("m3", "Bank D", [A("m3"), A("m3-b")]))
    assert kinds(receipt) == ["gov.proposed", "member.added", "gov.executed"]
    assert set(receipt.events[1].addresses) == {A("m3"), A("m3-b")}
    assert failure(Action.add_member("m3", "again", [A("x")])) == "member_exists"
    assert failure(Action.add_member("m4", "D", [A("m1")])) == "member_key_in_use"
    assert failure(Action.set_member_keys("m3", [A("m2")])) == "member_key_in_use"
    assert failure(Action.set_member_keys("nobody", [A("x")])) == "unknown_member"
    receipt = ok(Action.set_member_keys("m3", [A("m3-b"), A("m3-c")]))
    assert receipt.events[1].data["old_keys"] == sorted([A("m3"), A("m3-b")])
    assert queries.gov_members(h.ledger)["members"][3]["keys"] == sorted([A("m3-b"), A("m3-c")])
    assert str(h.run(h.signer("m3").approve(1))) == "0x58 not_authorized:member"  # its old key
    assert failure(Action.remove_member("nobody")) == "unknown_member"
    ok(Action.remove_member("m1"), Action.remove_member("m2"), Action.remove_member("m3"))
    assert [m["id"] for m in queries.gov_members(h.ledger)["members"]] == ["m0"]
    assert failure(Action.remove_member("m0")) == "last_member"


# --- the admin decision --------------------------------------------------------------------------------------


def test_admins_may_not_change_roles_on_a_chain_with_members(make, chain):
    h = make()  # "admin" is an administrator in this genesis too
    assert str(h.run(h.signer("admin").grant_role("claim_issuer", A("kyc")))) == "0x58 governance_required"
    assert str(h.run(h.signer("m0").grant_role("claim_issuer", A("kyc")))) == "0x58 governance_required"
    assert str(h.run(h.signer("admin").revoke_role("admin", A("admin")))) == "0x58 governance_required"
    assert chain.run(chain.signer("admin").grant_role("claim_issuer", A("kyc2"))).ok  # no members: admins rule
    # governance grants only the two governed roles
    with pytest.raises(InvalidBody, match="role: expected one of claim_issuer, token_issuer"):
        check_body("gov.propose", {"actions": [{"action": "role.grant", "role": "admin", "account": A("x")}],
                                   "expires_at_height": 10})
    revoke = propose(h, "m0", Action.grant_role("token_issuer", A("issuer")), Action.revoke_role("claim_issuer",
                                                                                                 A("nobody")))
    assert show(h, revoke[1])["failure"]["reason"] == "role_not_held"


# --- the validator set per height, the hash, the one-third rule ------------------------------------------


def test_a_change_in_block_h_takes_effect_at_h_plus_2(make):
    h = make(validators=FOUR_VALIDATORS)
    h.commit()
    genesis_keys = keys_at(h, 1)
    _, _, receipt = propose(h, "m0", Action.add_validator(A("validator:v4"), A("node:v4"), 10, "127.0.0.1:26610",
                                                         "v4"))
    height = h.ledger.tip.height
    added = receipt.events[1]
    assert added.kind == "validator.added" and added.data["effective_height"] == height + 2
    assert set(added.addresses) == {A("validator:v4"), A("node:v4")}
    assert keys_at(h, height) == keys_at(h, height + 1) == genesis_keys
    assert keys_at(h, height + 2) == sorted([*genesis_keys, A("validator:v4")])
    assert queries.validators_at(h.ledger) == queries.validators_at(h.ledger, height + 1)  # default: next height
    with pytest.raises(NotFound, match="heights 1 to"):
        queries.validators_at(h.ledger, height + 3)
    with pytest.raises(NotFound):
        queries.validators_at(h.ledger, 0)
    for _ in range(3):
        h.commit()
    for at in range(1, h.ledger.tip.height + 3):  # the cursor seek and the walk of the state agree
        with h.ledger.store.read() as txn:
            db = h.ledger.store.dbs["state"]
            walked = governance.validators_at(lambda key, txn=txn, db=db: txn.get(key, db=db), at)
        assert [v[0] for v in walked] == keys_at(h, at), at
    new = next(v for v in queries.validators_at(h.ledger, height + 2) if v["name"] == "v4")
    assert new == {"validator_key": A("validator:v4"), "node_key": A("node:v4"), "power": 10,
                   "address": "127.0.0.1:26610", "name": "v4"}


def test_the_validators_hash_changes_with_the_set_and_not_otherwise(make):
    h = make(validators=FOUR_VALIDATORS)
    first = queries.validators_hash(h.ledger, 1)
    h.commit()
    assert queries.validators_hash(h.ledger, h.ledger.tip.height + 2) == first
    propose(h, "m0", Action.set_validator_power(A("validator:v0"), 10))  # the same power: same set
    tip = h.ledger.tip.height
    assert queries.validators_hash(h.ledger, tip + 2) == first
    propose(h, "m0", Action.set_validator_power(A("validator:v0"), 11))
    tip = h.ledger.tip.height
    second = queries.validators_hash(h.ledger, tip + 2)
    assert second != first and queries.validators_hash(h.ledger, tip + 1) == first
    propose(h, "m0", Action.rotate_validator(A("validator:v1"), A("validator:v1-new"), A("node:v1")))
    third = queries.validators_hash(h.ledger, h.ledger.tip.height + 2)
    assert third not in (first, second)
    with h.ledger.store.read() as txn:
        entries = governance.validators_at(h.ledger.store.state_over(txn), h.ledger.tip.height + 2)
    relabelled = tuple((k, n, p, "elsewhere:1", "renamed") for k, n, p, _, _ in entries)
    assert governance.validators_hash(relabelled) == third  # address and name are not in the hash
    assert governance.validators_hash(tuple(reversed(entries))) == third  # nor is the order given


def test_the_one_third_rule(make):
    h = make(validators=(("v0", 10), ("v1", 10), ("v2", 10)))  # total 30
    add = lambda name, power: Action.add_validator(A(f"validator:{name}"), A(f"node:{name}"), power,  # noqa: E731
                                                   f"{name}.example:26656", name)
    status = lambda outcome: show(h, outcome[1])["failure"]["reason"] if show(h, outcome[1])["failure"] \
        else show(h, outcome[1])["status"]  # noqa: E731

    def budget() -> int:
        """The power of the set the next block's changes replace (the one at its height + 1)."""
        return sum(v["power"] for v in queries.validators_at(h.ledger, h.ledger.tip.height + 2))

    assert status(propose(h, "m0", add("x", 10))) == "validator_change_too_large"  # 10 * 3 = 30: refused
    assert status(propose(h, "m0", add("x", 9))) == "executed"  # 27 < 30
    h.commit()
    assert budget() == 39
    # cumulative over one block: 6 and then 7 against 39 (13 * 3 = 39)
    top = h.ledger.tip.height + 1
    signer = h.signer("m0")
    result = h.commit(signer.propose([add("y", 6)], expires_at_height=top + 50),
                      signer.propose([add("z", 7)], expires_at_height=top + 50))
    ids = [e.data["proposal"] for r in result.receipts for e in r.events if e.kind == "gov.proposed"]
    assert show(h, ids[0])["status"] == "executed"
    assert show(h, ids[1])["failure"]["reason"] == "validator_change_too_large"
    assert status(propose(h, "m0", add("z", 7))) == "executed"  # the next block has its own budget
    # a power change counts by its difference, a removal fully, a rotation not at all
    assert budget() == 52
    assert status(propose(h, "m0", Action.set_validator_power(A("validator:v0"), 10 + 18))) == \
        "validator_change_too_large"  # 54 >= 52
    assert status(propose(h, "m0", Action.set_validator_power(A("validator:v0"), 10 + 17))) == "executed"  # 51
    assert budget() == 69
    assert status(propose(h, "m0", Action.remove_validator(A("validator:v0")))) == "validator_change_too_large"
    assert status(propose(h, "m0", Action.set_validator_power(A("validator:v1"), 10 + 22),
                          Action.rotate_validator(A("validator:v2"), A("validator:v2-new"), A("node:v2-new")))) \
        == "executed"  # 66 < 69: the rotation moved nothing
    assert status(propose(h, "m0", Action.remove_validator(A("validator:x")))) == "executed"  # 27 < 91


def test_exactly_one_third_is_refused_and_just_under_is_accepted(make):
    h = make(validators=(("v0", 100), ("v1", 100), ("v2", 100)))  # total 300
    change = propose(h, "m0", Action.set_validator_power(A("validator:v0"), 200))  # moves 100: exactly 1/3
    assert show(h, change[1])["failure"] == {"code": "0x50", "reason": "validator_change_too_large", "action": 0}
    assert show(h, propose(h, "m0", Action.set_validator_power(A("validator:v0"), 199))[1])["status"] == "executed"


def test_a_change_that_would_leave_no_validator_is_refused(make):
    h = make(validators=(("v0", 10),))
    view = show(h, propose(h, "m0", Action.remove_validator(A("validator:v0")))[1])
    assert view["failure"]["reason"] == "no_validators_left"
    assert keys_at(h, h.ledger.tip.height + 2) == [A("validator:v0")]


def test_validator_action_refusals(make):
    h = make(validators=(("v0", 100), ("v1", 100), ("v2", 100)))

    def reason(*actions) -> str:
        view = show(h, propose(h, "m0", *actions)[1])
        return view["failure"]["reason"] if view["failure"] else view["status"]

    add = Action.add_validator
    assert reason(add(A("validator:v0"), A("node:x"), 1, "h:1", "x")) == "validator_key_in_use"
    assert reason(add(A("validator:x"), A("node:v1"), 1, "h:1", "x")) == "node_key_in_use"
    assert reason(add(A("validator:x"), A("node:x"), 1, "h:1", "v2")) == "validator_name_in_use"
    assert reason(Action.remove_validator(A("nobody"))) == "unknown_validator"
    assert reason(Action.set_validator_power(A("nobody"), 3)) == "unknown_validator"
    assert reason(Action.rotate_validator(A("validator:v0"), A("validator:v0"), A("node:v0"))) == "rotation_unchanged"
    assert reason(Action.rotate_validator(A("validator:v0"), A("validator:v1"), A("node:new"))) == \
        "validator_key_in_use"
    assert reason(Action.rotate_validator(A("validator:v0"), A("validator:new"), A("node:v2"))) == "node_key_in_use"
    assert reason(Action.rotate_validator(A("validator:v0"), A("validator:v0"), A("node:v0-new"))) == "executed"
    # two changes in one proposal build on each other
    assert reason(add(A("validator:x"), A("node:x"), 10, "h:1", "x"), Action.remove_validator(A("validator:x"))) \
        == "executed"


def test_parameters(make):
    h = make()
    receipt = propose(h, "m0", Action.set_param("timeout_propose_ms", 2_000), Action.set_param("block_txs_max", 9))[2]
    assert [e.data for e in receipt.events if e.kind == "params.changed"] == [
        {"proposal": 1, "name": "timeout_propose_ms", "old": 1_000, "value": 2_000},
        {"proposal": 1, "name": "block_txs_max", "old": 5_000, "value": 9}]
    assert queries.chain_params(h.ledger) == {**governance.PARAM_DEFAULTS, "timeout_propose_ms": 2_000,
                                             "block_txs_max": 9}


@pytest.mark.parametrize("actions, error, message", [
    ([], InvalidBody, "actions: expected 1 to 16 actions"),
    ([Action.set_param("block_txs_max", 5)] * 17, InvalidBody, "expected 1 to 16 actions"),
    ([{"action": "validator.explode"}], InvalidBody, r"actions\[0\].action: expected one of"),
    ([{**Action.remove_member("m0"), "extra": 1}], InvalidBody, "unknown field 'extra'"),
    ([Action.set_param("block_txs_max", 0)], IntegerOutOfBounds, r"actions\[0\].value: 0 outside \[1, 20000\]"),
    ([Action.set_param("block_bytes_max", 1024)], IntegerOutOfBounds, "value: 1024 outside"),
    ([Action.set_param("gas_price", 1)], InvalidBody, r"actions\[0\].name: expected one of"),
    ([Action.add_validator(A("k"), A("n"), 0, "h:1", "x")], IntegerOutOfBounds, r"power: 0 outside \[1, "),
    ([Action.add_validator(A("k"), A("n"), 1, "h", "x")], InvalidBody, 'address: expected "host:port"'),
    ([Action.add_validator(A("k"), A("n"), 1, "h:0", "x")], InvalidBody, "address"),
    ([Action.add_validator(A("k"), A("n"), 1, "h:65536", "x")], InvalidBody, "address"),
    ([Action.add_validator(A("k"), A("n"), 1, "bad host:1", "x")], InvalidBody, "address"),
    ([Action.add_validator(A("k"), A("n"), 1, "h:1", "bad name")], InvalidBody, "name: expected a validator name"),
    ([Action.add_validator(b"short", A("n"), 1, "h:1", "x")], InvalidBody, "validator_key: expected a 32-byte"),
    ([Action.add_member("bad:id", "x", [A("k")])], InvalidBody, "id: expected a member id"),
    ([Action.add_member("m9", "x", [])], InvalidBody, "a member needs at least one key"),
    ([{**Action.add_member("m9", "x", [A("k")]), "keys": sorted([A("a"), A("b")], reverse=True)}], InvalidBody,
     "ascending order"),
])
def test_proposal_bodies_are_checked_strictly(actions, error, message):
    with pytest.raises(error, match=message):
        check_body("gov.propose", {"actions": actions, "expires_at_height": 10})


def test_peer_addresses_accepted():
    for address in ("127.0.0.1:26656", "node-3.bank-a.example:1", "[::1]:26656", "[2001:db8::7]:65535"):
        check_body("gov.propose", {"actions": [Action.add_validator(A("k"), A("n"), 1, address, "x")],
                                   "expires_at_height": 10})


# --- queries and events -----------------------------------------------------------------------------------


def test_proposal_list_filters_and_pages(make):
    h = make(members=THREE, threshold=(2, 3))
    propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))  # 1 open (roles)
    propose(h, "m1", Action.set_param("block_txs_max", 10))  # 2 open (params)
    _, third, _ = propose(h, "m1", Action.set_param("block_txs_max", 11))
    h.run(h.signer("m0").approve(third))  # 3 executed
    ids = lambda page: [p["id"] for p in page["proposals"]]  # noqa: E731
    assert ids(queries.gov_proposals(h.ledger)) == [1, 2, 3]
    assert ids(queries.gov_proposals(h.ledger, status="open")) == [1, 2]
    assert ids(queries.gov_proposals(h.ledger, status="executed")) == [3]
    assert ids(queries.gov_proposals(h.ledger, proposer="m1")) == [2, 3]
    assert ids(queries.gov_proposals(h.ledger, action_class="roles")) == [1]
    page = queries.gov_proposals(h.ledger, limit=2)
    assert ids(page) == [1, 2] and page["next"] == 2
    last = queries.gov_proposals(h.ledger, after=page["next"], limit=2)
    assert ids(last) == [3] and last["next"] is None
    assert "votes" not in page["proposals"][0]
    with pytest.raises(NotFound, match="no proposal 9"):
        queries.gov_proposal(h.ledger, 9)


def test_events_name_the_addresses_involved(make):
    h = make()
    propose(h, "m0", Action.grant_role("claim_issuer", A("kyc")))
    found = [e["kind"] for e in queries.events(h.ledger, address=A("kyc"))["events"]]
    assert found == ["gov.proposed", "role.granted"]
    assert [e["kind"] for e in queries.events(h.ledger, address=A("m0"))["events"]] == \
        ["gov.proposed", "gov.executed"]


def test_a_rebuild_reproduces_the_governance_state(make, snapshot):
    h = make(members=THREE, threshold=(2, 3), validators=FOUR_VALIDATORS)
    _, pid, _ = propose(h, "m0", Action.add_validator(A("validator:v4"), A("node:v4"), 5, "h:1", "v4"))
    h.run(h.signer("m1").approve(pid))
    propose(h, "m2", Action.remove_member("m0"))
    before = snapshot(h.ledger)
    assert h.ledger.verify_accumulator()
    h.ledger.rebuild()
    assert snapshot(h.ledger) == before


def test_the_chain_refuses_a_block_over_the_limits_its_members_set(make):
    from ledger import InvalidBlock

    h = make()
    assert queries.voted_params(h.ledger) == {}  # at genesis nothing is voted: the defaults hold
    outcome, _, _ = propose(h, "m0", Action.set_param("block_txs_max", 2))
    assert outcome.ok and queries.voted_params(h.ledger) == {"block_txs_max": 2}
    signer = h.signer("m0")
    three = h.block([signer.reject(99), signer.reject(98), signer.reject(97)])
    with pytest.raises(InvalidBlock, match="3 transactions, the chain allows 2"):
        h.ledger.validate_block(three)
    with pytest.raises(InvalidBlock, match="the chain allows 2"):
        h.ledger.apply_block(three, b"certified")  # a certified block is checked the same way
    signer.nonce -= 3
    assert len(h.commit(signer.reject(99), signer.reject(98)).receipts) == 2


def test_block_bytes_limit(make):
    from ledger import InvalidBlock

    h = make()
    propose(h, "m0", Action.set_param("block_bytes_max", 16_384))
    signer = h.signer("m0")
    big = [signer.propose([Action.grant_role("claim_issuer", A(f"x{i}")) for i in range(16)],
                          expires_at_height=h.ledger.tip.height + 50) for _ in range(20)]
    assert sum(map(len, big)) > 16_384
    with pytest.raises(InvalidBlock, match="bytes of transactions, the chain allows 16384"):
        h.ledger.validate_block(h.block(big))
