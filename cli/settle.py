"""`secledger settle ...`: settlement instructions (docs/SETTLEMENT.md).

    secledger settle create --leg TOKEN:FROM:TO:AMOUNT [--leg ...] --expires-at UNIX_S
                            [--type on_affirmation|at_height|manual] [--height H] [--venue]
                            [--reference TEXT] --key FILE
    secledger settle affirm|withdraw|reject|execute|expire ID --key FILE
    secledger settle show ID | settle check ID [--time-s T] | settle list [filters]

Transactions are built and signed here, with `ledger.client`; only signed bytes go to the node.
Every value is checked before the node is asked; an error is one line naming the flag (exit 2),
a refusal or a failed settlement one line with the reason (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ledger.client import Signer
from ledger.errors import InvalidTransaction
from ledger.kinds import SETTLEMENT_TYPES
from ledger.settlement.instructions import STATUSES

from . import commands

#: The flag that gives each body field of `settlement.create`, to name it in an error.
CREATE_FLAGS: dict[str, str] = {
    "legs": "--leg", "settlement_type": "--type", "settle_at_height": "--height", "expires_at": "--expires-at",
    "venue": "--venue", "reference": "--reference", "id": "ID",
}
#: The transaction each one-instruction command signs, by `Signer` method.
VERBS: dict[str, tuple[str, str]] = {
    "affirm": ("affirm_instruction", "affirm every leg your wallet sends (reserves their units); settles an "
                                     "on_affirmation instruction when it is the last affirmation"),
    "withdraw": ("withdraw_affirmation", "withdraw your wallet's affirmation (releases its reserved units)"),
    "reject": ("reject_instruction", "reject the instruction, as a party or its venue (releases every reservation)"),
    "execute": ("execute_instruction", "settle now: a manual instruction as its venue (or a party), an at_height one "
                                       "at or after its height, or retry one whose last attempt failed"),
    "expire": ("expire_instruction", "end an instruction past its expiry (releases every reservation)"),
}


def _type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(text)
        except commands.CliError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__
    return parse


def _leg(text: str) -> tuple[str, bytes, bytes, int]:
    parts = text.split(":")
    if len(parts) != 4:
        raise commands.CliError(f"expected TOKEN:FROM:TO:AMOUNT (FROM and TO: 64 hex digits or key files), got {text!r}")
    token, sender, receiver, amount = parts
    try:
        units = int(amount)
    except ValueError:
        raise commands.CliError(f"expected an integer amount in base units, got {amount!r} in {text!r}") from None
    return token, commands.address(sender), commands.address(receiver), units


def _instruction_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise commands.CliError(f"expected an instruction number (1, 2, ...), got {text!r}")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise commands.CliError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise commands.CliError(f"expected an integer of at least 0, got {text!r}")
    return value


LEG, ID, NATURAL = _type(_leg), _type(_instruction_id), _type(_natural)


def add_parsers(group: Any, rpc_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """`secledger settle ...` under `group` (the `settle` subcommand's)."""

    def signed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--key", type=commands.PATH, required=True, help="the signer's key file")
        p.add_argument("--no-wait", action="store_true", help="return once admitted, without waiting for a block")
        rpc_flag(p)

    help_text = "create a settlement instruction, as a party or a venue operator (--venue)"
    p = group.add_parser("create", help=help_text, description=help_text)
    p.add_argument("--leg", type=LEG, action="append", required=True, metavar="TOKEN:FROM:TO:AMOUNT",
                   help="a leg (repeat, up to 16; settled in the order given); FROM and TO are 64 hex digits or "
                        "key files, AMOUNT in base units")
    p.add_argument("--type", dest="settlement_type", choices=SETTLEMENT_TYPES, default="on_affirmation",
                   help="when it settles (default on_affirmation: at the last sender's affirmation)")
    p.add_argument("--height", type=NATURAL, default=None, metavar="H",
                   help="for --type at_height: the first height it may settle at")
    p.add_argument("--expires-at", type=NATURAL, required=True, metavar="UNIX_S",
                   help="unix time in seconds from which it can no longer settle (block time)")
    p.add_argument("--venue", action="store_true",
                   help="create it as its venue (the signer must hold venue_operator)")
    p.add_argument("--reference", help="a trade reference, 1 to 128 characters")
    signed(p)
    p.set_defaults(run=create)

    for verb, (_, verb_help) in VERBS.items():
        p = group.add_parser(verb, help=verb_help, description=verb_help)
        p.add_argument("id", type=ID, metavar="ID", help="instruction number")
        signed(p)
        p.set_defaults(run=act, verb=verb)

    p = group.add_parser("show", help="an instruction: legs, affirmations, status, last failure")
    p.add_argument("id", type=ID, metavar="ID", help="instruction number")
    rpc_flag(p)
    p.set_defaults(run=show)
    help_text = "dry run: what settling the instruction now would do (ok, or the first obstacle)"
    p = group.add_parser("check", help=help_text, description=help_text)
    p.add_argument("id", type=ID, metavar="ID", help="instruction number")
    p.add_argument("--time-s", type=NATURAL, default=None, metavar="UNIX_S",
                   help="block time to check at (default: the last block's)")
    rpc_flag(p)
    p.set_defaults(run=check)
    p = group.add_parser("list", help="instructions, filtered and paginated")
    p.add_argument("--wallet", type=commands.ADDRESS, help="taking part (64 hex digits or a key file)")
    p.add_argument("--identity", help="any of its wallets taking part")
    p.add_argument("--token", help="with a leg of this token")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--from-height", type=NATURAL, help="created at or after this height")
    p.add_argument("--to-height", type=NATURAL, help="created at or before this height")
    p.add_argument("--after", type=NATURAL, help="the `next` of the previous page")
    p.add_argument("--limit", type=NATURAL, help="page size")
    rpc_flag(p)
    p.set_defaults(run=list_instructions)


# --- transactions ----------------------------------------------------------------------------------


def _checked(build: Callable[[Signer], bytes], key: Any) -> None:
    """Build once with a throw-away nonce: a value the ledger would refuse is a usage error that
    names its flag, before any node is asked."""
    try:
        build(Signer(key, "check", 0))
    except InvalidTransaction as exc:
        where, colon, problem = str(exc).partition(": ")
        field = where.split(".", 1)[0].split("[", 1)[0]
        flag = CREATE_FLAGS.get(field) if colon else None
        if flag is None:
            raise commands.CliError(f"settle: {exc}", exit_code=2) from None
        detail = f" (at {where})" if "." in where or "[" in where else ""
        raise commands.CliError(f"{flag}: {problem}{detail}", exit_code=2) from None


def create(args: Any) -> dict[str, Any] | commands.Outcome:
    url = commands.rpc_url(args.rpc)
    key = commands.load_signing_key(args.key)

    def build(signer: Signer) -> bytes:
        return signer.create_instruction(
            args.leg, expires_at=args.expires_at, settlement_type=args.settlement_type, settle_at_height=args.height,
            venue=signer.address if args.venue else None, reference=args.reference)

    _checked(build, key)
    client = commands.rpc_client(url)
    result = commands.sign_and_send(client, key, build, no_wait=args.no_wait)
    created = [e["data"]["id"] for e in result.get("events", ()) if e["kind"] == "settlement.created"]
    return _finished(client, result, int(created[0]) if created else None)


def act(args: Any) -> dict[str, Any] | commands.Outcome:
    """`settle affirm|withdraw|reject|execute|expire ID`."""
    url = commands.rpc_url(args.rpc)
    key = commands.load_signing_key(args.key)
    method = VERBS[args.verb][0]

    def build(signer: Signer) -> bytes:
        return getattr(signer, method)(args.id)

    client = commands.rpc_client(url)
    return _finished(client, commands.sign_and_send(client, key, build, no_wait=args.no_wait), args.id)


def _finished(client: Any, result: dict[str, Any], instruction_id: int | None) -> dict[str, Any] | commands.Outcome:
    """The receipt, with the instruction's status once committed. A settlement attempt that failed
    in this transaction is a failure (exit 1): nothing of it moved, and stderr says why."""
    if instruction_id is None or result.get("status") != "committed":
        return commands.finished(result)
    instruction = commands.rpc_call(client, "settlement_get", id=instruction_id)
    out = {**result, "instruction": instruction_id, "instruction_status": instruction["status"]}
    for event in result.get("events", ()):
        if event["kind"] == "settlement.failed":
            data = event["data"]
            code = data["code"] if isinstance(data["code"], str) else f"0x{data['code']:02x}"
            after = "it failed for good and its reservations were released" if data["final"] else "it stays pending"
            print(f"error: instruction {instruction_id} did not settle: leg {data['leg']}: {code} {data['reason']}; "
                  f"nothing moved, {after}", file=sys.stderr)
            return commands.Outcome(out, 1)
    return out


# --- queries -----------------------------------------------------------------------------------------


def show(args: Any) -> dict[str, Any]:
    url = commands.rpc_url(args.rpc)
    return commands.rpc_call(commands.rpc_client(url), "settlement_get", id=args.id)


def check(args: Any) -> dict[str, Any]:
    url = commands.rpc_url(args.rpc)
    params: dict[str, Any] = {"id": args.id}
    if args.time_s is not None:
        params["time_s"] = args.time_s
    return commands.rpc_call(commands.rpc_client(url), "settlement_check", **params)


def list_instructions(args: Any) -> dict[str, Any]:
    url = commands.rpc_url(args.rpc)
    params: dict[str, Any] = {}
    for name in ("identity", "token", "status", "from_height", "to_height", "after", "limit"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if args.wallet is not None:
        params["wallet"] = args.wallet.hex()
    return commands.rpc_call(commands.rpc_client(url), "settlement_list", **params)
