"""Property tests of primary offerings: random terms, random subscribers and withdrawals, and random
disturbances while the window is open (claims revoked or lapsing, freezes, legal orders taking
escrowed cash, holders spending, more units issued elsewhere, a holder cap), then a close (or a
cancel). Checked after every block, by reading every entry of the `state` sub-database:

- conservation: per token, the sum of wallet balances equals the supply, and it changes only by
  the block's explicit issues and redemptions (the close's issue counts as an issue);
- escrow: each wallet's reservation equals the sum of its pending subscriptions;
and at the close:
- no investor receives units without paying their price (`paid x 10^d >= units x price`, and less
  than one cash base unit more), and what each investor's wallets hold moved by exactly its units
  and its payment; the issuer's cash wallet received exactly what was paid;
- allocations never exceed the maximum raise, nor a subscription; a closed offering raised at least
  the minimum, a failed one issued and moved nothing;
- for every subscriber, refunds plus payments equal what it escrowed;
- every reservation is back to zero;
- without exclusions, an oversubscribed allocation is exactly `floor(subscribed x max / demand)`;
and a second store fed the same blocks reaches the same state roots and the same bytes, which a
rebuild from the log does not change.

More examples: SECLEDGER_PROPERTY_EXAMPLES=500 .venv/bin/python -m pytest tests/property -q
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.state import decode_value
from ledger.testing import LedgerHarness, address_of

EXAMPLES = int(os.environ.get("SECLEDGER_PROPERTY_EXAMPLES", "30"))

A = address_of
OFFERED, CASH = "EQ", "CASH"
#: identity -> (wallets, accredited)
INVESTORS: dict[str, tuple[tuple[str, ...], bool]] = {
    "i0": (("i0a", "i0b"), True),
    "i1": (("i1a",), True),
    "i2": (("i2a",), True),
    "i3": (("i3a",), True),
    "i4": (("i4a",), False),  # never eligible
}
WALLETS = tuple(w for ws, _ in INVESTORS.values() for w in ws)
IDENTITY_OF = {w: i for i, (ws, _) in INVESTORS.items() for w in ws}
WINDOW_S = 200

terms = st.fixed_dictionaries({
    "decimals": st.sampled_from([0, 2]),
    "price": st.sampled_from([1, 7, 100, 333, 2_500]),
    "raise_max": st.integers(1_000, 60_000),
    "min_fraction": st.sampled_from([0, 1, 3, 10]),  # raise_min = raise_max x fraction / 10
    "investor_min": st.integers(1, 2_000),
    "investor_max": st.integers(2_000, 40_000),
    "cap_room": st.sampled_from([None, 50, 5_000, 10**9]),  # supply cap above the founders' units
    "cash": st.lists(st.sampled_from([50_000, 3_000, 0]), min_size=len(WALLETS), max_size=len(WALLETS)),
})
wallets = st.sampled_from(WALLETS)
identities = st.sampled_from(sorted(INVESTORS))
#: a subscription: 0 is one below the investor minimum, 20 one above the maximum, 1 to 19 in between
subscribe = st.tuples(st.just("subscribe"), wallets, st.integers(0, 20))
operation = st.one_of(
    subscribe, subscribe, subscribe, subscribe, subscribe, subscribe,
    st.tuples(st.just("withdraw"), wallets),
    st.tuples(st.just("revoke"), identities),
    st.tuples(st.just("lapse"), identities),  # the accreditation expires in a second
    st.tuples(st.sampled_from(["freeze_cash", "unfreeze_cash", "freeze_offered"]), wallets),
    st.tuples(st.just("force"), wallets, st.integers(1, 40_000)),  # a legal order takes cash
    st.tuples(st.just("spend"), wallets, st.integers(1, 40_000)),  # the holder's own transfer
    st.tuples(st.just("issue_elsewhere"), st.integers(1, 3_000)),
    st.tuples(st.just("holders_cap"), st.integers(1, 4)),
)
#: the first block of the window: subscriptions (wallet, 1 to 19 as above)
first_subscriptions = st.lists(st.tuples(wallets, st.integers(1, 19)), min_size=1, max_size=6)
#: blocks inside the window: seconds since the last one, and its operations
window_blocks = st.lists(st.tuples(st.integers(1, 40), st.lists(operation, max_size=5)), max_size=8)
finish = st.sampled_from(["close", "close", "close", "early_close", "cancel"])


def setup(h: LedgerHarness, t: dict[str, Any]) -> dict[str, Any]:
    h.standard_setup()
    h.investor("issuer-co", wallets=("treasury",))
    h.investor("founder", accredited=True)
    h.investor("sink")
    for identity, (ws, accredited) in INVESTORS.items():
        h.investor(identity, wallets=ws, accredited=accredited)
    rules: dict[str, Any] = {"required_claims": ["accredited", "kyc"]}
    if t["cap_room"] is not None:
        rules["supply_cap"] = 1_000 + t["cap_room"] + t["raise_max"] * 10 ** t["decimals"] // t["price"]
    h.token(OFFERED, rules=rules, decimals=t["decimals"])
    h.token(CASH, rules={"required_claims": ["kyc"]}, decimals=2)
    agent = h.signer("agent")
    result = h.commit(agent.issue(OFFERED, A("founder"), 1_000),
                      *(agent.issue(CASH, A(w), n) for w, n in zip(WALLETS, t["cash"], strict=True) if n))
    assert all(r.outcome.ok for r in result.receipts)
    raise_max = t["raise_max"]
    investor_min = min(t["investor_min"], raise_max)
    # at least one whole base unit for the least subscription
    investor_min = max(investor_min, -(-t["price"] // 10 ** t["decimals"]))
    offer = {"price": t["price"], "raise_min": raise_max * t["min_fraction"] // 10, "raise_max": raise_max,
             "investor_min": investor_min, "investor_max": max(t["investor_max"], investor_min),
             "opens_at": h.now_s + 5, "closes_at": h.now_s + 5 + WINDOW_S, "cash_wallet": A("treasury")}
    if offer["raise_max"] < offer["investor_min"]:
        offer["raise_max"] = offer["investor_min"]
    outcome = h.run(agent.open_offering("P", OFFERED, CASH, **offer))
    assert outcome.ok, str(outcome)
    return {**offer, "rules": rules, "scale": 10 ** t["decimals"]}


def sign(h: LedgerHarness, op: tuple, now_s: int, offer: dict[str, Any]) -> bytes:
    kind, args = op[0], op[1:]
    agent, kyc = h.signer("agent"), h.signer("kyc")
    if kind == "subscribe":
        low, high = offer["investor_min"], offer["investor_max"]
        amount = max(1, low - 1) if args[1] == 0 else high + 1 if args[1] == 20 else low + (high - low) * args[1] // 19
        return h.signer(args[0]).subscribe("P", amount)
    if kind == "withdraw":
        return h.signer(args[0]).withdraw_subscription("P")
    if kind == "revoke":
        return kyc.revoke_claim(args[0], "accredited")
    if kind == "lapse":
        return kyc.grant_claim(args[0], "accredited", now_s + 1)
    if kind == "freeze_cash":
        return agent.freeze(CASH, A(args[0]))
    if kind == "unfreeze_cash":
        return agent.unfreeze(CASH, A(args[0]))
    if kind == "freeze_offered":
        return agent.freeze(OFFERED, A(args[0]))
    if kind == "force":
        return agent.force_transfer(CASH, A(args[0]), A("sink"), args[1])
    if kind == "spend":
        return h.signer(args[0]).transfer(CASH, A("sink"), args[1])
    if kind == "issue_elsewhere":
        return agent.issue(OFFERED, A("founder"), args[0])
    if kind == "holders_cap":
        return h.signer("issuer").set_rules(OFFERED, {**offer["rules"], "holders_max": args[0]})
    raise AssertionError(kind)  # pragma: no cover


def read_state(h: LedgerHarness) -> dict[str, dict]:
    """Balances, supplies, reservations, subscriptions: every entry of `state`, read independently."""
    out: dict[str, dict] = {"bal": {}, "supply": {}, "reserved": {}, "sub": {}, "offering": {}}
    with h.ledger.store.read() as txn:
        for key, raw in txn.cursor(db=h.ledger.store.dbs["state"]):
            for prefix in ("bal:", "supply:", "reserved:", "offering_sub:", "offering:"):
                if key.startswith(prefix.encode()):
                    rest = key[len(prefix):]
                    name = prefix.rstrip(":").removeprefix("offering_")
                    out[name][tuple(rest.split(b"\x00", 1)) if b"\x00" in rest else rest] = decode_value(raw)
                    break
    return out


def check_block(before: dict, after: dict, receipts: list) -> None:
    """Conservation and escrow after one block."""
    for symbol in (OFFERED, CASH):
        total = sum(v[0] for (s, _), v in after["bal"].items() if s == symbol.encode())
        assert total == after["supply"][symbol.encode()][0], symbol
        previous = sum(v[0] for (s, _), v in before["bal"].items() if s == symbol.encode())
        issued = sum(e.data["amount"] for r in receipts if r.outcome.ok for e in r.events
                     if e.token == symbol and e.kind == "token.issued")
        redeemed = sum(e.data["amount"] for r in receipts if r.outcome.ok for e in r.events
                       if e.token == symbol and e.kind == "token.redeemed")
        assert total - previous == issued - redeemed, symbol
    assert sum(v[0] for (s, _), v in after["bal"].items() if s == CASH.encode()) == \
        sum(v[0] for (s, _), v in before["bal"].items() if s == CASH.encode())  # nothing issues cash here
    pending: dict[bytes, int] = {}
    for sub in after["sub"].values():
        if sub["status"] == "pending":
            pending[sub["wallet"]] = pending.get(sub["wallet"], 0) + sub["amount"]
    assert {w: n for (s, w), n in after["reserved"].items() if s == CASH.encode()} == pending
    assert not any(s == OFFERED.encode() for s, _ in after["reserved"])


def held(state: dict, symbol: str, wallet: str) -> int:
    return state["bal"].get((symbol.encode(), A(wallet)), (0,))[0]


def check_close(before: dict, after: dict, receipt: Any, offer: dict[str, Any]) -> None:
    """What a close (or a cancel) must have done, from its events and the state before and after."""
    events = list(receipt.events)
    record = after["offering"][b"P"]
    assert record["status"] in ("closed", "failed", "cancelled")
    escrow = {i: s["amount"] for (_, i), s in before["sub"].items() if s["status"] == "pending"}
    paid: dict[str, int] = {}
    units: dict[str, int] = {}
    refunded: dict[str, int] = {}
    for e in events:
        if e.kind == "offering.allocated":
            d = e.data
            price_exact = d["units"] * offer["price"]
            assert d["paid"] * offer["scale"] >= price_exact, d  # never less than the price
            assert (d["paid"] - 1) * offer["scale"] < price_exact, d  # and less than a cash unit more
            assert 0 < d["units"] and d["paid"] <= d["allocated"] <= d["subscribed"] == escrow[d["identity"].encode()]
            paid[d["identity"]], units[d["identity"]] = d["paid"], d["units"]
        elif e.kind == "offering.refunded":
            refunded[e.data["identity"]] = refunded.get(e.data["identity"], 0) + e.data["amount"]
    # refunds plus payments equal escrow, for every subscriber
    assert {i.encode(): paid.get(i, 0) + refunded.get(i, 0) for i in set(paid) | set(refunded)} == escrow
    raised = sum(paid.values())
    assert raised <= offer["raise_max"]
    if record["status"] == "closed":
        assert raised >= offer["raise_min"] and record["raised"] == raised and record["units"] == sum(units.values())
    else:
        assert raised == 0 and not units
    # every wallet moved by exactly its units and its payment; the issuer got exactly what was paid
    for wallet in WALLETS:
        identity = IDENTITY_OF[wallet]
        sub = before["sub"].get((b"P", identity.encode()))
        mine = sub is not None and sub["status"] == "pending" and sub["wallet"] == A(wallet)
        assert held(after, OFFERED, wallet) - held(before, OFFERED, wallet) == (units.get(identity, 0) if mine else 0)
        assert held(before, CASH, wallet) - held(after, CASH, wallet) == (paid.get(identity, 0) if mine else 0)
    assert held(after, CASH, "treasury") - held(before, CASH, "treasury") == raised
    # every reservation is back to zero, every subscription settled
    assert not after["reserved"]
    assert all(s["status"] != "pending" for s in after["sub"].values())
    # without exclusions, pro rata is exact
    excluded = [e for e in events if e.kind == "offering.excluded"]
    demand = sum(escrow.values())
    if record["status"] == "closed" and not excluded and demand > offer["raise_max"]:
        for e in events:
            if e.kind == "offering.allocated":
                assert e.data["allocated"] == e.data["subscribed"] * offer["raise_max"] // demand
    event(f"finish: {record['status']}, {len(excluded)} excluded, oversubscribed={demand > offer['raise_max']}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(terms, first_subscriptions, window_blocks, finish)
def test_offerings_conserve_units_and_cash_and_settle_every_escrow(t, first, plan, how):
    with tempfile.TemporaryDirectory() as tmp:
        h = LedgerHarness(os.path.join(tmp, "a"))
        mirror = LedgerHarness(os.path.join(tmp, "b"))
        try:
            offer = setup(h, t)
            for height in range(1, h.ledger.tip.height + 1):
                mirror.ledger.apply_block(*_stored_block(h, height))

            def commit(txs: list[bytes], at_s: int) -> list:
                block = h.block(txs, advance_ms=(at_s - h.now_s) * 1000)
                before = read_state(h)
                h.ledger.validate_block(block)
                result = h.ledger.apply_block(block, b"cert:" + block.hash)
                check_block(before, read_state(h), list(result.receipts))
                mirror.ledger.validate_block(block)
                assert mirror.ledger.apply_block(block, b"cert:" + block.hash).state_root == result.state_root
                return list(result.receipts)

            now_s = offer["opens_at"]
            for advance_s, ops in [(1, [("subscribe", w, k) for w, k in first]), *plan]:
                if now_s >= offer["closes_at"]:
                    break
                for op, receipt in zip(ops, commit([sign(h, op, now_s, offer) for op in ops], now_s), strict=True):
                    event(f"{op[0]}: {receipt.outcome}")
                now_s += advance_s
            agent = h.signer("agent")
            final = agent.cancel_offering("P") if how == "cancel" else agent.close_offering("P")
            at_s = max(h.now_s + 1, offer["closes_at"] if how == "close" else h.now_s + 1)
            before = read_state(h)
            [receipt] = commit([final], at_s)
            outcome = str(receipt.outcome)
            event(f"{how}: {outcome}")
            if outcome in ("0x55 offering_not_ended", "0x50 supply_cap_exceeded"):
                assert read_state(h)["sub"] == before["sub"]  # a refused close changes nothing
                before = read_state(h)
                [receipt] = commit([agent.cancel_offering("P")], max(h.now_s + 1, at_s))
            assert receipt.outcome.ok, str(receipt.outcome)
            check_close(before, read_state(h), receipt, offer)
            assert _snapshot(mirror) == _snapshot(h)
            state_before = _snapshot(h)
            h.ledger.rebuild()
            assert _snapshot(h) == state_before
        finally:
            h.close()
            mirror.close()


def _snapshot(h: LedgerHarness) -> dict[str, list[tuple[bytes, bytes]]]:
    from ledger.store import DB_NAMES

    h.ledger.catch_up()  # the read side too (blocks applied here directly are not projected yet)
    with h.ledger.store.read() as txn:
        return {name: list(txn.cursor(db=h.ledger.store.dbs[name])) for name in DB_NAMES}


def _stored_block(h: LedgerHarness, height: int) -> tuple:
    from ledger import queries
    from ledger.block import Block

    raw, cert = queries.block(h.ledger, height)
    return Block.decode(raw), cert
