"""The `secledger` command: keys, local networks, running nodes, transactions and queries.

    secledger keys new FILE | keys show FILE
    secledger testnet --validators 4 --observers 1 --out testnet
    secledger start --config testnet/validator-0.toml
    secledger up [--dir testnet]                 generate a network if none, run all its nodes
    secledger tx KIND ... --key FILE [--rpc URL] [--no-wait]
    secledger gov propose CHANGE ... --key MEMBER_KEY | gov approve|reject|withdraw ID --key MEMBER_KEY
    secledger gov list | gov show ID | gov members
    secledger query WHAT ... [--rpc URL]

Addresses may be given as 64 hex digits or as the path of a key file (its public key is used).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import commands


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result = args.run(args)
    except commands.CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    if isinstance(result, int):
        return result
    if result is not None:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _rpc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", default=commands.DEFAULT_RPC, help=f"node RPC URL (default {commands.DEFAULT_RPC})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secledger", description="A permissioned ledger for security tokens.")
    sub = parser.add_subparsers(metavar="COMMAND")

    keys = sub.add_parser("keys", help="create or show an Ed25519 key file").add_subparsers(metavar="ACTION")
    p = keys.add_parser("new", help="create a key file")
    p.add_argument("file", type=Path)
    p.set_defaults(run=commands.keys_new)
    p = keys.add_parser("show", help="print a key file's public key (its address)")
    p.add_argument("file", type=Path)
    p.set_defaults(run=commands.keys_show)

    p = sub.add_parser("testnet", help="generate keys, genesis and configs for a local network")
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--observers", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("testnet"))
    p.add_argument("--port-base", type=int, default=26600, help="first port; each node takes two")
    p.add_argument("--chain-id", default="secledger-local")
    _members(p)
    p.set_defaults(run=commands.testnet)

    p = sub.add_parser("start", help="run one node from its config")
    p.add_argument("--config", type=Path, required=True)
    p.set_defaults(run=commands.start)

    p = sub.add_parser("up", help="run a whole local network (generated on first use); Ctrl-C stops it")
    p.add_argument("--dir", type=Path, default=Path("testnet"))
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--observers", type=int, default=1)
    p.add_argument("--port-base", type=int, default=26600)
    _members(p)
    p.set_defaults(run=commands.up)

    tx = sub.add_parser("tx", help="build, sign and submit a transaction").add_subparsers(metavar="KIND")
    for spec in commands.TX_SPECS:
        p = tx.add_parser(spec.name, help=spec.help)
        for arg in spec.args:
            p.add_argument(f"--{arg.name}", required=arg.required, action=arg.action, default=arg.default,
                           help=arg.help, **({"nargs": arg.nargs} if arg.nargs else {}))
        p.add_argument("--key", type=Path, required=True, help="the signer's key file")
        p.add_argument("--no-wait", action="store_true", help="return once admitted, without waiting for a block")
        _rpc(p)
        p.set_defaults(run=commands.submit, spec=spec)

    _gov(sub)

    query = sub.add_parser("query", help="read the ledger through a node").add_subparsers(metavar="WHAT")
    for name, help_text, params in commands.QUERY_SPECS:
        p = query.add_parser(name, help=help_text)
        for param, param_help, required in params:
            if required:
                p.add_argument(param, help=param_help)
            else:
                p.add_argument(f"--{param.replace('_', '-')}", dest=param, help=param_help)
        _rpc(p)
        p.set_defaults(run=commands.query, query_name=name)
    return parser


def _members(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=int, default=None,
                   help="consortium members, each with a key keys/member-<i>.json, deciding by 2/3 (default: one "
                        "member, 'consortium', holding keys/admin.json, deciding alone; 0: no members, the admin "
                        "key rules the roles and the validator set is fixed)")


def _gov(sub: Any) -> None:
    gov = sub.add_parser("gov", help="consortium governance: proposals, votes, members").add_subparsers(
        metavar="ACTION")
    propose = gov.add_parser("propose", help="propose a change, as a member (counts as its approval)")
    changes = propose.add_subparsers(metavar="CHANGE")
    for spec in commands.GOV_SPECS:
        p = changes.add_parser(spec.name, help=spec.help)
        for arg in spec.args:
            p.add_argument(f"--{arg.name}", required=arg.required, help=arg.help,
                           **({"nargs": arg.nargs} if arg.nargs else {}))
        p.add_argument("--expires-in", default=str(commands.DEFAULT_EXPIRES_IN), metavar="BLOCKS",
                       help=f"blocks the proposal stays open after the next one (default "
                            f"{commands.DEFAULT_EXPIRES_IN})")
        _signed(p, "a member's key file")
        p.set_defaults(run=commands.gov_propose, spec=spec)
    for verb, help_text in (("approve", "approve a proposal (executes it once the threshold is reached)"),
                            ("reject", "reject a proposal"),
                            ("withdraw", "withdraw your member's proposal before it executes")):
        p = gov.add_parser(verb, help=help_text)
        p.add_argument("id", metavar="ID", help="proposal number")
        _signed(p, "a member's key file")
        p.set_defaults(run=commands.gov_vote, verb=verb)
    p = gov.add_parser("list", help="proposals, filtered and paginated")
    p.add_argument("--status", choices=commands.GOV_STATUSES)
    p.add_argument("--proposer", help="member id")
    p.add_argument("--class", dest="action_class", choices=commands.GOV_CLASSES)
    p.add_argument("--after", help="the `next` of the previous page")
    p.add_argument("--limit", help="page size")
    _rpc(p)
    p.set_defaults(run=commands.gov_list)
    p = gov.add_parser("show", help="one proposal with its votes")
    p.add_argument("id", metavar="ID", help="proposal number")
    _rpc(p)
    p.set_defaults(run=commands.gov_show)
    p = gov.add_parser("members", help="the members and the thresholds")
    _rpc(p)
    p.set_defaults(run=commands.gov_members)


def _signed(p: argparse.ArgumentParser, key_help: str) -> None:
    p.add_argument("--key", type=Path, required=True, help=key_help)
    p.add_argument("--no-wait", action="store_true", help="return once admitted, without waiting for a block")
    _rpc(p)


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__: list[Any] = ["main"]
