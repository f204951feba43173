"""How `secledger` fails: exit codes, one line on stderr, never a traceback; the node's URL."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from cli import commands
from cli.main import build_parser, main
from ledger import decode_transaction
from ledger.client import Signer
from ledger.testing import key_for
from node.setup.keys import save_key

from .test_tx_commands import CASES


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


class Answers:
    """A stand-in for the node's RPC client that answers from a table."""

    url = "http://stand-in/"
    timeout_ms = 1_000

    def __init__(self, **answers) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def call_sync(self, method: str, **params):
        self.calls.append(method)
        return self.answers[method]


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "me.json"
    save_key(path, key_for("me"))
    return str(path)


def test_a_transaction_rejected_in_its_block_exits_1(monkeypatch, capsys, key):
    receipt = {"status": "rejected", "height": 9, "code": "0x57", "reason": "receiver_country_blocked:KP",
               "hash": "ab" * 32}
    node = Answers(chain_status={"chain_id": "c", "height": 8}, account_nonce={"next_nonce": "0"},
                   tx_submit={"hash": "ab" * 32}, tx_wait=receipt)
    monkeypatch.setattr(commands, "_client", lambda url: node)
    code, out, err = run(capsys, "tx", "transfer", "--token", "ACME", "--to", "cd" * 32, "--amount", "5", "--key", key)
    assert code == 1 and json.loads(out) == receipt
    assert one_line(err) == "error: transaction rejected in block 9: receiver_country_blocked:KP (0x57)"


def test_a_failed_proposal_exits_1(monkeypatch, capsys, key):
    node = Answers(chain_status={"chain_id": "c", "height": 8}, account_nonce={"next_nonce": "0"},
                   tx_submit={"hash": "ab" * 32}, tx_wait={"status": "committed", "events": [], "code": "0x51"},
                   gov_proposal={"status": "failed", "failure": {"code": "0x60", "reason": "no_such_validator",
                                                                 "action": 0}})
    monkeypatch.setattr(commands, "_client", lambda url: node)
    code, out, err = run(capsys, "gov", "approve", "3", "--key", key)
    assert code == 1 and json.loads(out)["proposal_failure"]["reason"] == "no_such_validator"
    assert "proposal 3 failed: 0x60 no_such_validator" in one_line(err)


def test_a_refusal_by_the_node_is_one_line_exit_1_and_bad_params_exit_2(monkeypatch, capsys, key):
    from node.rpc.client import RpcError

    class Refusing(Answers):
        def call_sync(self, method: str, **params):
            raise RpcError(-32602 if method == "token_get" else -32005, "nope", {"reason": "stale_nonce"})

    monkeypatch.setattr(commands, "_client", lambda url: Refusing())
    code, _, err = run(capsys, "query", "token", "acme")
    assert code == 2 and one_line(err).startswith("error: token_get: -32602: nope")
    code, _, err = run(capsys, "query", "status")
    assert code == 1 and one_line(err) == 'error: chain_status: -32005: nope {"reason": "stale_nonce"}'


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_node_that_does_not_answer_times_out_in_one_line(monkeypatch, capsys, silent_port):
    monkeypatch.setattr(commands, "RPC_TIMEOUT_MS", 300)
    code, _, err = run(capsys, "query", "status", "--rpc", f"127.0.0.1:{silent_port}")
    assert code == 1
    assert one_line(err) == f"error: cannot reach the node at http://127.0.0.1:{silent_port}/ (--rpc): timed out after 0.3 s"


def test_a_port_that_does_not_speak_http(capsys):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"\x00\x01 not http at all\r\n\r\n")
        connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    code, _, err = run(capsys, "query", "status", "--rpc", f"127.0.0.1:{server.getsockname()[1]}")
    thread.join(5)
    server.close()
    assert code == 1 and "is this a node's RPC port?" in one_line(err)


def test_connection_refused(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    code, _, err = run(capsys, "query", "status", "--rpc", f"127.0.0.1:{port}")
    assert code == 1 and one_line(err) == (f"error: cannot reach the node at http://127.0.0.1:{port}/ (--rpc): "
                                           "connection refused; is a node running there?")


@pytest.mark.parametrize("given, url", [
    ("127.0.0.1:26601", "http://127.0.0.1:26601/"),
    ("http://10.0.0.5:9000", "http://10.0.0.5:9000/"),
    ("https://node.example.com:443/rpc", "https://node.example.com:443/rpc"),
    ("[::1]:26601", "http://[::1]:26601/"),
    (" node-1:26601 ", "http://node-1:26601/"),
])
def test_rpc_urls_default_to_http(given, url):
    assert commands.rpc_url(given) == url


@pytest.mark.parametrize("given, problem", [
    ("127.0.0.1", "no port"), ("ftp://h:1/", "scheme 'ftp'"), ("http://h:99999/", "Port out of range"),
    ("http://a b:1/", "spaces"), ("http://:1/", "no host"), ("http://h:x/", "Port could not be cast"),
])
def test_bad_rpc_urls_are_usage_errors_naming_their_source(given, problem, monkeypatch):
    with pytest.raises(commands.CliError) as caught:
        commands.rpc_url(given)
    assert caught.value.exit_code == 2 and str(caught.value).startswith("--rpc: ") and problem in str(caught.value)
    monkeypatch.setenv("SECLEDGER_RPC", given)
    with pytest.raises(commands.CliError, match="^SECLEDGER_RPC: "):
        commands.rpc_url(None)


def test_secledger_rpc_is_the_default_and_rpc_wins(monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(commands, "_client", lambda url: asked.append(url) or Answers(chain_status={"height": 1}))
    monkeypatch.delenv("SECLEDGER_RPC", raising=False)
    assert run(capsys, "query", "status")[0] == 0
    monkeypatch.setenv("SECLEDGER_RPC", "10.1.2.3:7000")
    assert run(capsys, "query", "status")[0] == 0
    assert run(capsys, "query", "status", "--rpc", "10.9.9.9:1")[0] == 0
    assert asked == [commands.DEFAULT_RPC, "http://10.1.2.3:7000/", "http://10.9.9.9:1/"]


def test_help_documents_the_default_node_and_secledger_rpc(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "SECLEDGER_RPC" in out and commands.DEFAULT_RPC in out and "exit status" in out
    code, out, _ = run(capsys, "query", "status", "--help")
    assert code == 0 and "SECLEDGER_RPC" in out and "host:port means http://host:port/" in out


@pytest.mark.parametrize("group, metavar", [(["tx"], "KIND"), (["query"], "WHAT"), (["gov"], "ACTION"),
                                            (["gov", "propose"], "CHANGE"), (["keys"], "ACTION"),
                                            (["genesis"], "ACTION"), ([], "COMMAND")])
def test_a_group_without_its_subcommand_prints_its_own_help(capsys, group, metavar):
    code, out, err = run(capsys, *group)
    assert code == 2 and out.startswith(f"usage: {' '.join(['secledger', *group])} ")
    assert metavar in one_line(err)


def test_argparse_errors_are_one_line_naming_the_command(capsys):
    code, _, err = run(capsys, "tx", "issue", "--token", "ACME")
    assert code == 2 and one_line(err) == ("error: secledger tx issue: the following arguments are required: --to, "
                                           "--amount, --key (see secledger tx issue --help)")
    code, _, err = run(capsys, "tx", "issue", "--token", "ACME", "--to", "ab" * 32, "--amount", "lots", "--key", "k")
    assert code == 2 and "--amount: expected an integer, got 'lots'" in one_line(err)
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice: 'frobnicate'" in one_line(err)


def test_anything_unexpected_is_one_line_asking_for_a_report(monkeypatch, capsys, tmp_path):
    def broken(args):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(commands, "keys_show", broken)
    code, _, err = run(capsys, "keys", "show", str(tmp_path / "k.json"))
    assert code == 1
    assert one_line(err) == "secledger: internal error: RuntimeError: the disk is on fire; please report"


def test_arguments_that_are_not_utf8_are_refused(capsys):
    code, _, err = run(capsys, "tx", "create-token", "--symbol", "ACME", "--name", "\udcff", "--key", "k")
    assert code == 2 and one_line(err) == "error: --name: not UTF-8 text: '\\udcff'"


def test_every_body_field_of_every_transaction_names_its_flag():
    for name, (argv, _, _) in CASES.items():
        args = build_parser().parse_args(["tx", name, *argv, "--key", "k.json"])
        tx = decode_transaction(args.spec.build(Signer(key_for("me"), "c", 0), args), chain_id="c")
        for field in tx.body:
            assert commands.body_flag(args.spec, field) is not None, (name, field)


def test_values_are_checked_before_the_node_is_asked(monkeypatch, capsys, key):
    node = Answers()
    monkeypatch.setattr(commands, "_client", lambda url: node)
    code, _, err = run(capsys, "tx", "issue", "--token", "ACME", "--to", "ab" * 32, "--amount", "-5", "--key", key)
    assert code == 2 and one_line(err) == "error: --amount: -5 outside [1, 18446744073709551615]"
    code, _, err = run(capsys, "tx", "issue", "--token", "ACME", "--to", "ab" * 32, "--amount", "5",
                       "--key", "missing.json")
    assert code == 2 and one_line(err).startswith("error: --key: missing.json: no such key file")
    assert node.calls == []
