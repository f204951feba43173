"""The regulator's console (node/console/, docs/CONSOLE.md) in Chromium, against a real network.

SECLEDGER_CONSOLE_SCREENSHOTS=1 also saves a screenshot of each page to docs/console/ (the ones
docs/CONSOLE.md shows); otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from ledger.tx import decode_transaction

from .conftest import FAR_FUTURE_S, Chain, rpc, wait_until

DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"


def pages(chain: Chain) -> list[tuple[str, str]]:
    """(screenshot name, route) of every page, with real data in each."""
    frozen = rpc(chain.observer, "events_query", kind="token.partially_frozen", limit=1)["events"][0]["tx"]
    return [
        ("tokens", "/tokens"),
        ("token", "/token/ACME"),
        ("captable-picker", "/captable"),
        ("captable", f"/captable/ACME?height={chain.heights['transferred']}"),
        ("captable-wallets", f"/captable/ACME?height={chain.heights['transferred']}&view=wallet"),
        ("identity", "/identity/alice"),
        ("identity-by-wallets", "/identity/alice?source=wallets"),
        ("identity-search", "/identity"),
        ("wallet", f"/identity?address={chain.address('carol')}"),
        ("feed", "/feed?token=ACME"),
        ("blocks", "/blocks"),
        ("block", f"/block/{chain.heights['transferred']}"),
        ("tx", f"/tx/{chain.refused}"),
        ("tx-committed", f"/tx/{frozen}"),
        ("actions", "/actions/ACME"),
        ("actions-all", "/actions"),
        ("distribution", "/distribution/DIV-2024?identity=alice"),
        ("liquidation", "/distribution/LIQ-2024"),
        ("ballot", "/ballot/AGM-2024"),
        ("dryrun", "/dryrun?token=ACME&from=alice&to=bob&amount=10"),
        ("about", "/about"),
    ]


#: The screenshots docs/CONSOLE.md shows.
DOC_SHOTS = frozenset({"tokens", "token", "captable", "captable-wallets", "identity", "feed", "blocks", "block", "tx",
                       "actions", "distribution", "liquidation", "ballot", "dryrun"})


def test_every_page_loads_without_console_errors(console, chain, tmp_path):
    for_docs = bool(os.environ.get("SECLEDGER_CONSOLE_SCREENSHOTS"))
    shots = DOCS if for_docs else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    for name, route in pages(chain):
        page = console.open(route)
        assert page.evaluate("document.body.dataset.page") == "ready", (route, page.inner_text("main"))
        assert page.locator("main h1").count() == 1, route
        assert page.locator("main .notice.error").count() == 0, (route, page.inner_text("main"))
        text = page.inner_text("body")
        for slip in ("null", "undefined", "NaN", "[object ", "Infinity"):
            assert slip not in text, (route, slip)
        assert console.errors == [], (route, console.errors)
        if name == "feed":  # something to see: a transfer, live
            page.locator("#feed-status[data-state='live']").wait_for()
            tx_hash = chain.submit(chain.signers["frank"].transfer("ACME", chain.signers["grace"].address, 100))[0]
            page.locator(f"#feed-rows tr[data-tx='{tx_hash}']").wait_for(timeout=5_000)
        if name in DOC_SHOTS or not for_docs:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    # The validator serves the console as well as the observer.
    page = console.page
    page.goto(chain.validator.rstrip("/") + "/console/#/tokens")
    console.wait_rendered()
    assert page.locator("tr[data-token='ACME']").count() == 1
    assert console.errors == []


def test_tokens_page_shows_supply_holders_and_pause(console, chain):
    page = console.open("/token/ACME")
    info = rpc(chain.observer, "token_get", token="ACME")
    text = page.inner_text("main")
    assert f"{int(info['total_supply']) // 100:,}" in text  # decimals 2: base units / 100, grouped
    assert "prospectus" in text and "country_block" in text
    page = console.open("/tokens")
    row = page.locator("tr[data-token='ACME']")
    assert row.locator("td").nth(3).inner_text() == str(info["holder_count"])


def holders_at(chain: Chain, at: int) -> list[tuple[str, int]]:
    rows, after = [], None
    while True:
        params = {"token": "ACME", "height": at, "limit": 3}  # small pages: the paging is exercised too
        if after:
            params["after"] = after
        page = rpc(chain.observer, "token_holders", **params)
        rows += [(h["identity"], int(h["balance"])) for h in page["holders"]]
        after = page["next"]
        if not after:
            return rows


def table_rows(page) -> list[tuple[str, int]]:
    return [(r.get_attribute("data-identity"), int(r.get_attribute("data-balance")))
            for r in page.locator("tr.holder").all()]


@pytest.mark.parametrize("at_key", ["issued", "transferred"])
def test_cap_table_at_a_height_matches_token_holders(console, chain, at_key):
    at = chain.heights[at_key]
    expected = holders_at(chain, at)
    assert len(expected) >= 6
    page = console.open(f"/captable/ACME?height={at}")
    assert f"at height {at}" in page.inner_text("main h1")
    assert table_rows(page) == expected
    # Percentages are exact: each identity's share of the supply at that height, to 4 places.
    total = sum(balance for _, balance in expected)
    assert int(rpc(chain.observer, "token_supply", token="ACME", height=at)["total_supply"]) == total
    first = page.locator("tr.holder").first.locator("td").nth(2).inner_text()
    identity, balance = expected[0]
    scaled = (balance * 100 * 10_000 * 2 + total) // (2 * total)
    assert first == f"{scaled // 10_000}.{scaled % 10_000:04d} %"
    # Paged two at a time, following "Next page", the rows are the same.
    page = console.open(f"/captable/ACME?height={at}&limit=50")
    assert table_rows(page) == expected
    # By wallet: each identity's wallets add up to its balance at that height.
    page = console.open(f"/captable/ACME?height={at}&view=wallet")
    by_identity: dict[str, int] = {}
    for row in page.locator("tr.wallet").all():
        by_identity[row.get_attribute("data-identity")] = (by_identity.get(row.get_attribute("data-identity"), 0)
                                                           + int(row.get_attribute("data-balance")))
    assert sorted(by_identity.items()) == sorted(expected)


def test_cap_table_pages_and_picks_a_height_by_time_and_exports_csv(console, chain):
    at = chain.heights["transferred"]
    expected = holders_at(chain, at)
    page = console.open(f"/captable/ACME?height={at}&limit=3")
    seen = table_rows(page)
    while page.get_by_role("link", name="Next page").count():
        page.evaluate("document.body.dataset.page = 'navigating'")
        page.get_by_role("link", name="Next page").click()
        console.wait_rendered()
        seen += table_rows(page)
    assert seen == expected
    # A time maps to the last block at or before it.
    block_time = int(rpc(chain.observer, "block_get", height=at)["time_ms"])
    next_time = int(rpc(chain.observer, "block_get", height=at + 1)["time_ms"])
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(block_time / 1000)) + f".{block_time % 1000:03d}Z"
    if next_time > block_time:
        page = console.open(f"/captable/ACME?time={urllib.parse.quote(moment)}")
        assert f"at height {at}" in page.inner_text("main h1")
        assert table_rows(page) == expected
    # The form, by keyboard: type a height, press Enter.
    page = console.open("/captable/ACME")
    page.get_by_label("Height").fill(str(at))
    page.evaluate("document.body.dataset.page = 'navigating'")
    page.get_by_label("Height").press("Enter")
    console.wait_rendered()
    assert f"height={at}" in page.url and table_rows(page) == expected
    # CSV of the whole table.
    with page.expect_download() as download:
        page.get_by_role("button", name=f"Download the whole cap table at height {at} as CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("token,height,identity,balance_base_units")
    assert [(line.split(",")[2], int(line.split(",")[3])) for line in lines[1:]] == expected
    assert console.errors == []


def test_a_transfer_appears_in_the_live_feed_within_two_seconds(console, chain):
    page = console.open("/feed?token=ACME")
    page.locator("#feed-status[data-state='live']").wait_for()
    tx_hash = chain.submit(chain.signers["frank"].transfer("ACME", chain.signers["grace"].address, 1_000))[0]
    started = time.monotonic()
    page.locator(f"#feed-rows tr[data-tx='{tx_hash}'][data-kind='token.transferred']").wait_for(timeout=2_000)
    assert time.monotonic() - started < 2.0
    # Filtered by identity (and kind): another identity's transfer does not show.
    page = console.open("/feed?kind=token.transferred&identity=grace")
    page.locator("#feed-status[data-state='live']").wait_for()
    other, mine = chain.submit(chain.signers["erin"].transfer("ACME", chain.signers["carol"].address, 500),
                               chain.signers["frank"].transfer("ACME", chain.signers["grace"].address, 700))
    page.locator(f"#feed-rows tr[data-tx='{mine}']").wait_for(timeout=2_000)
    rpc(chain.validator, "tx_wait", hash=other, timeout_ms=10_000)
    assert page.locator(f"#feed-rows tr[data-tx='{other}']").count() == 0
    # Replayed from a height (the node's `from_height`), then live: the issues of the set-up.
    issued = rpc(chain.observer, "events_query", token="ACME", kind="token.issued", limit=1000)["events"]
    page = console.open(f"/feed?token=ACME&kind=token.issued&from={issued[0]['height']}")
    page.locator("#feed-rows tr.event").nth(len(issued) - 1).wait_for(timeout=5_000)
    shown = [r.get_attribute("data-tx") for r in page.locator("#feed-rows tr.event").all()]
    assert shown == [e["tx"] for e in reversed(issued)]  # newest first, each once
    assert console.errors == []


@pytest.mark.parametrize(("sender", "receiver", "amount"), [
    ("alice", "bob", "10"),  # bob's country is blocked: 0x57
    ("alice", "carol", "12.5"),  # allowed: 0x51
    ("heidi", "carol", "5"),  # heidi holds 0.01: 0x52
])
def test_the_dry_run_form_shows_the_code_of_compliance_check(console, chain, sender, receiver, amount):
    page = console.open("/dryrun")
    page.get_by_label("Token (T)").select_option("ACME")
    page.get_by_label("Sender (A)").fill(sender)
    page.get_by_label("Receiver (B)").fill(chain.address(receiver))
    page.get_by_label("Amount (N), in token units").fill(amount)
    page.evaluate("document.body.dataset.page = 'navigating'")
    page.get_by_role("button", name="Check").click()
    console.wait_rendered()
    verdict = page.locator("#dryrun-answer .verdict")
    verdict.wait_for()
    base = int(round(float(amount) * 100))
    expected = rpc(chain.observer, "compliance_check", token="ACME", sender=chain.address(sender),
                   receiver=chain.address(receiver), amount=amount_param(chain, "compliance_check", "amount", base))
    assert verdict.get_attribute("data-code") == expected["code"]
    assert expected["reason"] in verdict.inner_text()
    assert console.errors == []


def amount_param(chain: Chain, method: str, param: str, value: int) -> int | str:
    """An amount in the type the node declares for it: a JSON integer, or a decimal string (u64)."""
    methods = rpc(chain.observer, "rpc.discover")["methods"]
    schema = next(p["schema"] for m in methods if m["name"] == method for p in m["params"] if p["name"] == param)
    return value if "integer" in ([schema["type"]] if isinstance(schema["type"], str) else schema["type"]) else str(value)


def raw_get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET with the path sent exactly as given (no client-side normalisation of '..')."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_why_a_transfer_was_refused(console, chain):
    receipt = rpc(chain.observer, "tx_get", hash=chain.refused)
    assert receipt["status"] == "rejected" and receipt["code"] == "0x57"
    page = console.open(f"/tx/{chain.refused}")
    verdict = page.locator("main .notice.refused [data-code]")
    assert verdict.get_attribute("data-code") == receipt["code"]
    assert receipt["reason"] in verdict.inner_text() and "invalid receiver" in page.inner_text("main .notice.refused")
    # The same transaction in its block, and in the sender's history.
    page = console.open(f"/block/{receipt['height']}")
    row = page.locator(f"tr.tx[data-hash='{chain.refused}']")
    assert row.locator("[data-code]").get_attribute("data-code") == "0x57"
    page = console.open("/identity/ivan")
    assert page.locator(f"tr.event[data-tx='{chain.refused}'][data-kind='tx.rejected']").count() == 1
    assert console.errors == []


def test_the_static_route_serves_files_with_types_and_policy_and_refuses_traversal(chain):
    url = chain.observer
    status, headers, body = raw_get(url, "/console/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<main" in body
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy.replace("'self'", "") and "*" not in policy and "unsafe" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    for path, kind in (("/console/js/app.js", "text/javascript"), ("/console/console.css", "text/css"),
                       ("/console/favicon.svg", "image/svg+xml"), ("/console/index.html", "text/html")):
        status, headers, _ = raw_get(url, path)
        assert status == 200 and headers["content-type"].startswith(kind), path
        assert "content-security-policy" in headers
    assert raw_get(url, "/console")[0] in (301, 302, 307, 308)
    secret = Path(chain.net.config("observer-0")).name
    for path in ("/console/../../node/setup/config.py", "/console/%2e%2e/%2e%2e/node/setup/config.py",
                 "/console/..%2f..%2fnode%2fconfig.py", "/console/js/../../__init__.py", "/console/%2e%2e%2f__init__.py",
                 "/console/..\\..\\__init__.py", "/console//etc/passwd", "/console/%2fetc%2fpasswd",
                 "/console/static/index.html", f"/console/../{secret}", "/console/js/", "/console/.hidden",
                 "/console/%00index.html", "/console/index.html%00.js"):
        status, _, body = raw_get(url, path)
        assert status in (400, 404, 405), (path, status)
        assert b"import" not in body and b"root:" not in body and b"[node]" not in body, path


def test_the_console_can_be_turned_off_by_config(chain):
    off = chain.net.url("observer-1")
    wait_until(lambda: _answers(off), 30, "observer-1 to answer")
    for path in ("/console/", "/console/js/app.js", "/console"):
        assert raw_get(off, path)[0] == 404, path
    assert int(rpc(off, "chain_status")["height"]) >= 0  # the JSON-RPC is on as ever


def _answers(url: str) -> bool:
    try:
        rpc(url, "chain_status")
        return True
    except OSError:
        return False


def units(amount: int, decimals: int) -> str:
    """As the console writes amounts: grouped thousands, no trailing zeros in the fraction."""
    whole, fraction = divmod(amount, 10**decimals)
    text = f"{whole:,}"
    digits = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{text}.{digits}" if digits else text


def event_rows(page) -> list[tuple[str, str]]:
    return [(r.get_attribute("data-tx"), r.get_attribute("data-kind")) for r in page.locator("tr.event").all()]


def test_identity_page_shows_everything_the_identity_did(console, chain):
    events, after = [], None
    while True:
        page_ = rpc(chain.observer, "identity_history", identity="alice", limit=1000, **({"after": after} if after else {}))
        events += [(e["tx"], e["kind"]) for e in page_["events"]]
        if not (after := page_["next"]):
            break
    page = console.open("/identity/alice")
    assert event_rows(page) == events
    assert {"identity.registered", "claim.granted", "token.issued", "token.transferred", "distribution.paid"} <= \
        {kind for _, kind in events}
    text = page.inner_text("main")
    assert "country" in text and "US" in text and "2100-01-01" in text  # claims with expiry
    # Without identity_history: events_query by each wallet, merged in chain order, the same
    # events but those that name the identity alone (its registration and claims).
    by_wallet = event_rows(console.open("/identity/alice?source=wallets"))
    assert by_wallet == [e for e in events if e in by_wallet] and len(by_wallet) >= 4
    assert {kind for _, kind in events if (_, kind) not in by_wallet} <= {"identity.registered", "claim.granted"}
    assert console.errors == []


def test_distribution_page_shows_paid_held_and_unclaimed(console, chain):
    page = console.open("/distribution/DIV-2024")
    record = rpc(chain.observer, "distribution_get", id="DIV-2024")
    dave = rpc(chain.observer, "distribution_get", id="DIV-2024", identity="dave")["identity"]
    text = page.inner_text("main")
    held = int(dave["entitlement"])
    unclaimed = int(record["remaining"]) - held
    assert held > 0 and f"{units(held, 2)} USD for 1 identities" in text
    assert f"Unclaimed (neither paid nor held)\n{units(unclaimed, 2)} USD" in text
    assert "payment_held:wallet_frozen" in text
    assert console.errors == []


def test_liquidation_page_shows_the_waterfall(console, chain):
    page = console.open("/distribution/LIQ-2024")
    declared = rpc(chain.observer, "events_query", kind="liquidation.declared", limit=10)["events"][0]["data"]
    text = page.inner_text("main")
    assert "Waterfall result" in text
    for c in declared["classes"]:
        assert f"{c['token']}\t{int(c['units'])}\t{units(int(c['payout']), 2)}" in text
    rows = page.locator("table", has=page.locator("caption", has_text="Entitlements by identity")).locator("tbody tr")
    assert rows.count() == len(declared["entitlements"])
    assert sum(int(amount) for _, amount in declared["entitlements"]) == int(declared["distributed"])
    assert console.errors == []


def test_the_console_decodes_raw_transactions_as_the_ledger_does(console, chain):
    """The fallback for nodes whose block_get gives raw transactions: msgpack and SHA-256 in the page."""
    console.open("/about")
    chain_id = rpc(chain.observer, "chain_status")["chain_id"]
    signer = chain.signers["alice"]
    raws = [signer.sign("token.transfer", {"token": "ACME", "to": chain.signers["carol"].address, "amount": 2**64 - 1}),
            chain.signers["issuer"].declare_distribution("X", "ACME", "USD", record_height=1, rate_num=3, rate_den=7,
                                                         expires_at=FAR_FUTURE_S),
            bytes.fromhex(chain.signers["kyc"].register_identity("z" * 64, [bytes(32), bytes(range(32))]).hex())]
    for raw in raws:
        tx = decode_transaction(raw, chain_id=chain_id, verify_signature=False)
        got = console.page.evaluate("""async (hex) => {
            const codec = await import('./js/codec.js');
            const tx = await codec.decodeTx(hex);
            const plainHash = codec.sha256Plain(codec.hexToBytes(hex));
            return JSON.stringify({...tx, plainHash}, (k, v) => typeof v === 'bigint' ? `big:${v}` : v);
        }""", raw.hex())
        decoded = json.loads(got)
        assert decoded["hash"] == decoded["plainHash"] == hashlib.sha256(raw).hexdigest() == tx.hash.hex()
        assert (decoded["signer"], decoded["nonce"], decoded["kind"]) == (tx.signer.hex(), tx.nonce, tx.kind)
        expected = {k: (v.hex() if isinstance(v, bytes) else [x.hex() for x in v] if isinstance(v, list) and v
                        and isinstance(v[0], bytes) else f"big:{v}" if isinstance(v, int) and v > 2**53 else v)
                    for k, v in tx.body.items()}
        assert decoded["body"] == expected
    assert console.errors == []


def test_usable_by_keyboard_with_labels_and_visible_focus(console, chain):
    page = console.open("/tokens")
    page.evaluate("document.getElementById('skip-link').focus()")  # where the first Tab from the address bar lands
    assert page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"  # focus is visible
    for expected in ("Tokens", "Cap table"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == expected
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.evaluate("document.body.dataset.page = 'navigating'")
    page.keyboard.press("Enter")
    console.wait_rendered()
    assert page.url.endswith("#/captable") and page.evaluate("document.activeElement.tagName") == "H1"
    page.keyboard.press("Tab")  # from the page's heading to its first link: a token's cap table
    assert page.evaluate("document.activeElement.textContent").startswith("ACME")
    page.evaluate("document.body.dataset.page = 'navigating'")
    page.keyboard.press("Enter")
    console.wait_rendered()
    assert page.inner_text("main h1").startswith("Cap table of ACME")
    # Every form control of every page has a label; every table a caption and column headers.
    for _, route in pages(chain):
        page = console.open(route)
        unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.name || e.id)""")
        assert unlabelled == [], (route, unlabelled)
        assert page.evaluate("[...document.querySelectorAll('table')].every(t => t.caption && t.tHead)"), route
    assert console.errors == []


def test_errors_are_shown_in_the_page(console, chain):
    for route, words in (("/captable/NOPE", "no token"), ("/block/99999999", "no block"),
                         ("/identity/nobody", "no identity"), ("/distribution/NOPE", "no distribution"),
                         ("/no-such-page", "no console page"), ("/captable/ACME?height=99999999", "not a committed height")):
        page = console.open(route)
        box = page.locator("main .notice.error")
        assert box.count() >= 1 and words in box.first.inner_text().lower(), (route, page.inner_text("main"))
        assert box.first.get_attribute("role") == "alert"
        assert page.locator("main h1").count() == 1
    assert console.errors == []
