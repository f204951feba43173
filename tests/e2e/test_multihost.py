"""A consortium across real network boundaries: every node on a host of its own.

Each "host" is a Linux network namespace with one interface (a veth pair) on a bridge, and an
address in 10.203.7.0/24 that exists only inside these namespaces. The bridge lives in a namespace
of its own too, so nothing is added to the machine's own network: the test creates every
namespace, link and address it uses, all named after its pid, and removes them (and every
process inside them) when it ends, however it ends. A run that was killed outright takes its
nodes with it (PR_SET_PDEATHSIG) and leaves namespaces whose pid is gone: the next run removes
those first.

The consortium is set up as its members would: `secledger init` on each host, the cards to one
member who runs the genesis ceremony (`secledger genesis ...`), `genesis install` on each host,
then `secledger start` on each (`ip netns exec HOST ...`). Clients talk to each node's RPC on its
host's loopback, as an operator on that host would.

Needs root and `ip` (iproute2). Under CI=true it runs or fails, never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import netns
from .conftest import SECLEDGER

SUBNET = "10.203.7"
PREFIX = "slmh"
P2P_PORT = 26600
#: Where every node's RPC listens on its own host, and where the CLI asks by default.
RPC_URL = "http://127.0.0.1:26601/"


def _unavailable() -> str | None:
    return netns.unavailable()


class Hosts(netns.Hosts):
    """`count` namespaces on one bridge (tests/e2e/netns.py); host i has address 10.203.7.(11 + i)."""

    def __init__(self, count: int) -> None:
        super().__init__(count, prefix=PREFIX, subnet=SUBNET)


_die_with_parent = netns.die_with_parent


def _remove_stale() -> None:
    """Namespaces of an earlier run of this test whose process is gone (it was killed)."""
    netns.remove_stale(PREFIX)


@pytest.fixture
def hosts_factory():
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and this test {reason}")
        pytest.skip(reason)
    _remove_stale()
    made: list[Hosts] = []

    def make(count: int) -> Hosts:
        hosts = Hosts(count)
        made.append(hosts)
        try:
            hosts.create()
        except RuntimeError as exc:
            if os.environ.get("CI") != "true" and "Operation not permitted" in str(exc):
                pytest.skip(f"cannot create network namespaces here: {exc}")
            raise
        return hosts

    try:
        yield make
    finally:
        for hosts in made:
            hosts.destroy()


class Nodes:
    """`secledger start` processes, each on its host; all stopped (then killed) at the end."""

    def __init__(self, hosts: Hosts, logs: Path) -> None:
        self.hosts = hosts
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, host: int, config: Path | str) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                self.hosts.command(host, SECLEDGER, "start", "--config", str(config)), stdout=log, stderr=log,
                preexec_fn=_die_with_parent)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def tails(self) -> str:
        out = []
        for name, process in self.processes.items():
            lines = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            out.append(f"--- {name} (exit code {process.poll()}):\n" + "\n".join(lines))
        return "\n".join(out)

    def check_running(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with code {process.returncode}:\n{self.tails()}"


# Run inside a host's namespace with the venv's interpreter: ask its node (on that host's
# loopback) a few JSON-RPC questions and print the answers as one JSON document.
_ASK = r"""
import json, sys, urllib.request
def rpc(method, **params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())
what = json.loads(sys.argv[2])
try:
    if what["kind"] == "status":
        out = rpc("chain_status")["result"]
    else:
        out = [[b["hash"], b["state_root"]] for b in (rpc("block_get", height=h)["result"]
                                                     for h in range(1, what["to"] + 1))]
except OSError as exc:
    out = {"error": str(exc)}
print(json.dumps(out))
"""

# Run inside host 0: the consortium's first transactions, phase by phase (each phase submitted
# at once, then waited for): two members approve the first member's proposal to appoint a KYC
# provider and an issuer; identities, a token, an issue and transfers follow.
_DRIVE = r"""
import json, sys, urllib.request
from ledger.client import Action, Signer
from node.setup.keys import load_key
URL = "http://127.0.0.1:26601/"
def rpc(method, **params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(URL, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=40) as reply:
        answer = json.loads(reply.read())
    if "error" in answer:
        raise SystemExit(f"{method}: {answer['error']}")
    return answer["result"]
keys = {name: load_key(path) for name, path in json.loads(sys.argv[1]).items()}
chain = rpc("chain_status")["chain_id"]
A = lambda name: bytes(keys[name].verify_key)
def signer(name):
    return Signer(keys[name], chain, rpc("account_nonce", address=A(name).hex())["next_nonce"])
def phase(*raws):
    hashes = [rpc("tx_submit", tx=raw.hex())["hash"] for raw in raws]
    for tx_hash in hashes:
        done = rpc("tx_wait", hash=tx_hash, timeout_ms=30000)
        if done["status"] != "committed":
            raise SystemExit(f"not committed: {done}")
top = rpc("chain_status")["height"]
phase(signer("m0").propose([Action.grant_role("claim_issuer", A("kyc")),
                            Action.grant_role("token_issuer", A("issuer"))], expires_at_height=top + 500))
phase(signer("m1").approve(1), signer("m2").approve(1))
kyc, issuer = signer("kyc"), signer("issuer")
phase(kyc.register_identity("alice", [A("alice")]), kyc.register_identity("bob", [A("bob")]),
      issuer.create_token("ACME", "Acme Corp common", agents={A("issuer"): ["supply"]}))
phase(issuer.issue("ACME", A("alice"), 1000))
alice = signer("alice")
phase(*[alice.transfer("ACME", A("bob"), 10) for _ in range(3)])
print(json.dumps({"ok": True}))
"""


def ask(hosts: Hosts, i: int, **what: object) -> object:
    result = subprocess.run(hosts.command(i, sys.executable, "-I", "-S", "-c", _ASK, RPC_URL, json.dumps(what)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def height(hosts: Hosts, i: int) -> int:
    status = ask(hosts, i, kind="status")
    return status["height"] if "height" in status else -1


def wait_until(predicate, timeout_s: float, what: str, nodes: Nodes) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        nodes.check_running()
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{nodes.tails()}")


def cli(*argv: str, host: tuple[Hosts, int] | None = None) -> dict:
    command = [SECLEDGER, *argv] if host is None else host[0].command(host[1], SECLEDGER, *argv)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (argv, result.stderr)
    return json.loads(result.stdout) if result.stdout.strip() else {}


def in_parallel(calls) -> list:
    with ThreadPoolExecutor(max_workers=2) as pool:  # a shared 2-core machine
        return list(pool.map(lambda call: call(), calls))


def test_a_consortium_on_five_hosts_set_up_by_its_members(hosts_factory, tmp_path):
    hosts = hosts_factory(5)
    validators, observer = range(4), 4
    homes = [tmp_path / f"host-{i}" for i in range(5)]
    # On each host, its member's operator: keys made there, and a card to send.
    in_parallel([lambda i=i: cli("init", "--home", str(homes[i]), "--moniker", f"bank-{i}",
                                 "--listen", f"{hosts.address(i)}:{P2P_PORT}",
                                 "--external-address", f"{hosts.address(i)}:{P2P_PORT}") for i in validators]
                + [lambda: cli("init", "--home", str(homes[observer]), "--moniker", "regulator", "--observer")])
    members = tmp_path / "members"
    for i, shown in enumerate(in_parallel([lambda i=i: cli("keys", "new", str(members / f"m{i}.json"))
                                           for i in validators])):
        (members / f"m{i}.pub.json").write_text(json.dumps(shown))  # what member i sends: `keys show` output
    assert all(oct((homes[i] / "keys" / "node.json").stat().st_mode & 0o777) == "0o600" for i in range(5))

    # The ceremony, run by one member from the cards and public keys the others sent.
    genesis = tmp_path / "ceremony" / "genesis.toml"
    cli("genesis", "new", "--genesis", str(genesis), "--chain-id", "consortium-1")
    for i in validators:
        cli("genesis", "add-member", "--genesis", str(genesis), "--id", f"bank-{i}", "--name", f"Bank {i} plc",
            "--key", str(members / f"m{i}.pub.json"))
    cli("genesis", "set-thresholds", "--genesis", str(genesis), "--all", "2/3")
    for i in validators:
        cli("genesis", "add-validator", "--genesis", str(genesis), "--card", str(homes[i] / "card.json"))
    summary = cli("genesis", "add-observer", "--genesis", str(genesis), "--card", str(homes[observer] / "card.json"))
    assert summary["complete"] and summary["validators"] == [f"bank-{i}" for i in validators]
    agreed = cli("genesis", "show", "--genesis", str(genesis))["genesis_hash"]

    # Each host installs the genesis it received, checks the hash, and starts its node.
    cards = [str(homes[i] / "card.json") for i in validators]
    installed = in_parallel([lambda i=i: cli("genesis", "install", "--home", str(homes[i]), "--genesis", str(genesis),
                                             "--card", *cards) for i in range(5)])
    assert {r["genesis_hash"] for r in installed} == {agreed}
    assert all(len(r["peers"]) == (3 if i in validators else 4) for i, r in enumerate(installed))
    nodes = Nodes(hosts, tmp_path / "logs")
    try:
        for i in range(5):
            nodes.start(f"host-{i}", i, homes[i] / "config.toml")
        wait_until(lambda: all(height(hosts, i) >= 2 for i in range(5)), 30, "every host to commit", nodes)
        assert ask(hosts, observer, kind="status")["genesis_hash"] == agreed

        # Transactions, from a client on host 0.
        people = tmp_path / "people"
        for name in ("kyc", "issuer", "alice", "bob"):
            subprocess.run([SECLEDGER, "keys", "new", str(people / f"{name}.json")], check=True, capture_output=True)
        key_files = {**{f"m{i}": str(members / f"m{i}.json") for i in validators},
                     **{name: str(people / f"{name}.json") for name in ("kyc", "issuer", "alice", "bob")}}
        driven = subprocess.run(hosts.command(0, sys.executable, "-c", _DRIVE, json.dumps(key_files)),
                                capture_output=True, text=True, timeout=120)
        assert driven.returncode == 0, driven.stderr + nodes.tails()

        # Host 3's cable is cut: the other three go on (30 of 40 power), and take a transfer.
        hosts.cut(3)
        cut_at = max(height(hosts, i) for i in (0, 1, 2))
        cli("tx", "transfer", "--token", "ACME", "--to", key_files["bob"], "--amount", "5",
            "--key", key_files["alice"], host=(hosts, 1))
        wait_until(lambda: min(height(hosts, i) for i in (0, 1, 2)) >= cut_at + 3, 30,
                   "three validators to go on without the fourth", nodes)
        assert height(hosts, 3) <= cut_at + 1  # it saw nothing of it
        hosts.heal(3)
        target = max(height(hosts, i) for i in (0, 1, 2))
        wait_until(lambda: all(height(hosts, i) >= target for i in range(5)), 40, "host 3 to catch up", nodes)

        # Every host holds the same blocks and state roots, and the observer the same balances.
        top = min(height(hosts, i) for i in range(5))
        chains = [ask(hosts, i, kind="blocks", to=top) for i in range(5)]
        assert all(chain == chains[0] for chain in chains), "the hosts disagree on blocks or state roots"
        balances = [cli("query", "balance", "ACME", key_files[name], host=(hosts, observer))
                    for name in ("alice", "bob")]
        assert [b["balance"] for b in balances] == ["965", "35"], balances
        nodes.check_running()
    finally:
        nodes.stop_all()


def test_testnet_hosts_writes_a_network_that_runs_on_three_hosts(hosts_factory, tmp_path):
    """`secledger testnet --hosts`: 4 validators and an observer spread over 3 hosts in turn."""
    hosts = hosts_factory(3)
    out = tmp_path / "net"
    written = cli("testnet", "--out", str(out), "--hosts", ",".join(hosts.address(i) for i in range(3)),
                  "--chain-id", "spread-1")
    addresses = [hosts.address(i) for i in range(3)]
    placed = {n["name"]: addresses.index(n["host"]) for n in written["nodes"]}
    assert placed == {"validator-0": 0, "validator-1": 1, "validator-2": 2, "validator-3": 0, "observer-0": 1}
    nodes = Nodes(hosts, tmp_path / "logs")
    try:
        for n in written["nodes"]:
            nodes.start(n["name"], placed[n["name"]], n["config"])

        def height_of(name: str, url: str) -> int:
            result = subprocess.run(hosts.command(placed[name], sys.executable, "-I", "-S", "-c", _ASK, url,
                                                  json.dumps({"kind": "status"})),
                                    capture_output=True, text=True, timeout=30)
            return json.loads(result.stdout).get("height", -1)

        wait_until(lambda: all(height_of(n["name"], n["rpc"]) >= 3 for n in written["nodes"]), 30,
                   "every node on the three hosts to commit", nodes)
    finally:
        nodes.stop_all()
