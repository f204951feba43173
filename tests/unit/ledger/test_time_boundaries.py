"""Time boundaries of the transfer rules, each probed at exactly the boundary second and one second
either side (docs/LEDGER.md sections 2, 5 and 6).

Every probe is a real transfer or grant executed in a block whose time is exactly the second named,
and `compliance_check(..., time_s=...)` is asserted to promise the same code first. Probes of one
boundary use different senders that reached the same state in the same block, so a refused probe
(which still takes a block) does not push the next probe a second later: block k + 1 is one second
after block k, and each second is probed by exactly one sender.

- lock-up: units acquired at `a` move from `a + holding_period_s` on (`unlocked_amount`);
- claims count while `expires_at > block time` (`valid_claim`), and a grant that would not count
  at its own block is refused (`claim_grant`);
- a volume window opened at `s` covers the seconds `s .. s + window_s - 1` (`_volume_after`), and
  the next one opens with the first transfer after it closed.
"""

from __future__ import annotations

from ledger.testing import address_of

HOLDING_S = 100
WINDOW_S = 60


def at_second(chain, second: int) -> int:
    """The `advance_ms` that puts the next block at exactly `second`."""
    advance_ms = second * 1000 - chain.time_ms
    assert advance_ms >= 1000, f"block time must grow: tip {chain.time_ms} ms, wanted {second} s"
    return advance_ms


def transfer_at(chain, second: int, sender: str, receiver: str, amount: int, *, token: str = "ACME") -> str:
    """Execute `sender`'s transfer alone in a block at exactly `second`; the dry run must agree."""
    promised = chain.ledger.compliance_check(token, address_of(sender), address_of(receiver), amount, time_s=second)
    outcome = chain.run(chain.signer(sender).transfer(token, address_of(receiver), amount),
                        advance_ms=at_second(chain, second))
    assert chain.now_s == second and chain.time_ms == second * 1000
    assert promised == outcome, f"compliance_check promised {promised}, execution gave {outcome}"
    return str(outcome)


def check_at(chain, second: int, sender: str, receiver: str, amount: int, *, token: str = "ACME") -> str:
    return str(chain.ledger.compliance_check(token, address_of(sender), address_of(receiver), amount,
                                             time_s=second))


def issue_all(chain, amounts: dict[str, int], *, token: str = "ACME") -> int:
    """Issue to several holders in one block; the block's second (the acquisition time of each lot)."""
    agent = chain.signer("agent")
    result = chain.commit(*(agent.issue(token, address_of(name), amount) for name, amount in amounts.items()))
    assert all(r.outcome.ok for r in result.receipts), [str(r.outcome) for r in result.receipts]
    return chain.now_s


def rules(chain, new_rules: dict, token: str = "ACME") -> None:
    assert chain.run(chain.signer("issuer").set_rules(token, new_rules)).ok


# --- lock-up (holding_period_s) --------------------------------------------------------------------------


def test_units_unlock_at_exactly_acquisition_plus_holding_period(market):
    market.investor("dave")
    rules(market, {"holding_period_s": HOLDING_S})
    acquired = issue_all(market, {"alice": 10, "bob": 10, "carol": 10})  # three lots, same second
    unlock = acquired + HOLDING_S
    market.commit(advance_ms=at_second(market, unlock - 2))
    # One sender per second, in consecutive blocks.
    assert transfer_at(market, unlock - 1, "alice", "dave", 10) == "0x55 holding_period"
    assert transfer_at(market, unlock, "bob", "dave", 10) == "0x51 success"
    assert transfer_at(market, unlock + 1, "carol", "dave", 10) == "0x51 success"
    # alice's refusal changed nothing: her units are free one second later like everyone's.
    assert transfer_at(market, unlock + 2, "alice", "dave", 10) == "0x51 success"


def test_units_acquired_by_transfer_lock_from_that_block_and_lots_unlock_one_by_one(market):
    """dave's lots are stamped with the seconds of the blocks that credited them (bob's at `u`,
    carol's at `u + 1`); the oldest lot frees at `u + period`, the second at `u + 1 + period`."""
    market.investor("dave")
    rules(market, {"holding_period_s": HOLDING_S})
    acquired = issue_all(market, {"bob": 10, "carol": 10})
    u = acquired + HOLDING_S
    assert transfer_at(market, u, "bob", "dave", 10) == "0x51 success"
    assert transfer_at(market, u + 1, "carol", "dave", 10) == "0x51 success"
    unlock = u + HOLDING_S
    assert check_at(market, unlock - 1, "dave", "alice", 1) == "0x55 holding_period"
    assert check_at(market, unlock, "dave", "alice", 10) == "0x51 success"
    assert check_at(market, unlock, "dave", "alice", 11) == "0x55 holding_period"  # the second lot: not yet
    assert check_at(market, unlock + 1, "dave", "alice", 20) == "0x51 success"
    assert transfer_at(market, unlock, "dave", "alice", 11) == "0x55 holding_period"
    assert transfer_at(market, unlock + 1, "dave", "alice", 20) == "0x51 success"


# --- claims expire at expires_at ------------------------------------------------------------------------


def test_a_claim_counts_until_the_second_before_expires_at(market):
    """docs/LEDGER.md 2: a claim counts only if `expires_at > block time`."""
    rules(market, {"required_claims": ["kyc"]})
    issue_all(market, {"alice": 10})
    expires = market.now_s + 5
    assert market.run(market.signer("kyc").grant_claim("bob", "kyc", expires)).ok
    market.commit(advance_ms=at_second(market, expires - 2))
    assert transfer_at(market, expires - 1, "alice", "bob", 1) == "0x51 success"
    assert transfer_at(market, expires, "alice", "bob", 1) == "0x57 receiver_missing_claim:kyc"
    assert transfer_at(market, expires + 1, "alice", "bob", 1) == "0x57 receiver_missing_claim:kyc"


def test_a_sender_claim_expires_at_the_same_second_with_check_sender(market):
    rules(market, {"required_claims": ["kyc"], "check_sender": True})
    issue_all(market, {"alice": 10, "carol": 10})
    expires = market.now_s + 5
    kyc = market.signer("kyc")
    granted = market.commit(kyc.grant_claim("alice", "kyc", expires), kyc.grant_claim("carol", "kyc", expires))
    assert all(r.outcome.ok for r in granted.receipts)
    market.commit(advance_ms=at_second(market, expires - 2))
    assert transfer_at(market, expires - 1, "alice", "bob", 1) == "0x51 success"
    assert transfer_at(market, expires, "carol", "bob", 1) == "0x56 sender_missing_claim:kyc"
    assert transfer_at(market, expires + 1, "alice", "bob", 1) == "0x56 sender_missing_claim:kyc"


def test_a_grant_must_expire_after_its_own_block(market):
    """`claim.grant` refuses `claim_already_expired` for an expiry at or before the block's second
    (such a claim would never count), and a claim expiring one second later counts in that block
    and no longer in the next."""
    issue_all(market, {"alice": 10})
    rules(market, {"investor_types_allow": ["retail"]})
    kyc = market.signer("kyc")
    t = (market.time_ms + 1000) // 1000  # the next block's second
    result = market.commit(
        kyc.grant_claim("alice", "investor_type", t - 1, "retail"),
        kyc.grant_claim("bob", "investor_type", t, "retail"),
        kyc.grant_claim("carol", "investor_type", t + 1, "retail"),
        market.signer("alice").transfer("ACME", address_of("carol"), 1),  # carol's claim counts at t
        market.signer("alice").transfer("ACME", address_of("bob"), 1),  # bob's was refused
    )
    assert market.now_s == t
    assert [str(r.outcome) for r in result.receipts] == [
        "0x50 claim_already_expired", "0x50 claim_already_expired", "0x51 success",
        "0x51 success", "0x57 receiver_missing_claim:investor_type"]
    assert transfer_at(market, t + 1, "alice", "carol", 1) == "0x57 receiver_missing_claim:investor_type"


# --- volume windows ---------------------------------------------------------------------------------------


def test_a_volume_window_closes_at_exactly_start_plus_window(market):
    """A window opened at `s` spans `s .. s + window_s - 1`; at `s + window_s` a new one opens."""
    market.investor("dave")
    issue_all(market, {"alice": 100, "bob": 100, "carol": 100})
    rules(market, {"volume_limit": {"window_s": WINDOW_S, "amount_max": 10}})
    opened = market.commit(*(market.signer(name).transfer("ACME", address_of("dave"), 10)
                                 for name in ("alice", "bob", "carol")))
    assert all(r.outcome.ok for r in opened.receipts)
    start = market.now_s  # each sender's window opened here, and is full
    closes = start + WINDOW_S
    assert check_at(market, closes - 1, "alice", "dave", 1) == "0x55 volume_limit_exceeded"
    assert check_at(market, closes, "alice", "dave", 10) == "0x51 success"
    assert check_at(market, closes, "alice", "dave", 11) == "0x55 volume_limit_exceeded"
    assert transfer_at(market, closes - 1, "alice", "dave", 1) == "0x55 volume_limit_exceeded"
    assert transfer_at(market, closes, "bob", "dave", 10) == "0x51 success"
    assert transfer_at(market, closes + 1, "carol", "dave", 1) == "0x51 success"
    # alice's refused transfer did not count and opened no window: her first window is simply over
    assert transfer_at(market, closes + 2, "alice", "dave", 10) == "0x51 success"


def test_the_next_window_opens_with_the_first_transfer_after_the_close(market):
    """Not aligned to `start + k * window_s`: carol's second window opens at `start + window_s + 1`
    (her first transfer after the close) and so closes one second after an aligned one would."""
    market.investor("dave")
    issue_all(market, {"carol": 100})
    rules(market, {"volume_limit": {"window_s": WINDOW_S, "amount_max": 10}})
    assert market.run(market.signer("carol").transfer("ACME", address_of("dave"), 10)).ok
    start = market.now_s
    reopened = start + WINDOW_S + 1
    assert transfer_at(market, reopened, "carol", "dave", 1) == "0x51 success"
    assert transfer_at(market, reopened + 1, "carol", "dave", 9) == "0x51 success"
    closes = reopened + WINDOW_S
    market.commit(advance_ms=at_second(market, closes - 2))
    assert check_at(market, closes + 1, "carol", "dave", 10) == "0x51 success"
    assert transfer_at(market, closes - 1, "carol", "dave", 1) == "0x55 volume_limit_exceeded"  # = start + 2w
    assert transfer_at(market, closes, "carol", "dave", 10) == "0x51 success"
    assert transfer_at(market, closes + 1, "carol", "dave", 1) == "0x55 volume_limit_exceeded"
