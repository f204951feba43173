"""The `secledger` command: keys, node set-up, networks, running nodes, transactions and queries.

    secledger keys new FILE | keys show FILE
    secledger init --home DIR --moniker NAME --listen ADDR --external-address HOST:PORT [--observer]
    secledger genesis new|add-member|add-admin|set-thresholds|add-validator|add-observer --genesis FILE ...
    secledger genesis validate|show --genesis FILE | genesis install --home DIR --genesis FILE --card CARD...
    secledger testnet --validators 4 --observers 1 --out testnet [--hosts h1,h2,...]
    secledger start --config testnet/validator-0.toml
    secledger up [--dir testnet]                 generate a network if none, run all its nodes
    secledger tx KIND ... --key FILE [--rpc URL] [--no-wait]
    secledger gov propose CHANGE ... --key MEMBER_KEY | gov approve|reject|withdraw ID --key MEMBER_KEY
    secledger gov list | gov show ID | gov members
    secledger query WHAT ... [--rpc URL]
    secledger settle create|affirm|withdraw|reject|execute|expire|show|list|check ... [--key FILE] [--rpc URL]
    secledger offering open|subscribe|withdraw|close|cancel|show|list|subscriptions ID ... [--key FILE] [--rpc URL]
    secledger export events|holders|transfers ... --format parquet|csv|jsonl --out FILE [--rpc URL]

Addresses may be given as 64 hex digits or as the path of a key file (its public key is used).

Like argparse and git: exit 0 on success, 1 when the operation failed, 2 for a usage error; an
error is one line on stderr that names the flag, argument or file. No input prints a traceback:
anything unexpected is one line too (`secledger: internal error: ...; please report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from . import commands
from . import export as export_commands
from . import genesis as genesis_commands
from . import offering as offering_commands
from . import settle as settle_commands
from . import testnet as testnet_commands

EPILOG = f"""\
environment:
  {commands.RPC_VARIABLE}   the node RPC URL commands use when --rpc is not given
                  (default {commands.DEFAULT_RPC}, validator-0 of `make run`);
                  "host:port" means http://host:port/

exit status:
  0 success; 1 the operation failed (node unreachable, transaction refused or rejected);
  2 usage error (a flag's value, or a file it names, is wrong). Errors are one line on stderr.
"""


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line that names the command and the flag."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):
            message = message.removeprefix("argument ")  # "--amount: expected an integer, got 'x'"
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `secledger ... | head`
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        print(f"secledger: internal error: {type(exc).__name__}: {exc}; please report", file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    for index, argument in enumerate(arguments):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:  # bytes the locale could not decode: no key, name or path of ours
            where = arguments[index - 1] if index and arguments[index - 1].startswith("-") else f"argument {index + 1}"
            print(f"error: {where}: not UTF-8 text: {argument!r}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        print("error: secledger: a COMMAND is needed", file=sys.stderr)
        return 2
    try:
        result = args.run(args)
    except commands.CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    exit_code = 0
    if isinstance(result, commands.Outcome):
        result, exit_code = result.result, result.exit_code
    if isinstance(result, int):
        return result
    if result is not None:
        print(json.dumps(result, indent=2, sort_keys=True))
    return exit_code


def _rpc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", default=None, metavar="URL",
                   help=f"the node's JSON-RPC URL; host:port means http://host:port/ (default: "
                        f"${commands.RPC_VARIABLE}, else {commands.DEFAULT_RPC})")


def _group(parent: Any, name: str, help_text: str, metavar: str) -> Any:
    """A subcommand that only holds subcommands: without one it prints its own help, exit 2."""
    group = parent.add_parser(name, help=help_text, description=help_text)

    def show_help(_: Any) -> int:
        group.print_help()
        print(f"error: {group.prog}: a {metavar} is needed (see the list above)", file=sys.stderr)
        return 2

    group.set_defaults(run=show_help)
    return group.add_subparsers(metavar=metavar, parser_class=Parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="secledger", description="A permissioned ledger for security tokens.", epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=Parser)

    keys = _group(sub, "keys", "create or show an Ed25519 key file", "ACTION")
    p = keys.add_parser("new", help="create a key file (mode 0600)")
    p.add_argument("file", type=commands.PATH, metavar="FILE")
    p.set_defaults(run=commands.keys_new)
    p = keys.add_parser("show", help="print a key file's public key (its address)")
    p.add_argument("file", type=commands.PATH, metavar="FILE")
    p.set_defaults(run=commands.keys_show)

    _init_and_genesis(sub)

    p = sub.add_parser("testnet", help="generate keys, genesis and configs for a whole network in one directory")
    p.add_argument("--validators", type=commands.INTEGER, default=4)
    p.add_argument("--observers", type=commands.INTEGER, default=1)
    p.add_argument("--out", type=commands.PATH, default=Path("testnet"))
    p.add_argument("--port-base", type=commands.INTEGER, default=testnet_commands.DEFAULT_PORT_BASE,
                   help="first port on each host; each node on a host takes two (peers, RPC)")
    p.add_argument("--chain-id", default="secledger-local",
                   help="lower-case letters, digits, '.', '_' or '-' (default secledger-local)")
    p.add_argument("--hosts", metavar="H1,H2,...",
                   help="spread the nodes over these hosts (names or IP addresses), one per host in turn: each "
                        "listens for peers on its host's address and peers dial it there; RPC stays on each "
                        "host's loopback (default: all on 127.0.0.1)")
    _members(p)
    p.set_defaults(run=testnet_commands.testnet)

    p = sub.add_parser("start", help="run one node from its config")
    p.add_argument("--config", type=commands.PATH, required=True)
    p.set_defaults(run=commands.start)

    p = sub.add_parser("up", help="run a whole local network (generated on first use); Ctrl-C stops it; exits 1, "
                                  "with the end of its log, when a node stops")
    p.add_argument("--dir", type=commands.PATH, default=Path("testnet"))
    p.add_argument("--validators", type=commands.INTEGER, default=4)
    p.add_argument("--observers", type=commands.INTEGER, default=1)
    p.add_argument("--port-base", type=commands.INTEGER, default=testnet_commands.DEFAULT_PORT_BASE)
    _members(p)
    p.set_defaults(run=testnet_commands.up)

    tx = _group(sub, "tx", "build, sign and submit a transaction", "KIND")
    for spec in commands.TX_SPECS:
        p = tx.add_parser(spec.name, help=spec.help, description=spec.help)
        for arg in spec.args:
            p.add_argument(f"--{arg.name}", required=arg.required, action=arg.action, default=arg.default,
                           help=arg.help, **({"nargs": arg.nargs} if arg.nargs else {}),
                           **({"type": arg.type} if arg.type else {}))
        p.add_argument("--key", type=commands.PATH, required=True, help="the signer's key file")
        p.add_argument("--no-wait", action="store_true", help="return once admitted, without waiting for a block")
        _rpc(p)
        p.set_defaults(run=commands.submit, spec=spec)

    _gov(sub)

    query = _group(sub, "query", "read the ledger through a node", "WHAT")
    for name, help_text, params in commands.QUERY_SPECS:
        p = query.add_parser(name, help=help_text, description=help_text)
        for param, param_help, required in params:
            if required:
                p.add_argument(param, help=param_help, metavar=param.upper())
            else:
                p.add_argument(f"--{param.replace('_', '-')}", dest=param, help=param_help)
        _rpc(p)
        p.set_defaults(run=commands.query, query_name=name)
    export_commands.add_parsers(_group(sub, "export", "audit exports to Parquet, CSV or JSON Lines, page by page "
                                       "over the JSON-RPC (docs/EXPORT.md)", "WHAT"), _rpc)
    settle_commands.add_parsers(_group(sub, "settle", "settlement instructions: create, affirm, settle, inspect "
                                       "(docs/SETTLEMENT.md)", "ACTION"), _rpc)
    offering_commands.add_parsers(_group(sub, "offering", "primary offerings: open, subscribe, close, inspect "
                                         "(docs/SETTLEMENT.md)", "ACTION"), _rpc)
    return parser


def _init_and_genesis(sub: Any) -> None:
    p = sub.add_parser("init", help="set up this host's node: keys (they never leave it), config and card",
                       description="Write a node's keys (mode 0600), config and card into --home. Send the card "
                                   "(card.json: public keys, name, address) to the member who runs the genesis "
                                   "ceremony; keep keys/ on this host.")
    p.add_argument("--home", type=commands.PATH, required=True, help="the node's directory (created)")
    p.add_argument("--moniker", required=True, help="the node's name, also its name in the genesis")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="where the node listens for peers, e.g. 0.0.0.0:26600 (required for a validator)")
    p.add_argument("--external-address", metavar="HOST:PORT",
                   help="where nodes on other hosts dial it, e.g. bank-a.example.com:26600 (required for a "
                        "validator)")
    p.add_argument("--rpc-listen", metavar="HOST:PORT", help="the JSON-RPC address (default 127.0.0.1:26601, where the CLI asks by default)")
    p.add_argument("--observer", action="store_true", help="a read-only observer: no validator key")
    p.set_defaults(run=genesis_commands.init)

    group = _group(sub, "genesis", "the genesis ceremony: build, check and install one genesis file", "ACTION")
    g = genesis_commands

    def add(name: str, help_text: str, run: Callable[[Any], Any], genesis_help: str | None = None) \
            -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--genesis", type=commands.PATH, required=True, metavar="FILE",
                       help=genesis_help or "the genesis file being put together (edited in place)")
        p.set_defaults(run=run)
        return p

    p = add("new", "start a genesis file", g.genesis_new, "the genesis file to create")
    p.add_argument("--chain-id", required=True, help="lower-case letters, digits, '.', '_' or '-' (1 to 64)")
    p.add_argument("--genesis-time-ms", type=commands.INTEGER, help="unix time in milliseconds (default: now)")
    key_help = "64 hex digits, a key file, or a file holding `secledger keys show` output"
    p = add("add-member", "add a consortium member and its account keys", g.genesis_add_member)
    p.add_argument("--id", required=True, help="member id: 1 to 64 of A-Z a-z 0-9 . _ -")
    p.add_argument("--name", required=True, help="display name, 1 to 64 characters")
    p.add_argument("--key", nargs="+", required=True, metavar="KEY", help=f"its account keys: {key_help}")
    p = add("add-admin", "add administrators (a chain without members: they grant the chain roles)",
            g.genesis_add_admin)
    p.add_argument("--key", nargs="+", required=True, metavar="KEY", help=f"account keys: {key_help}")
    p = add("set-thresholds", "the fraction of members whose approval executes a proposal, per class",
            g.genesis_set_thresholds)
    for name in ("all", "validators", "members", "roles", "params"):
        p.add_argument(f"--{name}", type=FRACTION, metavar="N/D",
                       help="every class not given on its own" if name == "all" else f"proposals of class {name}")
    p = add("add-validator", "add a validator, from its member's card or its public keys", g.genesis_add_validator)
    p.add_argument("--card", type=commands.PATH, help="the card `secledger init` wrote (card.json)")
    p.add_argument("--name", help="its name (default: the card's)")
    p.add_argument("--consensus-key", metavar="KEY", help=f"without --card: {key_help}")
    p.add_argument("--node-key", metavar="KEY", help=f"without --card: {key_help}")
    p.add_argument("--power", type=commands.INTEGER, default=genesis_commands.DEFAULT_POWER,
                   help=f"voting power (default {genesis_commands.DEFAULT_POWER})")
    p = add("add-observer", "add an observer (a regulator's read-only node) allowed to connect",
            g.genesis_add_observer)
    p.add_argument("--card", type=commands.PATH, help="the card `secledger init --observer` wrote")
    p.add_argument("--name", help="its name (default: the card's)")
    p.add_argument("--node-key", metavar="KEY", help=f"without --card: {key_help}")
    add("validate", "check that the genesis is complete and valid; print its hash", g.genesis_validate,
        "the genesis file")
    add("show", "print the genesis and its hash, which every member compares", g.genesis_show, "the genesis file")
    p = add("install", "put the agreed genesis in this node's home and set its peers from the cards",
            g.genesis_install, "the agreed genesis file")
    p.add_argument("--home", type=commands.PATH, required=True, help="the node's directory, as `secledger init` wrote it")
    p.add_argument("--card", type=commands.PATH, nargs="*", metavar="CARD",
                   help="the validators' cards (files, or directories of *.json): where to dial them")


def _fraction(text: str) -> tuple[int, int]:
    num, slash, den = text.partition("/")
    try:
        if not slash:
            raise ValueError
        return int(num), int(den)
    except ValueError:
        raise commands.CliError(f"expected N/D, e.g. 2/3, got {text!r}") from None


FRACTION = commands._type(_fraction)


def _members(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=commands.INTEGER, default=None,
                   help="consortium members, each with a key keys/member-<i>.json, deciding by 2/3 (default: one "
                        "member, 'consortium', holding keys/admin.json, deciding alone; 0: no members, the admin "
                        "key rules the roles and the validator set is fixed)")


def _gov(sub: Any) -> None:
    gov = _group(sub, "gov", "consortium governance: proposals, votes, members", "ACTION")
    changes = _group(gov, "propose", "propose a change, as a member (counts as its approval)", "CHANGE")
    for spec in commands.GOV_SPECS:
        p = changes.add_parser(spec.name, help=spec.help, description=spec.help)
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
    p.add_argument("--key", type=commands.PATH, required=True, help=key_help)
    p.add_argument("--no-wait", action="store_true", help="return once admitted, without waiting for a block")
    _rpc(p)


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__: list[Any] = ["main"]
