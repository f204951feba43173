"""Acquisition lots, the record the holding-period rule reads: a sale takes the oldest units first
(FIFO), whole lots vanish, a partly sold lot keeps its date, and a recovered or rejected wallet
changes no lot. The lots are state: every node must hold the same ones, to the unit and the second.
"""

from __future__ import annotations

from ledger import layout
from ledger.holdings import LOTS_MAX
from ledger.testing import address_of

A, B, C, C2 = (address_of(n) for n in ("alice", "bob", "carol", "carol-2"))


def holding(chain, identity: str):
    with chain.ledger.store.read() as txn:
        return chain.ledger.store.state_over(txn).get(layout.holding("ACME", identity))


def lots_of_10_5_7(chain) -> tuple[int, int, int]:
    """alice acquires 10, 5 and 7 ACME in three blocks; their times."""
    times = []
    for amount in (10, 5, 7):
        assert chain.run(chain.signer("agent").issue("ACME", A, amount), advance_ms=10_000).ok
        times.append(chain.now_s)
    assert holding(chain, "alice") == (22, (times[0], 10, times[1], 5, times[2], 7))
    return tuple(times)


def test_a_sale_takes_whole_lots_oldest_first_then_part_of_the_next(market):
    t1, t2, t3 = lots_of_10_5_7(market)
    assert market.run(market.signer("alice").transfer("ACME", B, 17)).ok
    assert holding(market, "alice") == (5, (t3, 5))
    assert holding(market, "bob") == (17, (market.now_s, 17))


def test_a_sale_of_exactly_the_oldest_lot_leaves_no_empty_lot(market):
    t1, t2, t3 = lots_of_10_5_7(market)
    assert market.run(market.signer("alice").transfer("ACME", B, 10)).ok
    assert holding(market, "alice") == (12, (t2, 5, t3, 7))
    assert market.run(market.signer("alice").transfer("ACME", B, 3)).ok
    assert holding(market, "alice") == (9, (t2, 2, t3, 7))


def test_a_redemption_takes_lots_like_a_sale_and_the_last_unit_ends_the_holding(market):
    t1, t2, t3 = lots_of_10_5_7(market)
    assert market.run(market.signer("agent").redeem("ACME", A, 16)).ok
    assert holding(market, "alice") == (6, (t3, 6))
    assert market.run(market.signer("agent").redeem("ACME", A, 6)).ok
    assert holding(market, "alice") is None


def test_recovery_onto_a_wallet_that_was_itself_declared_lost_is_refused(market):
    assert market.run(market.signer("agent").issue("ACME", C, 10)).ok
    assert market.run(market.signer("agent").recover("ACME", C, C2)).ok  # carol's first wallet is lost
    outcome = market.run(market.signer("agent").recover("ACME", C2, C))
    assert str(outcome) == "0x57 receiver_wallet_lost"
    assert holding(market, "carol")[0] == 10


def test_units_acquired_in_the_same_second_make_one_lot(market):
    assert market.run(market.signer("agent").issue("ACME", A, 4)).ok
    t1 = market.now_s
    agent = market.signer("agent")
    assert market.commit(agent.issue("ACME", A, 5), agent.issue("ACME", A, 6)).receipts[1].outcome.ok
    assert holding(market, "alice") == (15, (t1, 4, market.now_s, 11))


def test_past_lots_max_the_two_newest_lots_merge_under_the_later_date(market):
    times, amounts = [], [5] + [1] * (LOTS_MAX + 1)  # the oldest lot differs from the newest
    for amount in amounts:
        assert market.run(market.signer("agent").issue("ACME", A, amount)).ok
        times.append(market.now_s)
        held, lots = holding(market, "alice")
        assert len(lots) <= 2 * LOTS_MAX
    first = tuple(x for t, a in zip(times[:LOTS_MAX - 1], amounts, strict=False) for x in (t, a))
    assert holding(market, "alice") == (sum(amounts), first + (times[-1], 3))


def test_above_a_lowered_holder_cap_no_new_holder_enters_even_when_a_holder_leaves(market):
    assert market.run(market.signer("agent").issue("ACME", A, 5)).ok
    assert market.run(market.signer("agent").issue("ACME", C, 5)).ok
    assert market.run(market.signer("issuer").set_rules("ACME", {"holders_max": 1})).ok
    assert str(market.run(market.signer("alice").transfer("ACME", B, 5))) == "0x57 holders_max_reached"
    assert market.run(market.signer("alice").transfer("ACME", C, 5)).ok  # to a holder: the count falls to 1
