"""The worked DvP trade of docs/SETTLEMENT.md ("Worked example"), step by step: the same parties,
legs, amounts, codes and balances. The balances table of the document is read from the document
itself and compared with the ledger's, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from ledger import queries
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of

A = address_of
DOC = Path(__file__).resolve().parents[3] / "docs" / "SETTLEMENT.md"

SHARES, CASH = "ACME", "USDD"
PRICE_CENTS = 4_125  # USD 41.25 a share
QUANTITY = 1_200
CONSIDERATION = QUANTITY * PRICE_CENTS  # USD 49,500.00
FEE = CONSIDERATION // 1_000  # 0.10 %: USD 49.50


def _doc_balances() -> dict[tuple[str, str], tuple[int, int]]:
    """(party, token) -> (before, after), from the table between the worked-example markers."""
    text = DOC.read_text()
    table = text.split("<!-- worked-example:balances -->")[1].split("<!-- /worked-example:balances -->")[0]
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in (SHARES, CASH):
            out[(cells[0], cells[1])] = tuple(int(re.sub(r"[ ,]", "", c)) for c in cells[2:])
    return out


def _balances(h: LedgerHarness) -> dict[tuple[str, str], int]:
    names = {"Northwind Pension Fund": "northwind", "Bluebird Capital": "bluebird", "Harbor ATS": "harbor"}
    return {(party, token): queries.balance(h.ledger, token, A(wallet))["balance"]
            for party, wallet in names.items() for token in (SHARES, CASH)}


def test_the_worked_dvp_trade(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"))
    try:
        h.standard_setup()
        # the parties: two investors and the venue's own wallet, each a verified identity
        h.investor("northwind", accredited=True, country="US", investor_type="institutional")
        h.investor("bluebird", accredited=True, country="GB", investor_type="professional")
        h.investor("harbor", country="US")
        h.investor("carol", accredited=True, country="US")
        assert h.run(h.signer("admin").grant_role("venue_operator", A("harbor"))).ok
        h.token(SHARES, rules={"required_claims": ["accredited", "kyc"], "country_allow": ["GB", "US"]})
        h.token(CASH, rules={"required_claims": ["kyc"]}, decimals=2)
        agent = h.signer("agent")
        assert all(r.outcome.ok for r in h.commit(agent.issue(SHARES, A("northwind"), 5_000),
                                                  agent.issue(CASH, A("bluebird"), 200_000_000)).receipts)
        # Bluebird's accreditation was granted for a short time and lapses before settlement
        kyc = h.signer("kyc")
        assert h.run(kyc.grant_claim("bluebird", "accredited", h.now_s + 3_600)).ok
        before = _balances(h)

        # 1. the venue enters the matched trade: three legs, settled by the venue, two days to settle
        venue = h.signer("harbor")
        expires_at = h.now_s + 2 * 86_400
        result = h.commit(venue.create_instruction(
            [(SHARES, A("northwind"), A("bluebird"), QUANTITY), (CASH, A("bluebird"), A("northwind"), CONSIDERATION),
             (CASH, A("bluebird"), A("harbor"), FEE)],
            settlement_type="manual", venue=A("harbor"), expires_at=expires_at, reference="HBR-000117"))
        assert result.receipts[0].outcome.ok
        iid = result.receipts[0].events[0].data["id"]
        assert iid == 1

        # 2. Northwind affirms: 1,200 shares are reserved; selling them again is refused
        assert h.run(h.signer("northwind").affirm_instruction(iid)).ok
        assert queries.settlement_instruction(h.ledger, iid)["missing_affirmations"] == [A("bluebird")]
        assert str(h.run(h.signer("northwind").transfer(SHARES, A("carol"), 4_000))) == \
            "0x52 insufficient_unreserved_balance"
        assert h.run(h.signer("northwind").transfer(SHARES, A("carol"), 3_800)).ok  # the unreserved rest may go
        assert h.run(h.signer("carol").transfer(SHARES, A("northwind"), 3_800)).ok  # (and comes back)

        # 3. Bluebird affirms its two cash legs: USD 49,549.50 reserved
        assert h.run(h.signer("bluebird").affirm_instruction(iid)).ok
        assert queries.settlement_check(h.ledger, iid)["ok"] is True

        # 4. the accreditation lapses; the venue's execution fails on leg 0 and nothing moves
        h.commit(advance_ms=3_600 * 1000)
        check = queries.settlement_check(h.ledger, iid, time_s=h.now_s + 1)
        assert (check["leg"], check["code"], check["reason"]) == (0, 0x57, "receiver_missing_claim:accredited")
        receipt = h.commit(venue.execute_instruction(iid)).receipts[0]
        assert receipt.outcome.ok and [e.kind for e in receipt.events] == ["settlement.failed"]
        view = queries.settlement_instruction(h.ledger, iid)
        assert view["status"] == "pending"
        assert {k: view["last_failure"][k] for k in ("leg", "code", "reason")} == {
            "leg": 0, "code": 0x57, "reason": "receiver_missing_claim:accredited"}
        assert _balances(h) == before

        # 5. the claim issuer renews the claim; the venue executes again: every leg moves at once
        assert h.run(kyc.grant_claim("bluebird", "accredited", FAR_FUTURE_S)).ok
        receipt = h.commit(venue.execute_instruction(iid)).receipts[0]
        assert [e.kind for e in receipt.events] == ["token.transferred"] * 3 + ["settlement.settled"]
        assert queries.settlement_instruction(h.ledger, iid)["status"] == "settled"
        after = _balances(h)
        assert {key: (before[key], after[key]) for key in before} == _doc_balances()
        assert sum(after[(p, CASH)] for p, _ in after) == sum(before[(p, CASH)] for p, _ in before)
    finally:
        h.close()
