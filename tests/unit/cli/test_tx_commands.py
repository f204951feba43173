"""Every `secledger tx` subcommand builds the transaction it names, signed and decodable."""

from __future__ import annotations

import hashlib

import pytest

from cli.commands import TX_SPECS, CliError, address
from cli.main import build_parser
from ledger import decode_transaction
from ledger.client import Signer
from ledger.testing import key_for

A = bytes(key_for("a").verify_key).hex()
B = bytes(key_for("b").verify_key).hex()

CASES = {
    "grant-role": (["--role", "claim_issuer", "--account", A], "role.grant", {"role": "claim_issuer"}),
    "revoke-role": (["--role", "admin", "--account", A], "role.revoke", {"role": "admin"}),
    "register-identity": (["--identity", "alice", "--wallet", B, A], "identity.register",
                          {"wallets": sorted([bytes.fromhex(A), bytes.fromhex(B)])}),
    "add-wallet": (["--identity", "alice", "--wallet", A], "identity.add_wallet", {"identity": "alice"}),
    "grant-claim": (["--identity", "alice", "--topic", "country", "--value", "US", "--expires-at", "4102444800"],
                    "claim.grant", {"value": "US", "expires_at": 4102444800}),
    "revoke-claim": (["--identity", "alice", "--topic", "kyc"], "claim.revoke", {"topic": "kyc"}),
    "create-token": (["--symbol", "ACME", "--name", "Acme", "--decimals", "2", "--paused", "--rules",
                      '{"holders_max": 99}', "--agent", f"{A}=supply,freeze"], "token.create",
                     {"paused": True, "decimals": 2, "rules": {"holders_max": 99},
                      "agents": [[bytes.fromhex(A), ["freeze", "supply"]]]}),
    "set-agent": (["--token", "ACME", "--agent", A, "--roles", "pause,supply"], "token.set_agent",
                  {"roles": ["pause", "supply"]}),
    "set-rules": (["--token", "ACME", "--rules", '{"country_block": ["KP"]}'], "token.set_rules",
                  {"rules": {"country_block": ["KP"]}}),
    "set-name": (["--token", "ACME", "--name", "Acme Holdings plc"], "token.set_name",
                 {"name": "Acme Holdings plc"}),
    "issue": (["--token", "ACME", "--to", A, "--amount", "5"], "token.issue", {"amount": 5}),
    "redeem": (["--token", "ACME", "--from", A, "--amount", "5"], "token.redeem", {"from": bytes.fromhex(A)}),
    "transfer": (["--token", "ACME", "--to", A, "--amount", "5"], "token.transfer", {"to": bytes.fromhex(A)}),
    "force-transfer": (["--token", "ACME", "--from", A, "--to", B, "--amount", "5"], "token.force_transfer",
                       {"to": bytes.fromhex(B)}),
    "freeze": (["--token", "ACME", "--address", A], "token.freeze", {}),
    "unfreeze": (["--token", "ACME", "--address", A], "token.unfreeze", {}),
    "freeze-partial": (["--token", "ACME", "--address", A, "--amount", "3"], "token.freeze_partial", {"amount": 3}),
    "unfreeze-partial": (["--token", "ACME", "--address", A, "--amount", "3"], "token.unfreeze_partial", {}),
    "pause": (["--token", "ACME"], "token.pause", {}),
    "unpause": (["--token", "ACME"], "token.unpause", {}),
    "recover": (["--token", "ACME", "--lost-wallet", A, "--new-wallet", B], "token.recover",
                {"new_wallet": bytes.fromhex(B)}),
    "set-document": (["--token", "ACME", "--name", "prospectus", "--uri", "https://x/p.pdf", "--hash", "ab" * 32],
                     "token.set_document", {"hash": bytes.fromhex("ab" * 32)}),
    "remove-document": (["--token", "ACME", "--name", "prospectus"], "token.remove_document", {}),
    "declare-distribution": (["--id", "DIV-1", "--token", "ACME", "--payment-token", "USD", "--record-height",
                              "10", "--rate", "3/2", "--expires-at", "4102444800"], "distribution.declare",
                             {"rate_num": 3, "rate_den": 2, "record_height": 10}),
    "claim-distribution": (["--id", "DIV-1"], "distribution.claim", {}),
    "pay-distribution": (["--id", "DIV-1", "--payment", f"alice={A}"], "distribution.pay",
                         {"payments": [["alice", bytes.fromhex(A)]]}),
    "reclaim-distribution": (["--id", "DIV-1"], "distribution.reclaim", {}),
    "declare-liquidation": (["--id", "L", "--payment-token", "USD", "--amount", "100", "--record-height", "3",
                             "--expires-at", "4102444800", "--class", "SERA:1:10:non-participating",
                             "ACME:0:0:participating:5:no-convert"], "liquidation.declare",
                            {"classes": [["SERA", 1, 10, False, None, True], ["ACME", 0, 0, True, 5, False]]}),
    "create-ballot": (["--id", "AGM", "--token", "ACME", "--question", "Merge?", "--option", "yes", "no",
                       "--record-height", "3", "--opens-at-height", "4", "--closes-at-height", "9"],
                      "ballot.create", {"options": ["yes", "no"]}),
    "vote": (["--id", "AGM", "--option", "1"], "ballot.vote", {"option": 1}),
    "tally": (["--id", "AGM"], "ballot.tally", {}),
}


def test_every_kind_has_a_subcommand_under_test():
    assert {spec.name for spec in TX_SPECS} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_subcommand_builds_its_transaction(name):
    argv, kind, expected = CASES[name]
    args = build_parser().parse_args(["tx", name, *argv, "--key", "k.json"])
    signer = Signer(key_for("me"), "chain-x", 7)
    tx = decode_transaction(args.spec.build(signer, args), chain_id="chain-x")
    assert tx.kind == kind and tx.nonce == 7
    for key, value in expected.items():
        assert tx.body[key] == value, key


def test_address_arguments_and_errors(tmp_path):
    assert address(A) == bytes.fromhex(A)
    with pytest.raises(CliError, match="neither 64 hex digits nor a key file"):
        address("nope")
    document = tmp_path / "p.pdf"
    document.write_bytes(b"prospectus")
    args = build_parser().parse_args(["tx", "set-document", "--token", "ACME", "--name", "p", "--uri", "u",
                                      "--hash", str(document), "--key", "k"])
    tx = decode_transaction(args.spec.build(Signer(key_for("me"), "c", 0), args), chain_id="c")
    assert tx.body["hash"] == hashlib.sha256(b"prospectus").digest()
