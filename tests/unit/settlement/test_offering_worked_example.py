"""The worked example of docs/SETTLEMENT.md, "Primary offerings": an oversubscribed Reg D 506(c)
offering, run on a ledger with the very numbers the page shows. The page's allocation table is read
back and compared cell by cell, so the document and the ledger cannot drift apart."""

from __future__ import annotations

import calendar
import datetime
from pathlib import Path

import pytest

from ledger import layout
from ledger.testing import LedgerHarness, address_of

A = address_of
DOC = Path(__file__).resolve().parents[3] / "docs" / "SETTLEMENT.md"
MARKER = "offering-example:allocations"


def utc(*when: int) -> int:
    return calendar.timegm(datetime.datetime(*when, tzinfo=datetime.UTC).timetuple())


OPENS_AT, CLOSES_AT = utc(2027, 3, 1), utc(2027, 3, 31)
#: identity -> the name the page gives it
NAMES = {"northwind": "Northwind Capital", "blue-harbor": "Blue Harbor LP", "chen": "Dr. Mei Chen",
         "okafor-trust": "Okafor Family Trust"}


def dollars(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


@pytest.fixture
def example(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    h.standard_setup()
    h.investor("acme-robotics", wallets=("acme-treasury",))
    h.investor("founders", accredited=True)
    for identity in ("northwind", "blue-harbor", "chen", "patel"):
        h.investor(identity, accredited=True)
    h.investor("okafor-trust", accredited=False)
    h.investor("ruiz")  # KYC'd, not accredited
    kyc, agent = h.signer("kyc"), h.signer("agent")
    # the trust's accreditation letter runs out on 20 March, before the close
    assert h.run(kyc.grant_claim("okafor-trust", "accredited", utc(2027, 3, 20))).ok
    h.token("ACME-A", rules={"required_claims": ["accredited", "kyc"], "supply_cap": 2_000_000})
    h.token("USD", rules={"required_claims": ["kyc"]}, decimals=2)
    funding = {"northwind": 80_000_000, "blue-harbor": 50_000_000, "chen": 20_000_000, "okafor-trust": 10_000_000,
               "patel": 5_000_000, "ruiz": 10_000_000}
    result = h.commit(agent.issue("ACME-A", A("founders"), 1_000_000),
                      *(agent.issue("USD", A(who), cents) for who, cents in funding.items()))
    assert all(r.outcome.ok for r in result.receipts)
    yield h, funding
    h.close()


def at(h: LedgerHarness, when: int, tx: bytes) -> str:
    return str(h.commit(tx, advance_ms=(when - h.now_s) * 1000).receipts[0].outcome)


def test_the_worked_example_runs_as_the_page_says(example):
    h, funding = example
    agent = h.signer("agent")
    assert at(h, utc(2027, 2, 15), agent.open_offering(
        "ACME-A-2027", "ACME-A", "USD", price=1_250, raise_min=25_000_000, raise_max=100_000_000,
        investor_min=2_500_000, investor_max=60_000_000, opens_at=OPENS_AT, closes_at=CLOSES_AT,
        cash_wallet=A("acme-treasury"))) == "0x51 success"
    sub = lambda who, cents: h.signer(who).subscribe("ACME-A-2027", cents)  # noqa: E731
    assert at(h, utc(2027, 2, 28, 12), sub("northwind", 60_000_000)) == "0x50 offering_not_open"
    assert at(h, utc(2027, 3, 1, 9), sub("northwind", 60_000_000)) == "0x51 success"
    assert at(h, utc(2027, 3, 1, 10), sub("ruiz", 5_000_000)) == "0x57 receiver_missing_claim:accredited"
    assert str(h.ledger.compliance_check("ACME-A", A("founders"), A("ruiz"), 4_000)) \
        == "0x57 receiver_missing_claim:accredited"
    assert at(h, utc(2027, 3, 2), sub("patel", 4_000_000)) == "0x51 success"
    assert at(h, utc(2027, 3, 5), sub("okafor-trust", 7_500_000)) == "0x51 success"
    assert at(h, utc(2027, 3, 10), sub("blue-harbor", 45_000_000)) == "0x51 success"
    assert at(h, utc(2027, 3, 15), h.signer("patel").withdraw_subscription("ACME-A-2027")) == "0x51 success"
    assert at(h, CLOSES_AT - 1, sub("chen", 12_345_678)) == "0x51 success"  # 23:59:59 on 30 March
    treasury_before, supply_before = _balance(h, "USD", "acme-treasury"), _supply(h, "ACME-A")

    receipt = h.commit(agent.close_offering("ACME-A-2027"), advance_ms=(CLOSES_AT - h.now_s) * 1000).receipts[0]
    assert receipt.outcome.ok and h.now_s == CLOSES_AT

    rows = {}
    for event in receipt.events:
        if event.kind == "offering.allocated":
            d = event.data
            rows[d["identity"]] = [dollars(d["subscribed"]), dollars(d["allocated"]), f"{d['units']:,}",
                                   dollars(d["paid"]), dollars(d["subscribed"] - d["paid"])]
        elif event.kind == "offering.excluded":
            d = event.data
            rows[d["identity"]] = [dollars(7_500_000), f"excluded: `0x{d['code']:02x} {d['reason']}`", "0",
                                   "0.00", dollars(7_500_000)]
    closed = receipt.events[-1].data
    rows["total"] = [dollars(closed["subscribed"]), "", f"{closed['units']:,}", dollars(closed["raised"]),
                     dollars(closed["refunded"])]
    expected = {
        "northwind": ["600,000.00", "511,309.84", "40,904", "511,300.00", "88,700.00"],
        "blue-harbor": ["450,000.00", "383,482.38", "30,678", "383,475.00", "66,525.00"],
        "chen": ["123,456.78", "105,207.77", "8,416", "105,200.00", "18,256.78"],
        "okafor-trust": ["75,000.00", "excluded: `0x57 receiver_missing_claim:accredited`", "0", "0.00",
                         "75,000.00"],
        "total": ["1,248,456.78", "", "79,998", "999,975.00", "248,481.78"],
    }
    assert rows == expected
    assert closed["result"] == "closed" and closed["excluded"] == 1 and closed["subscribers"] == 4

    # the page shows the same table
    assert _doc_table() == {NAMES.get(k, "**total**"): v for k, v in expected.items()}

    # where the money and the shares are now
    assert _balance(h, "USD", "acme-treasury") - treasury_before == 99_997_500
    assert _supply(h, "ACME-A") - supply_before == 79_998
    for identity, (_, _, shares, paid, _) in expected.items():
        if identity == "total":
            continue
        paid_cents = int(paid.replace(",", "").replace(".", ""))
        assert _balance(h, "ACME-A", identity) == int(shares.replace(",", ""))
        assert _balance(h, "USD", identity) == funding[identity] - paid_cents
        assert _reserved(h, "USD", identity) == 0
    assert _balance(h, "USD", "patel") == funding["patel"] and _reserved(h, "USD", "patel") == 0
    assert _balance(h, "USD", "ruiz") == funding["ruiz"]


def _doc_table() -> dict[str, list[str]]:
    text = DOC.read_text()
    start, end = text.index(f"<!-- {MARKER} -->"), text.index(f"<!-- /{MARKER} -->")
    rows = {}
    for line in text[start:end].splitlines()[3:]:  # the marker, the header, the rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _read(h: LedgerHarness, key: bytes, default):
    with h.ledger.store.read() as txn:
        return h.ledger.store.state_over(txn).get(key, default)


def _balance(h: LedgerHarness, token: str, wallet: str) -> int:
    return _read(h, layout.balance(token, A(wallet)), (0, 0, False))[0]


def _reserved(h: LedgerHarness, token: str, wallet: str) -> int:
    return _read(h, layout.reserved(token, A(wallet)), 0)


def _supply(h: LedgerHarness, token: str) -> int:
    return _read(h, layout.supply(token), (0, 0))[0]

