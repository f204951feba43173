"""`secledger offering ...`: each subcommand builds and sends the transaction it names or asks the
method it names; every error is one line naming the flag or argument, exit 2 for usage and 1 for a
refusal, never a traceback."""

from __future__ import annotations

import json

import pytest

from cli import commands
from cli import offering as offering_commands
from cli.main import build_parser
from ledger import decode_transaction
from ledger.client import Signer
from ledger.testing import key_for
from node.setup.keys import save_key

from .test_cli_failures import one_line, run

T = bytes(key_for("treasury").verify_key).hex()
OPEN = ["offering", "open", "OFF-1", "--token", "ACME", "--cash-token", "USD", "--price", "2500", "--raise-min",
        "0", "--raise-max", "5000000", "--investor-min", "250000", "--investor-max", "4000000", "--opens-at",
        "1803859200", "--closes-at", "1806451200", "--cash-wallet", T]
CASES = {  # argv after the subcommand's key -> (kind, body)
    "open": (OPEN, "offering.open", {
        "id": "OFF-1", "token": "ACME", "cash_token": "USD", "price": 2500, "raise_min": 0, "raise_max": 5_000_000,
        "investor_min": 250_000, "investor_max": 4_000_000, "opens_at": 1803859200, "closes_at": 1806451200,
        "cash_wallet": bytes.fromhex(T)}),
    "subscribe": (["offering", "subscribe", "OFF-1", "--amount", "300000"], "offering.subscribe",
                  {"id": "OFF-1", "amount": 300_000}),
    "withdraw": (["offering", "withdraw", "OFF-1"], "offering.withdraw", {"id": "OFF-1"}),
    "close": (["offering", "close", "OFF-1"], "offering.close", {"id": "OFF-1"}),
    "cancel": (["offering", "cancel", "OFF-1"], "offering.cancel", {"id": "OFF-1"}),
}


class Node:
    """A stand-in for the node's RPC client: answers from a table, records what was asked."""

    url = "http://stand-in/"
    timeout_ms = 1_000

    def __init__(self, **answers) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict]] = []

    def call_sync(self, method: str, **params):
        self.calls.append((method, params))
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "me.json"
    save_key(path, key_for("me"))
    return str(path)


@pytest.fixture
def node(monkeypatch):
    stand_in = Node(chain_status={"chain_id": "c", "height": 8}, account_nonce={"next_nonce": "4"},
                    tx_submit={"hash": "ab" * 32, "status": "pending"},
                    tx_wait={"status": "committed", "code": "0x51", "events": [], "hash": "ab" * 32},
                    offering_get={"id": "OFF-1", "status": "open"}, offering_list={"offerings": [], "next": None},
                    offering_subscriptions={"id": "OFF-1", "subscriptions": [], "next": None})
    monkeypatch.setattr(commands, "_client", lambda url: stand_in)
    return stand_in


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_subcommand_builds_its_transaction(name):
    argv, kind, body = CASES[name]
    args = build_parser().parse_args([*argv, "--key", "k.json"])
    args.verb = getattr(args, "verb", "open")
    tx = decode_transaction(offering_commands.build(Signer(key_for("me"), "chain-x", 7), args), chain_id="chain-x")
    assert (tx.kind, tx.nonce, tx.body) == (kind, 7, body)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_subcommand_sends_its_transaction_and_reports_the_offering(capsys, key, node, name):
    argv, kind, body = CASES[name]
    code, out, err = run(capsys, *argv, "--key", key)
    assert code == 0 and err == ""
    assert json.loads(out)["offering_status"] == "open" and json.loads(out)["offering"] == "OFF-1"
    submitted = dict(node.calls)["tx_submit"]["tx"]
    tx = decode_transaction(bytes.fromhex(submitted), chain_id="c")
    assert (tx.kind, tx.nonce, tx.body) == (kind, 4, body)


def test_queries_ask_their_methods(capsys, node):
    assert run(capsys, "offering", "show", "OFF-1", "--identity", "ann")[0] == 0
    assert run(capsys, "offering", "list", "--token", "ACME", "--status", "open", "--limit", "5")[0] == 0
    assert run(capsys, "offering", "subscriptions", "OFF-1", "--after", "ann")[0] == 0
    assert node.calls == [("offering_get", {"id": "OFF-1", "identity": "ann"}),
                          ("offering_list", {"token": "ACME", "status": "open", "limit": 5}),
                          ("offering_subscriptions", {"id": "OFF-1", "after": "ann"})]


@pytest.mark.parametrize(("argv", "expected"), [
    (["offering", "subscribe", "OFF-1", "--amount", "lots"], "--amount: expected an integer, got 'lots'"),
    (["offering", "subscribe", "OFF-1", "--amount", "0"], "--amount: 0 outside [1, 18446744073709551615]"),
    (["offering", "subscribe", "OFF 1", "--amount", "5"], "ID: expected an action id"),
    ([*OPEN[:8], "0", *OPEN[9:]], "--price: 0 outside [1, 18446744073709551615]"),
    ([*OPEN[:-1], "nope"], "--cash-wallet: 'nope' is neither 64 hex digits nor a key file"),
    ([*OPEN[:3], "--token", "acme", *OPEN[5:]], "--token: expected a token symbol"),
    ([*OPEN[:-2]], "the following arguments are required: --cash-wallet"),
    (["offering", "list", "--status", "pending"], "--status: invalid choice: 'pending'"),
    (["offering", "list", "--limit", "0"], "--limit: expected an integer of at least 1, got '0'"),
    (["offering", "close"], "the following arguments are required: ID"),
])
def test_usage_errors_are_one_line_naming_the_flag_exit_2(capsys, key, node, argv, expected):
    code, out, err = run(capsys, *argv, *(["--key", key] if argv[1] not in ("list",) else []))
    assert code == 2 and out == ""
    assert expected in one_line(err)
    assert not any(method == "tx_submit" for method, _ in node.calls)  # checked before the node is asked


def test_a_refusal_at_admission_exits_1_in_one_line(capsys, key, node):
    from node.rpc.client import RpcError

    node.answers["tx_submit"] = RpcError(-32000, "Transaction rejected", {"reason_code": "0x57",
                                                                           "reason": "receiver_missing_claim:accredited"})
    code, out, err = run(capsys, "offering", "subscribe", "OFF-1", "--amount", "300000", "--key", key)
    assert code == 1 and out == ""
    assert "receiver_missing_claim:accredited" in one_line(err)


def test_a_rejection_in_the_block_exits_1_with_the_receipt(capsys, key, node):
    receipt = {"status": "rejected", "height": 9, "code": "0x55", "reason": "offering_not_ended", "hash": "ab" * 32}
    node.answers["tx_wait"] = receipt
    code, out, err = run(capsys, "offering", "close", "OFF-1", "--key", key)
    assert code == 1 and json.loads(out) == receipt
    assert one_line(err) == "error: transaction rejected in block 9: offering_not_ended (0x55)"


def test_an_unknown_offering_in_a_query_exits_1(capsys, node):
    from node.rpc.client import RpcError

    node.answers["offering_get"] = RpcError(-32001, "Not found", {"what": "no offering 'NOPE'"})
    code, out, err = run(capsys, "offering", "show", "NOPE")
    assert code == 1 and out == "" and "offering_get" in one_line(err)


def test_help_at_every_level(capsys):
    assert run(capsys, "offering")[0] == 2
    for verb in ("open", "subscribe", "withdraw", "close", "cancel", "show", "list", "subscriptions"):
        code, out, _ = run(capsys, "offering", verb, "--help")
        assert code == 0 and "usage: secledger offering" in out
