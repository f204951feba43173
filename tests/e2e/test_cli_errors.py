"""Bad input through the real `secledger` command: one line on stderr naming the flag, argument
or file, the right exit code (2 usage, 1 failed), and never a traceback. No node is needed: the
values are refused before one is asked, and "connection refused" uses a port nobody listens on.
Also: `secledger up` exits 1 when a node fails, naming it and printing the end of its log."""

from __future__ import annotations

import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from node.setup.keys import save_key
from node.testing import free_port_base

from .conftest import SECLEDGER

A = "ab" * 32
ISSUE = ["tx", "issue", "--token", "ACME", "--to", A]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nobody listens there


def _cases(tmp_path) -> list[tuple[list, dict, int, str]]:
    """(argv, environment, exit code, what stderr must say)."""
    from ledger.testing import key_for

    key = tmp_path / "key.json"
    save_key(key, key_for("me"))
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "a-directory").mkdir()
    k = ["--key", str(key)]
    port = _free_port()
    token = ["tx", "create-token", "--symbol", "ACME", "--name", "Acme"]
    liquidation = ["tx", "declare-liquidation", "--id", "L", "--payment-token", "USD", "--amount", "9",
                   "--record-height", "3", "--expires-at", "4102444800"]
    distribution = ["tx", "declare-distribution", "--id", "D", "--token", "ACME", "--payment-token", "USD",
                    "--record-height", "1", "--expires-at", "4102444800"]
    return [
        # the inputs of issue 17, each refused by the flag that gave it
        ([*ISSUE, "--amount", "-5", *k], {}, 2, "--amount: -5 outside [1, 18446744073709551615]"),
        ([*ISSUE, "--amount", "0", *k], {}, 2, "--amount: 0 outside"),
        ([*ISSUE, "--amount", str(2**64), *k], {}, 2, "--amount: 18446744073709551616 outside"),
        ([*ISSUE, "--amount", "1e3", *k], {}, 2, "--amount: expected an integer, got '1e3'"),
        (["tx", "issue", "--token", "acme", "--to", A, "--amount", "5", *k], {}, 2, "--token: expected a token symbol"),
        (["tx", "create-token", "--symbol", "acme", "--name", "x", *k], {}, 2, "--symbol: expected a token symbol"),
        (["tx", "create-token", "--symbol", "ÄCME", "--name", "x", *k], {}, 2, "--symbol: expected a token symbol"),
        (["tx", "grant-claim", "--identity", "alice", "--topic", "iq", "--expires-at", "4102444800", *k], {}, 2,
         "--topic: expected one of"),
        (["tx", "grant-claim", "--identity", "alice", "--topic", "country", "--value", "usa", "--expires-at", "1",
          *k], {}, 2, "--value: "),
        (["tx", "grant-role", "--role", "king", "--account", A, *k], {}, 2, "--role: expected one of"),
        (["gov", "propose", "grant-role", "--role", "king", "--account", A, *k], {}, 2, "--role: expected one of"),
        (["tx", "register-identity", "--identity", "alice smith", "--wallet", A, *k], {}, 2,
         "--identity: expected an identity id"),
        ([*token, "--rules", '{"max_holders": 5}', *k], {}, 2, "--rules: unknown field 'max_holders'"),
        ([*token, "--rules", "{holders: 5}", *k], {}, 2, "--rules: not JSON"),
        ([*token, "--agent", f"{A}=supply,king", *k], {}, 2, "--agent: expected one of"),
        ([*token, "--agent", A, *k], {}, 2, "--agent: expected ADDRESS=role,role"),
        ([*token, "--decimals", "-1", *k], {}, 2, "--decimals: -1 outside"),
        (["tx", "vote", "--id", "AGM", "--option", "-1", *k], {}, 2, "--option: -1 outside [0, 15]"),
        ([*distribution, "--rate", "1/0", *k], {}, 2, "--rate: expected a denominator of at least 1"),
        ([*distribution, "--rate", "a/b", *k], {}, 2, "--rate: expected N or N/D"),
        ([*liquidation, "--class", "ACME:first:1:participating", *k], {}, 2, "--class: expected TOKEN:SENIORITY"),
        (["tx", "set-document", "--token", "ACME", "--name", "p", "--uri", "u", "--hash", "nope", *k], {}, 2,
         "--hash: 'nope': neither 64 hex digits nor a file"),
        (["tx", "pay-distribution", "--id", "D", "--payment", "alice", *k], {}, 2, "--payment: expected IDENTITY=WALLET"),
        (["tx", "issue", "--token", "ACME", "--to", "bob", "--amount", "5", *k], {}, 2,
         "--to: 'bob' is neither 64 hex digits nor a key file"),
        (["tx", "create-token", "--symbol", "ACME", "--name", b"\xff", *k], {}, 2, "--name: not UTF-8 text"),
        # key files
        ([*ISSUE, "--amount", "5", "--key", str(tmp_path / "missing.json")], {}, 2, "--key: "),
        ([*ISSUE, "--amount", "5", "--key", str(tmp_path / "a-directory")], {}, 2, "--key: "),
        ([*ISSUE, "--amount", "5", "--key", str(tmp_path / "garbage.json")], {}, 2, "--key: "),
        (["keys", "show", str(tmp_path / "missing.json")], {}, 2, "no such key file"),
        (["keys", "new", str(key)], {}, 1, "refusing to overwrite a key"),
        # the node: where it is, and when it is not there
        ([*ISSUE, "--amount", "5", *k, "--rpc", f"127.0.0.1:{port}"], {}, 1,
         f"cannot reach the node at http://127.0.0.1:{port}/ (--rpc): connection refused"),
        (["query", "status"], {"SECLEDGER_RPC": f"127.0.0.1:{port}"}, 1,
         f"cannot reach the node at http://127.0.0.1:{port}/"),
        (["query", "status", "--rpc", "http://a b:1/"], {}, 2, "--rpc: expected a node URL"),
        (["query", "status", "--rpc", "ftp://h:1/"], {}, 2, "--rpc: expected a node URL"),
        (["query", "status", "--rpc", "localhost"], {}, 2, "(no port)"),
        (["query", "status"], {"SECLEDGER_RPC": "nowhere"}, 2, "SECLEDGER_RPC: expected a node URL"),
        # queries and governance
        (["query", "balance", "ACME", "bob"], {}, 2, "ADDRESS: 'bob' is neither"),
        (["query", "block", "top"], {}, 2, "HEIGHT: expected an integer"),
        (["query", "holders", "ACME", "--limit", "all"], {}, 2, "--limit: expected an integer"),
        (["gov", "approve", "first", *k], {}, 2, "ID: expected a proposal number"),
        (["gov", "propose", "set-power", "--consensus-key", A, "--power", "ten", *k], {}, 2, "--power: expected"),
        (["gov", "list", "--status", "pending"], {}, 2, "--status: invalid choice"),
        # settlement, offerings and exports (issues 13 and 14)
        (["settle"], {}, 2, "error: secledger settle: a ACTION is needed"),
        (["settle", "affirm", "-1", *k], {}, 2, "ID: expected an instruction number"),
        (["settle", "create", "--leg", "ACME:bob:carol:5", "--expires-at", "4102444800", *k], {}, 2, "--leg: "),
        (["offering"], {}, 2, "error: secledger offering: a ACTION is needed"),
        (["offering", "subscribe", "OFF-1", "--amount", "1/0", *k], {}, 2, "--amount: expected an integer"),
        (["export"], {}, 2, "error: secledger export: a WHAT is needed"),
        (["export", "events", "--format", "xls", "--out", str(tmp_path / "x")], {}, 2, "--format: invalid choice"),
        (["export", "holders", "--token", "acme", "--height", "5", "--format", "csv", "--out",
          str(tmp_path / "h.csv")], {}, 2, "--token: expected a token symbol"),
        (["export", "events", "--format", "csv", "--out", str(tmp_path / "no-such-dir" / "e.csv"),
          "--rpc", f"127.0.0.1:{port}"], {}, 2, "--out: "),
        # set-up
        (["testnet", "--chain-id", "Bad Chain", "--out", str(tmp_path / "net")], {}, 2, "--chain-id: expected"),
        (["testnet", "--hosts", "a b", "--out", str(tmp_path / "net")], {}, 2, "--hosts: expected host names"),
        (["testnet", "--validators", "0", "--out", str(tmp_path / "net")], {}, 2, "--validators: expected 1 to"),
        (["init", "--home", str(tmp_path / "h"), "--moniker", "bank-a"], {}, 2, "--listen: required for a validator"),
        (["init", "--home", str(tmp_path / "h"), "--moniker", "a", "--listen", "0.0.0.0:1", "--external-address",
          "bank-a"], {}, 2, '--external-address: expected "host:port"'),
        (["genesis", "new", "--genesis", str(tmp_path / "g.toml"), "--chain-id", "Bad Chain"], {}, 2,
         "--chain-id: expected"),
        (["genesis", "show", "--genesis", str(tmp_path / "g.toml")], {}, 2, "--genesis: "),
        (["genesis", "add-validator", "--genesis", str(tmp_path / "g.toml"), "--card", str(key)], {}, 2,
         "--card: "),
        (["start", "--config", str(tmp_path / "missing.toml")], {}, 2, "missing.toml"),
        # the command line itself
        (["tx"], {}, 2, "error: secledger tx: a KIND is needed"),
        (["query"], {}, 2, "error: secledger query: a WHAT is needed"),
        (["frobnicate"], {}, 2, "invalid choice: 'frobnicate'"),
        (["tx", "issue", "--token", "ACME"], {}, 2, "the following arguments are required: --to, --amount, --key"),
    ]


def test_every_bad_input_is_one_line_with_its_exit_code(tmp_path):
    import os

    cases = _cases(tmp_path)

    def run(case):
        argv, environment, _, _ = case
        return subprocess.run([SECLEDGER, *argv], capture_output=True, timeout=60,
                              env={**os.environ, "SECLEDGER_RPC": "", **environment})

    with ThreadPoolExecutor(max_workers=2) as pool:  # a shared 2-core machine
        results = list(pool.map(run, cases))
    problems = []
    for (argv, environment, code, message), result in zip(cases, results, strict=True):
        out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
        lines = [line for line in err.splitlines() if line.strip()]
        if ("Traceback" in out + err or result.returncode != code or len(lines) != 1 or message not in err):
            problems.append(f"{argv} {environment}: exit {result.returncode} (expected {code}), stderr {err!r}")
        if argv in (["tx"], ["query"]) and not out.startswith(f"usage: secledger {argv[0]} "):
            problems.append(f"{argv}: its own help expected on stdout, got {out[:80]!r}")
    assert not problems, "\n".join(problems)


def test_up_exits_1_naming_the_node_that_failed_and_its_log(tmp_path):
    base = free_port_base(10)
    taken = socket.socket()
    taken.bind(("127.0.0.1", base + 3))  # validator-1's RPC port
    taken.listen()
    try:
        started = time.monotonic()
        result = subprocess.run([SECLEDGER, "up", "--dir", str(tmp_path / "net"), "--port-base", str(base)],
                                capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    first, *tail = result.stderr.splitlines()
    assert first == (f"error: validator-1 exited with code 2; the network is stopped. The end of "
                     f"{tmp_path / 'net' / 'logs' / 'validator-1.log'}:")
    assert tail and all(line.startswith("  | ") for line in tail)
    assert str(base + 3) in "\n".join(tail), tail  # the log says which port was taken
    assert time.monotonic() - started < 30
