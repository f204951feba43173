"""Boundaries of the corporate actions, each probed exactly at the boundary and one step either side
(docs/CORPORATE_ACTIONS.md):

- a distribution may be reclaimed "at or after `expires_at`" (seconds of block time), and its
  expiry must be after the declaring block (`expiry_in_the_past` otherwise);
- a ballot accepts votes in blocks `opens_at_height <= h < closes_at_height` and may be tallied
  "at or after `closes_at_height`"; a record height must be below the declaring block.

Each probe is a transaction executed in a block at exactly the time or height named. Probes of one
boundary act on different distributions or ballots created in the same block, so a refused probe
(which still takes a block) does not move the next one along.
"""

from __future__ import annotations

from ledger import queries

FUNDED = 225  # 150 ACME units at the record height x 3/2


def at_second(h, second: int) -> int:
    """The `advance_ms` that puts the next block at exactly `second`."""
    advance_ms = second * 1000 - h.time_ms
    assert advance_ms >= 1000, f"block time must grow: tip {h.time_ms} ms, wanted {second} s"
    return advance_ms


def declare(h, action_id: str, expires_at: int) -> bytes:
    return h.signer("issuer").declare_distribution(action_id, "ACME", "USD", record_height=h.record_height,
                                                   rate_num=3, rate_den=2, expires_at=expires_at)


def reclaim_at(h, second: int, action_id: str) -> str:
    outcome = h.run(h.signer("issuer").reclaim_distribution(action_id), advance_ms=at_second(h, second))
    assert h.now_s == second and h.time_ms == second * 1000
    return str(outcome)


def usd(h, name: str) -> int:
    return queries.balance(h.ledger, "USD", h.address(name))["balance"]


# --- distributions: expires_at ----------------------------------------------------------------------------


def test_a_distribution_is_reclaimed_from_exactly_its_expiry_second(market):
    h = market
    expires = h.now_s + 10
    declared = h.commit(*(declare(h, f"DIV-{k}", expires) for k in "ABC"))
    assert all(r.outcome.ok for r in declared.receipts)
    assert usd(h, "issuer") == 1_000_000 - 3 * FUNDED
    assert h.run(h.signer("alice").claim_distribution("DIV-B")).ok  # 150 of B's 225 paid out
    h.commit(advance_ms=at_second(h, expires - 2))
    assert reclaim_at(h, expires - 1, "DIV-A") == "0x55 distribution_not_expired"
    assert usd(h, "issuer") == 1_000_000 - 3 * FUNDED
    assert reclaim_at(h, expires, "DIV-B") == "0x51 success"
    assert usd(h, "issuer") == 1_000_000 - 3 * FUNDED + (FUNDED - 150)
    assert reclaim_at(h, expires + 1, "DIV-C") == "0x51 success"
    # A's early attempt changed nothing: it is reclaimable like the others once expired
    assert reclaim_at(h, expires + 2, "DIV-A") == "0x51 success"
    assert usd(h, "issuer") == 1_000_000 - 150
    assert str(h.run(h.signer("bob").claim_distribution("DIV-B"))) == "0x50 distribution_closed"


def test_a_declared_expiry_must_be_after_the_declaring_block(market):
    """An expiry at the block's own second would make the distribution reclaimable in the very
    block that declares it ("at or after expires_at"), so it is already in the past."""
    h = market
    t = (h.time_ms + 1000) // 1000  # the next block's second
    result = h.commit(declare(h, "DIV-PAST", t - 1), declare(h, "DIV-NOW", t), declare(h, "DIV-NEXT", t + 1),
                      h.signer("issuer").reclaim_distribution("DIV-NEXT"))
    assert h.now_s == t
    assert [str(r.outcome) for r in result.receipts] == [
        "0x50 expiry_in_the_past", "0x50 expiry_in_the_past", "0x51 success", "0x55 distribution_not_expired"]
    assert reclaim_at(h, t + 1, "DIV-NEXT") == "0x51 success"


def test_a_liquidation_expiry_must_be_after_the_declaring_block(market):
    h = market
    t = (h.time_ms + 1000) // 1000
    issuer = h.signer("issuer")
    classes = [["ACME", 0, 0, True, None, True]]
    result = h.commit(*(issuer.declare_liquidation(f"LIQ-{k}", "USD", amount=300, record_height=h.record_height,
                                                   expires_at=t + offset, classes=classes)
                        for k, offset in (("PAST", -1), ("NOW", 0), ("NEXT", 1))))
    assert h.now_s == t
    assert [str(r.outcome) for r in result.receipts] == [
        "0x50 expiry_in_the_past", "0x50 expiry_in_the_past", "0x51 success"]
    assert reclaim_at(h, t + 1, "LIQ-NEXT") == "0x51 success"


# --- ballots: the voting window in heights --------------------------------------------------------------


def vote_at(h, height: int, name: str, action_id: str, option: int) -> str:
    assert h.ledger.tip.height + 1 == height, "each probe is the next block"
    return str(h.run(h.signer(name).vote(action_id, option)))


def test_votes_are_accepted_from_opens_at_to_the_block_before_closes_at(market):
    h = market
    created_at = h.ledger.tip.height + 1
    opens, closes = created_at + 3, created_at + 6
    issuer = h.signer("issuer")
    result = h.commit(*(issuer.create_ballot(b, "ACME", "Merge?", ["yes", "no"], record_height=h.record_height,
                                             opens_at_height=opens, closes_at_height=closes)
                        for b in ("AGM-1", "AGM-2")))
    assert all(r.outcome.ok for r in result.receipts) and result.height == created_at
    h.commit()
    assert vote_at(h, opens - 1, "bob", "AGM-1", 1) == "0x50 ballot_not_open"
    assert vote_at(h, opens, "alice", "AGM-1", 0) == "0x51 success"
    assert vote_at(h, opens + 1, "bob", "AGM-1", 1) == "0x51 success"
    assert opens + 2 == closes - 1
    last_open = h.commit(h.signer("alice").vote("AGM-1", 1), h.signer("carol").tally("AGM-1"))
    assert last_open.height == closes - 1
    assert [str(r.outcome) for r in last_open.receipts] == ["0x51 success", "0x50 ballot_still_open"]
    closing = h.commit(h.signer("bob").vote("AGM-1", 0), h.signer("carol").tally("AGM-1"))
    assert closing.height == closes
    assert [str(r.outcome) for r in closing.receipts] == ["0x50 ballot_closed", "0x51 success"]
    # counted: alice's vote changed to "no" at closes - 1, bob's "no"; bob's "yes" at closes is not
    assert closing.receipts[1].events[0].data["tallies"] == [0, 150]
    after = h.commit(h.signer("alice").vote("AGM-2", 0), h.signer("carol").tally("AGM-2"))
    assert after.height == closes + 1
    assert [str(r.outcome) for r in after.receipts] == ["0x50 ballot_closed", "0x51 success"]
    assert after.receipts[1].events[0].data["voters"] == 0


def test_a_ballot_must_close_after_its_creating_block(market):
    """Votes count in blocks `h < closes_at_height`, so a ballot created at height H must close at
    H + 1 or later; with opens_at = H and closes_at = H + 1 it takes votes in block H alone."""
    h = market
    issuer = h.signer("issuer")
    at = h.ledger.tip.height + 1

    def create(action_id: str, opens: int, closes: int) -> bytes:
        return issuer.create_ballot(action_id, "ACME", "Merge?", ["yes", "no"], record_height=h.record_height,
                                    opens_at_height=opens, closes_at_height=closes)

    result = h.commit(create("B-PAST", at - 2, at - 1), create("B-NOW", at - 1, at), create("B-EMPTY", at, at),
                      create("B-NEXT", at, at + 1), h.signer("alice").vote("B-NEXT", 0))
    assert result.height == at
    assert [str(r.outcome) for r in result.receipts] == [
        "0x50 bad_voting_window", "0x50 bad_voting_window", "0x50 bad_voting_window", "0x51 success",
        "0x51 success"]
    assert vote_at(h, at + 1, "bob", "B-NEXT", 1) == "0x50 ballot_closed"
    assert queries.ballot(h.ledger, "B-NEXT")["tallies"] == [100, 0]


def test_a_record_height_must_be_below_the_declaring_block(market):
    h = market
    at = h.ledger.tip.height + 1
    issuer = h.signer("issuer")

    def create(action_id: str, record_height: int) -> bytes:
        return issuer.create_ballot(action_id, "ACME", "Merge?", ["yes", "no"], record_height=record_height,
                                    opens_at_height=at, closes_at_height=at + 5)

    result = h.commit(create("R-NOW", at), create("R-LAST", at - 1),
                      issuer.declare_distribution("D-NOW", "ACME", "USD", record_height=at, rate_num=1, rate_den=1,
                                                  expires_at=h.now_s + 100),
                      issuer.declare_distribution("D-LAST", "ACME", "USD", record_height=at - 1, rate_num=1,
                                                  rate_den=1, expires_at=h.now_s + 100))
    assert result.height == at
    assert [str(r.outcome) for r in result.receipts] == [
        "0x50 record_height_not_committed", "0x51 success", "0x50 record_height_not_committed", "0x51 success"]
