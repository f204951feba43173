"""Property tests of consortium governance: random proposals of every class, votes, vote changes,
withdrawals and membership changes, committed in blocks, checked after every block by a reader of
the `state` sub-database:

- the validator set effective at every height from 1 to the tip + 2 is non-empty, with positive
  total power, no repeated validator key or node key; each scheduled set's moved power is below one
  third of the set before it, and the sets are linked in height order;
- no proposal executes or fails twice, and a final status (executed, failed, rejected, withdrawn)
  never changes; every executed or failed proposal has exactly one `gov.executed` / `gov.failed`;
- no open, unexpired proposal has reached its threshold or lost all chance of it (it would have
  been settled in the transaction that made it so), counted over the current members only;
- there is always a member; the key index and the member records agree;
- `verify_accumulator()` holds, and a rebuild changes no byte.

More examples: SECLEDGER_PROPERTY_EXAMPLES=500 .venv/bin/python -m pytest tests/property -q
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import governance, layout
from ledger.client import Action
from ledger.state import decode_value
from ledger.store import DB_NAMES
from ledger.testing import LedgerHarness, address_of, governed_genesis

EXAMPLES = int(os.environ.get("SECLEDGER_PROPERTY_EXAMPLES", "40"))

KEYS = tuple(f"k{i}" for i in range(8))  # member keys; k0 m0, k1 and k2 m1, k3 m2 at genesis
SIGNERS = KEYS + ("stranger",)
MEMBER_IDS = ("m0", "m1", "m2", "m3", "m4")
VALIDATOR_KEYS = ("validator:v0", "validator:v1", "validator:v2", "validator:v3", "nv0", "nv1", "nv2", "nv3")
NODE_KEYS = ("node:v0", "node:v1", "node:v2", "node:v3", "nn0", "nn1", "nn2", "nn3")
FRACTIONS = ((1, 3), (1, 3), (1, 3), (1, 1), (2, 3), (1, 2), (3, 4))  # often one member decides alone
A = address_of


# --- operations --------------------------------------------------------------------------------------------

powers = st.integers(1, 20)
validator_action = st.one_of(
    st.builds(lambda k, n, p: Action.add_validator(A(VALIDATOR_KEYS[k]), A(NODE_KEYS[n]), p, "h.example:1", f"x{k}"),
              st.integers(4, 7), st.integers(4, 7), st.integers(1, 14)),  # new keys, mostly within the budget
    st.builds(lambda k, n, p: Action.add_validator(A(VALIDATOR_KEYS[k]), A(NODE_KEYS[n]), p, "h.example:1", f"x{k}"),
              st.integers(0, 7), st.integers(0, 7), powers),
    st.builds(lambda k: Action.remove_validator(A(VALIDATOR_KEYS[k])), st.integers(0, 7)),
    st.builds(lambda k, p: Action.set_validator_power(A(VALIDATOR_KEYS[k]), p), st.integers(0, 7), powers),
    st.builds(lambda k, n, m: Action.rotate_validator(A(VALIDATOR_KEYS[k]), A(VALIDATOR_KEYS[n]), A(NODE_KEYS[m])),
              st.integers(0, 7), st.integers(0, 7), st.integers(0, 7)),
)
member_keys = st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True).map(
    lambda names: sorted(A(n) for n in names))
member_action = st.one_of(
    st.builds(lambda i, keys: Action.add_member(i, i.upper(), keys), st.sampled_from(MEMBER_IDS), member_keys),
    st.builds(Action.remove_member, st.sampled_from(MEMBER_IDS)),
    st.builds(Action.set_member_keys, st.sampled_from(MEMBER_IDS), member_keys),
)
role_action = st.builds(lambda grant, who: (Action.grant_role if grant else Action.revoke_role)(
    "claim_issuer", A(who)), st.booleans(), st.sampled_from(("a0", "a1")))
# Values above the transactions a generated block holds (the chain refuses a block over its limit).
param_action = st.builds(lambda v: Action.set_param("block_txs_max", v), st.integers(100, 109))
likely_validator_action = st.one_of(  # new keys, existing keys: mostly within the one-third budget
    st.builds(lambda k, p: Action.add_validator(A(VALIDATOR_KEYS[k]), A(NODE_KEYS[k]), p, "h.example:1", f"x{k}"),
              st.integers(4, 7), st.integers(1, 9)),
    st.builds(lambda k, p: Action.set_validator_power(A(VALIDATOR_KEYS[k]), p), st.integers(0, 3), st.integers(5, 15)),
    st.builds(lambda k: Action.remove_validator(A(VALIDATOR_KEYS[k])), st.integers(0, 7)),
)
one_class = st.one_of(*(st.lists(s, min_size=1, max_size=2)
                        for s in (validator_action, likely_validator_action, likely_validator_action, member_action,
                                  role_action, param_action)))
mixed = st.tuples(role_action, param_action).map(list)
signers = st.sampled_from(KEYS[:4] * 4 + SIGNERS)  # mostly the genesis members' keys
proposals = st.integers(1, 5)
propose = st.tuples(st.just("propose"), signers, st.one_of(one_class, one_class, one_class, mixed), st.integers(1, 12))
vote = st.tuples(st.sampled_from(["approve", "approve", "approve", "reject"]), signers, proposals)
operation = st.one_of(propose, propose, vote, vote, vote, st.tuples(st.just("withdraw"), signers, proposals))
blocks = st.lists(st.lists(operation, max_size=4), min_size=3, max_size=18)
thresholds = st.fixed_dictionaries({c: st.sampled_from(FRACTIONS) for c in ("validators", "members", "roles",
                                                                             "params")})


# --- the reader ------------------------------------------------------------------------------------------


def read_state(h: LedgerHarness) -> dict[bytes, object]:
    with h.ledger.store.read() as txn:
        return {key: decode_value(raw) for key, raw in txn.cursor(db=h.ledger.store.dbs["state"])}


def check(h: LedgerHarness, state: dict[bytes, object], final: dict[int, str], events: Counter) -> None:
    tip = h.ledger.tip.height
    # the validator sets
    sets = {int.from_bytes(k[len(layout.GOV_VALSET_PREFIX):], "big"): v for k, v in state.items()
            if k.startswith(layout.GOV_VALSET_PREFIX)}
    heights = sorted(sets)
    assert heights[0] == 1 and state[layout.gov_valset_latest()] == heights[-1] <= tip + 2
    for before, after in zip([0, *heights], heights, strict=False):
        record = sets[after]
        assert record["previous"] == before
        validators = record["validators"]
        assert validators and governance.total_power(validators) > 0
        assert list(validators) == sorted(validators)
        assert len({v[0] for v in validators}) == len({v[1] for v in validators}) == len(validators)
        if before:
            previous_total = governance.total_power(sets[before]["validators"])
            assert 0 <= record["moved"] and record["moved"] * 3 < previous_total
            # and, counted independently of the ledger's own tally: the total moved by less than a third
            assert abs(governance.total_power(validators) - previous_total) * 3 < previous_total
    for height in range(1, tip + 3):
        assert governance.validators_at(lambda key: _raw(h, key), height) == \
            sets[max(e for e in heights if e <= height)]["validators"]
    # members
    members = state[layout.gov_members()]
    assert members and list(members) == sorted(members)
    index = {k[len(b"gov_member_key:"):]: v for k, v in state.items() if k.startswith(b"gov_member_key:")}
    assert index == {key: m for m in members for key in state[layout.gov_member(m)]["keys"]}
    # proposals
    proposals = {int.from_bytes(k[len(layout.GOV_PROPOSAL_PREFIX):], "big"): v for k, v in state.items()
                 if k.startswith(layout.GOV_PROPOSAL_PREFIX)}
    open_ids = state.get(layout.gov_open(), ())
    for pid, proposal in proposals.items():
        status = proposal["status"]
        if pid in final:
            assert status == final[pid], (pid, final[pid], status)
        elif status != governance.OPEN:
            final[pid] = status
        assert events["gov.executed", pid] == (1 if status == governance.EXECUTED else 0)
        assert events["gov.failed", pid] == (1 if status == governance.FAILED else 0)
        if status != governance.OPEN:
            assert pid not in open_ids
            continue
        if tip + 1 > proposal["expires_at_height"]:
            continue  # expired: no later block may settle it
        approvals, rejections, count = _tally(state, proposal)
        num, den = state[layout.gov_thresholds()][proposal["class"]]
        assert approvals * den < num * count, f"proposal {pid} reached its threshold but did not execute"
        assert (count - rejections) * den >= num * count, f"proposal {pid} cannot pass but was not rejected"


def _tally(state: dict[bytes, object], proposal: dict) -> tuple[int, int, int]:
    approvals = rejections = 0
    for member_id, (vote, _, serial) in proposal["votes"].items():
        member = state.get(layout.gov_member(member_id))
        if member is not None and member["serial"] == serial:
            approvals += vote == governance.APPROVE
            rejections += vote == governance.REJECT
    return approvals, rejections, len(state[layout.gov_members()])


def _raw(h: LedgerHarness, key: bytes) -> bytes | None:
    with h.ledger.store.read() as txn:
        return txn.get(key, db=h.ledger.store.dbs["state"])


def _snapshot(h: LedgerHarness) -> dict[str, list[tuple[bytes, bytes]]]:
    h.ledger.catch_up()  # the read side too
    with h.ledger.store.read() as txn:
        return {name: list(txn.cursor(db=h.ledger.store.dbs[name])) for name in DB_NAMES}


# --- the property -----------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=blocks, fractions=thresholds)
def test_random_governance_keeps_its_invariants(blocks, fractions):
    with tempfile.TemporaryDirectory() as directory:
        h = LedgerHarness(directory, genesis=governed_genesis(
            members=(("m0", ("k0",)), ("m1", ("k1", "k2")), ("m2", ("k3",))),
            thresholds={c: tuple(f) for c, f in fractions.items()},
            validators=(("v0", 10), ("v1", 10), ("v2", 10), ("v3", 10))))
        try:
            final: dict[int, str] = {}
            events: Counter = Counter()
            check(h, read_state(h), final, events)
            for ops in blocks:
                txs = []
                for op in ops:
                    signer = h.signer(op[1])
                    if op[0] == "propose":
                        txs.append(signer.propose(op[2], expires_at_height=h.ledger.tip.height + 1 + op[3]))
                    else:
                        txs.append(getattr(signer, op[0])(op[2]))
                result = h.commit(*txs)
                for receipt in result.receipts:
                    for happened in receipt.events:
                        if happened.kind in ("gov.executed", "gov.failed"):
                            events[happened.kind, happened.data["proposal"]] += 1
                        if happened.kind == "gov.executed":
                            event(f"a proposal of class {happened.data['class']} executed")
                check(h, read_state(h), final, events)
            for status in sorted(set(final.values())):
                event(f"a proposal {status}")
            if sum(1 for k in read_state(h) if k.startswith(layout.GOV_VALSET_PREFIX)) > 1:
                event("the validator set changed")
            assert h.ledger.verify_accumulator()
            before = _snapshot(h)
            h.ledger.rebuild()
            assert _snapshot(h) == before
        finally:
            h.close()
