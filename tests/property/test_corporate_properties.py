"""Properties of corporate actions over random cap tables and random orders of claims and votes."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import queries
from ledger.testing import FAR_FUTURE_S, LedgerHarness

EXAMPLES = int(os.environ.get("SECLEDGER_PROPERTY_EXAMPLES", "25"))
NAMES = ("ann", "ben", "cat", "dan", "eve", "fay")


def cap_table(balances: list[int]) -> LedgerHarness:
    path = tempfile.mkdtemp(prefix="secledger-prop-")
    h = LedgerHarness(path)
    h.path = path
    h.standard_setup()
    h.investor("treasury", wallets=("issuer",))
    for name in NAMES:
        h.investor(name)
    h.token("ACME", rules={"required_claims": ["kyc"]})
    h.token("USD", rules={"required_claims": ["kyc"]})
    agent = h.signer("agent")
    issues = [agent.issue("ACME", h.address(n), b) for n, b in zip(NAMES, balances, strict=False) if b]
    h.commit(*issues, agent.issue("USD", h.address("issuer"), 10**15))
    return h


settings_ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_
@given(balances=st.lists(st.integers(0, 10**6), min_size=len(NAMES), max_size=len(NAMES)),
       rate=st.tuples(st.integers(0, 1000), st.integers(1, 1000)),
       moves=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(1, 10**5)), max_size=4),
       order=st.permutations(NAMES), frozen=st.sets(st.sampled_from(NAMES), max_size=2))
def test_a_distribution_never_pays_more_than_funded_and_each_holder_once(balances, rate, moves, order, frozen):
    h = cap_table(balances)
    try:
        record_height = h.ledger.tip.height
        declared = h.run(h.signer("issuer").declare_distribution(
            "D", "ACME", "USD", record_height=record_height, rate_num=rate[0], rate_den=rate[1],
            expires_at=FAR_FUTURE_S))
        total = sum(balances)
        assert declared.ok == (total * rate[0] // rate[1] > 0)
        if not declared.ok:
            return
        # balances move after the record date; some wallets get frozen
        h.commit(*[h.signer(a).transfer("ACME", h.address(b), amount) for a, b, amount in moves])
        h.commit(*[h.signer("agent").freeze("ACME", h.address(n)) for n in sorted(frozen)])
        paid = {}
        for name in order:
            outcome = h.run(h.signer(name).claim_distribution("D"))
            expected = balances[NAMES.index(name)] * rate[0] // rate[1]
            if expected and name not in frozen:
                assert outcome.ok, str(outcome)
                paid[name] = expected
            else:
                assert not outcome.ok
            assert not h.run(h.signer(name).claim_distribution("D")).ok  # never twice
        record = queries.distribution(h.ledger, "D")
        assert record["paid"] == sum(paid.values()) <= record["funded"] == total * rate[0] // rate[1]
        for name, amount in paid.items():
            assert queries.balance(h.ledger, "USD", h.address(name))["balance"] == amount
    finally:
        h.close()
        shutil.rmtree(h.path, ignore_errors=True)


@settings_
@given(balances=st.lists(st.integers(0, 1000), min_size=len(NAMES), max_size=len(NAMES)),
       votes=st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 2)), max_size=12))
def test_recounting_a_ballot_from_its_events_gives_the_published_result(balances, votes):
    h = cap_table(balances)
    try:
        top = h.ledger.tip.height
        assert h.run(h.signer("issuer").create_ballot("B", "ACME", "?", ["a", "b", "c"], record_height=top,
                                                      opens_at_height=top + 1, closes_at_height=top + 3)).ok
        h.commit(*[h.signer(name).vote("B", option) for name, option in votes])
        h.commit()
        result = h.commit(h.signer("ann").tally("B")).receipts[0].events[0]
        last: dict[str, tuple[int, int]] = {}
        for event in queries.events(h.ledger, kind="ballot.voted", limit=1000)["events"]:
            last[event["data"]["identity"]] = (event["data"]["option"], event["data"]["weight"])
        recount = [0, 0, 0]
        for option, weight in last.values():
            recount[option] += weight
        assert result.data["tallies"] == recount
        expected = [0, 0, 0]
        final = {name: option for name, option in votes if balances[NAMES.index(name)] > 0}
        for name, option in final.items():
            expected[option] += balances[NAMES.index(name)]
        assert recount == expected
    finally:
        h.close()
        shutil.rmtree(h.path, ignore_errors=True)
