"""The regulator's console in a real browser: a `secledger` network of processes on 127.0.0.1
(ports chosen at run time), a token with several holders and corporate actions set up through the
Python client, and Debian's Chromium driven by Playwright.

Chromium comes from the system (`make test` installs the `chromium` package when it is missing and
it runs as root; Playwright's own browser download cannot work here). Without it the tests skip
with the reason, except under CI=true, where they fail: CI must never pass by not looking.
Every process and the browser are stopped at the end, on failure too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledger.client import Action, Signer, new_key
from node.setup.keys import load_key
from node.testing import free_port_base

SECLEDGER = str(Path(sys.executable).parent / "secledger")
CHROMIUM = os.environ.get("SECLEDGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FAR_FUTURE_S = 4_102_444_800  # 2100-01-01


def unavailable(reason: str) -> None:
    """Skip, or under CI fail: a browser test that cannot run must not look like a pass there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def rpc(url: str, method: str, **params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = json.loads(reply.read())
    if "error" in answer:
        raise AssertionError(f"{method}: {answer['error']}")
    return answer["result"]


def height(url: str) -> int:
    try:
        return int(rpc(url, "chain_status")["height"])
    except OSError:
        return -1


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class Network:
    """`secledger testnet` written to a directory and each node run as `secledger start`."""

    def __init__(self, directory: Path, validators: int, observers: int) -> None:
        self.directory = directory
        base = free_port_base(2 * (validators + observers))
        out = subprocess.run([SECLEDGER, "testnet", "--validators", str(validators), "--observers", str(observers),
                              "--out", str(directory), "--port-base", str(base)],
                             check=True, capture_output=True, text=True)
        self.nodes = {n["name"]: n for n in json.loads(out.stdout)["nodes"]}
        self.processes: dict[str, subprocess.Popen] = {}
        (directory / "logs").mkdir(exist_ok=True)

    def url(self, name: str) -> str:
        return self.nodes[name]["rpc"]

    def config(self, name: str) -> Path:
        return Path(self.nodes[name]["config"])

    def start_all(self) -> None:
        for name, node in self.nodes.items():
            log = open(self.directory / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self.processes[name] = subprocess.Popen([SECLEDGER, "start", "--config", node["config"]],
                                                    stdout=log, stderr=log)
            log.close()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def log(self, name: str) -> str:
        return (self.directory / "logs" / f"{name}.log").read_text(errors="replace")


@dataclass
class Chain:
    """The network and what was put on it, for the tests to check the console against."""

    net: Network
    validator: str  # RPC URL transactions go to
    observer: str  # RPC URL the console is read from (a read-only node)
    signers: dict[str, Signer] = field(default_factory=dict)
    heights: dict[str, int] = field(default_factory=dict)
    refused: str = ""  # hash of a transfer refused in its block

    def address(self, name: str) -> str:
        return self.signers[name].address.hex()

    def submit(self, *raws: bytes) -> list[str]:
        return [rpc(self.validator, "tx_submit", tx=raw.hex())["hash"] for raw in raws]

    def commit(self, *raws: bytes) -> int:
        """Submit and wait until every one is in a block; the height of the last one."""
        hashes = self.submit(*raws)
        last = 0
        for tx_hash in hashes:
            receipt = rpc(self.validator, "tx_wait", hash=tx_hash, timeout_ms=30_000)
            assert receipt["status"] == "committed", receipt
            last = max(last, int(receipt["height"]))
        wait_until(lambda: height(self.observer) >= last, 30, f"the observer to reach height {last}")
        return last


INVESTORS = {  # identity: (country, ACME issued to its first wallet, wallets)
    "alice": ("US", 500_000, 2), "bob": ("KP", 0, 1), "carol": ("GB", 120_000, 1), "dave": ("DE", 90_050, 1),
    "erin": ("FR", 75_000, 1), "frank": ("US", 60_000, 1), "grace": ("CH", 33_333, 1), "heidi": ("JP", 1, 1),
    "ivan": ("IE", 5_000, 1),  # his KYC lapses under a transfer to him: refused in its block
}


def populate(chain: Chain) -> None:
    """Roles, identities with claims, two tokens, holders, freezes, a distribution with a claim, a
    paid and a held payment, a ballot with votes: the console has something real on every page."""
    v = chain.validator
    chain_id = rpc(v, "chain_status")["chain_id"]
    admin_key = load_key(chain.net.directory / "keys" / "admin.json")
    admin = Signer(admin_key, chain_id, int(rpc(v, "account_nonce", address=bytes(admin_key.verify_key).hex())["next_nonce"]))
    s = chain.signers
    for name in ("kyc", "issuer", "agent"):
        s[name] = Signer(new_key(), chain_id)
    for identity, (_, _, wallets) in INVESTORS.items():
        for i in range(wallets):
            s[identity if i == 0 else f"{identity}.{i}"] = Signer(new_key(), chain_id)
    top = height(v)
    chain.commit(admin.propose([Action.grant_role("claim_issuer", s["kyc"].address),
                                Action.grant_role("token_issuer", s["issuer"].address)], expires_at_height=top + 1000))
    registrations = [s["kyc"].register_identity("acme-treasury", [s["issuer"].address, s["agent"].address])]
    for identity, (country, _, wallets) in INVESTORS.items():
        addresses = [s[identity if i == 0 else f"{identity}.{i}"].address for i in range(wallets)]
        registrations.append(s["kyc"].register_identity(identity, addresses))
        registrations.append(s["kyc"].grant_claim(identity, "kyc", FAR_FUTURE_S))
        registrations.append(s["kyc"].grant_claim(identity, "country", FAR_FUTURE_S, country))
    registrations.append(s["kyc"].grant_claim("acme-treasury", "kyc", FAR_FUTURE_S))
    agent_roles = {s["agent"].address: ["corporate_actions", "freeze", "supply"]}
    chain.commit(*registrations,
                 s["issuer"].create_token("ACME", "Acme Corp common", decimals=2,
                                          rules={"required_claims": ["kyc"], "country_block": ["KP"]}, agents=agent_roles),
                 s["issuer"].create_token("ACMEP", "Acme Corp series A preferred", decimals=2,
                                          rules={"required_claims": ["kyc"]}, agents=agent_roles),
                 s["issuer"].create_token("USD", "Tokenized dollar", decimals=2, agents=agent_roles),
                 s["issuer"].set_document("ACME", "prospectus", "https://example.invalid/acme/prospectus.pdf", bytes(range(32))))
    issues = [s["agent"].issue("ACME", s[identity].address, amount) for identity, (_, amount, _) in INVESTORS.items() if amount]
    issues += [s["agent"].issue("USD", s["issuer"].address, 10_000_000),
               s["agent"].issue("ACMEP", s["carol"].address, 20_000), s["agent"].issue("ACMEP", s["frank"].address, 10_000)]
    chain.heights["issued"] = chain.commit(*issues)
    chain.heights["transferred"] = chain.commit(
        s["alice"].transfer("ACME", s["carol"].address, 25_000),
        s["alice"].transfer("ACME", s["alice.1"].address, 100_000),
        s["agent"].freeze_partial("ACME", s["dave"].address, 10_000))
    record = chain.heights["transferred"]
    now = height(v)
    chain.heights["actions"] = chain.commit(
        s["issuer"].declare_distribution("DIV-2024", "ACME", "USD", record_height=record, rate_num=1, rate_den=10,
                                         expires_at=FAR_FUTURE_S),
        s["issuer"].create_ballot("AGM-2024", "ACME", "Approve the 2024 accounts?", ["for", "against", "abstain"],
                                  record_height=record, opens_at_height=now + 1, closes_at_height=now + 10_000),
        # series A: 10 USD cents of preference per unit, senior, convertible; common participates
        s["issuer"].declare_liquidation("LIQ-2024", "USD", amount=500_000, record_height=record, expires_at=FAR_FUTURE_S,
                                        classes=[["ACMEP", 1, 10, False, None, True], ["ACME", 0, 0, True, None, False]]))
    chain.heights["voted"] = chain.commit(
        s["alice"].claim_distribution("DIV-2024"), s["carol"].vote("AGM-2024", 0), s["dave"].vote("AGM-2024", 1),
        s["erin"].vote("AGM-2024", 0))
    # dave's wallet frozen: the agent's push pays carol and holds dave's payment (kept, not forfeited).
    chain.commit(s["agent"].freeze("ACME", s["dave"].address))
    chain.heights["paid"] = chain.commit(
        s["agent"].pay_distribution("DIV-2024", [("carol", s["carol"].address), ("dave", s["dave"].address)]))
    chain.refused = refused_transfer(chain)


def refused_transfer(chain: Chain) -> str:
    """A transfer recorded with a refusal in its block: the receiver's (ivan's) KYC claim expires
    between its admission (the mempool dry-runs at the last block's time) and its block (stamped
    with the proposer's clock, later)."""
    s = chain.signers
    for _ in range(5):
        expires = int(rpc(chain.validator, "chain_status")["time_ms"]) // 1000 + 2
        chain.commit(s["kyc"].grant_claim("ivan", "kyc", expires))
        while time.time() < expires + 0.01:
            time.sleep(0.005)
        try:
            tx_hash = chain.submit(s["carol"].transfer("ACME", s["ivan"].address, 100))[0]
        except AssertionError:  # a block at or after the expiry came first: refused at admission
            s["carol"].nonce -= 1
            continue
        receipt = rpc(chain.validator, "tx_wait", hash=tx_hash, timeout_ms=30_000)
        at = int(receipt["height"])
        wait_until(lambda at=at: height(chain.observer) >= at, 30, "the observer")
        if receipt["status"] == "rejected":
            return tx_hash
    raise AssertionError("could not record a refused transfer in five tries")


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Any:
    """One validator, an observer the console is read from, and an observer with the console off."""
    net = Network(tmp_path_factory.mktemp("console") / "net", validators=1, observers=2)
    config = net.config("observer-1")
    text = config.read_text()
    assert "console = true" in text, "the generated config writes the console key"
    config.write_text(text.replace("console = true", "console = false"))
    try:
        net.start_all()
        built = Chain(net, net.url("validator-0"), net.url("observer-0"))
        wait_until(lambda: height(built.validator) >= 1 and height(built.observer) >= 0, 60, "the network to start")
        populate(built)
        yield built
    except BaseException:
        for name in net.nodes:
            print(f"--- log of {name} ---\n{net.log(name)[-4000:]}", file=sys.stderr)
        raise
    finally:
        net.stop_all()


# Module scope, not session: while Playwright's sync API is open it runs an event loop in this
# thread, and every asyncio test after it would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and shutil.which(CHROMIUM) is None:
        unavailable(f"no Chromium at {CHROMIUM} (`make test` installs Debian's chromium package when run as root)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure is "no browser"
            unavailable(f"Chromium at {CHROMIUM} does not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


class ConsolePage:
    """A browser tab on the console that records console errors and uncaught page errors."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.base = base.rstrip("/") + "/console/"
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def open(self, route: str) -> Any:
        """Go to #<route> and wait until the page has rendered; returns the Playwright page."""
        url = f"{self.base}#{route}"
        if self.page.url.startswith(self.base):
            self.page.evaluate("(hash) => { document.body.dataset.page = 'navigating'; window.location.hash = hash; }",
                               route)
        else:
            self.page.goto(url)
        self.wait_rendered()
        return self.page

    def wait_rendered(self) -> None:
        # A selector, not wait_for_function: the console's CSP (rightly) forbids the eval that needs.
        self.page.locator("body[data-page='ready'], body[data-page='failed']").wait_for(state="attached")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser, chain):
    tab = ConsolePage(browser, chain.observer)
    try:
        yield tab
    finally:
        tab.close()
