"""`secledger offering ...`: primary offerings (docs/SETTLEMENT.md, "Primary offerings").

    secledger offering open ID --token X --cash-token C --price P --raise-min N --raise-max N
                               --investor-min N --investor-max N --opens-at UNIX_S --closes-at UNIX_S
                               --cash-wallet ADDR --key FILE
    secledger offering subscribe ID --amount N --key FILE
    secledger offering withdraw|close|cancel ID --key FILE
    secledger offering show ID [--identity I] | list [--token X] [--status S] | subscriptions ID

Amounts are base units: the price is cash base units per whole unit of the offered token, the raise
and investor limits and a subscription are cash base units. Transactions are built and signed here
with `ledger.client`; only signed bytes go to the node. Every value is checked before the node is
asked: an error is one line naming the flag or argument (exit 2); a refusal one line with its
reason (exit 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ledger.client import Signer
from ledger.errors import InvalidTransaction
from ledger.settlement.offerings import STATUSES

from . import commands

#: The flag (or argument) that gives each body field, to name it in an error.
FLAGS: dict[str, str] = {
    "id": "ID", "token": "--token", "cash_token": "--cash-token", "price": "--price", "raise_min": "--raise-min",
    "raise_max": "--raise-max", "investor_min": "--investor-min", "investor_max": "--investor-max",
    "opens_at": "--opens-at", "closes_at": "--closes-at", "cash_wallet": "--cash-wallet", "amount": "--amount",
}
#: The one-offering transactions: Signer method and help.
VERBS: dict[str, tuple[str, str]] = {
    "withdraw": ("withdraw_subscription", "withdraw your identity's subscription (its cash reservation is released); "
                                          "while the window is open, or 30 days after it if the issuer has not closed"),
    "close": ("close_offering", "close: re-check every subscriber, allocate (pro rata if over the maximum), issue "
                                "the units and take the payments, or refund all below the minimum raise"),
    "cancel": ("cancel_offering", "cancel the offering before its close: every subscription is refunded"),
}


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _limit(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {text!r}")
    return value


def _address(text: str) -> bytes:
    try:
        return commands.address(text)
    except commands.CliError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(group: Any, rpc_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """`secledger offering ...` under `group` (the `offering` subcommand's)."""

    def signed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--key", type=commands.PATH, required=True, help="the signer's key file")
        p.add_argument("--no-wait", action="store_true", help="return once admitted, without waiting for a block")
        rpc_flag(p)

    def offering_id(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", metavar="ID", help="offering id: 1 to 64 of A-Z a-z 0-9 . _ : -")

    help_text = "open an offering of a token for cash, as its owner or a supply agent"
    p = group.add_parser("open", help=help_text, description=help_text)
    offering_id(p)
    p.add_argument("--token", required=True, help="the token offered (its units are issued at the close)")
    p.add_argument("--cash-token", required=True, help="the token investors pay in")
    p.add_argument("--price", type=_integer, required=True, metavar="N",
                   help="cash base units per whole unit of the offered token (10^decimals base units)")
    for name, what in (("raise-min", "below it at the close, every subscriber is refunded (0: none)"),
                       ("raise-max", "over it, allocations are pro rata, rounded down"),
                       ("investor-min", "least one subscription may be"), ("investor-max", "most one may be")):
        p.add_argument(f"--{name}", type=_integer, required=True, metavar="N", help=f"cash base units: {what}")
    p.add_argument("--opens-at", type=_integer, required=True, metavar="UNIX_S",
                   help="first second subscriptions are taken (block time)")
    p.add_argument("--closes-at", type=_integer, required=True, metavar="UNIX_S",
                   help="the window's end: subscriptions until the second before, the close from this second")
    p.add_argument("--cash-wallet", type=_address, required=True, metavar="ADDR",
                   help="the issuer's wallet that receives the cash (64 hex digits or a key file)")
    signed(p)
    p.set_defaults(run=open_offering)

    help_text = "subscribe: reserve cash in your wallet for the offering (the units come to the same wallet)"
    p = group.add_parser("subscribe", help=help_text, description=help_text)
    offering_id(p)
    p.add_argument("--amount", type=_integer, required=True, metavar="N", help="cash base units to subscribe")
    signed(p)
    p.set_defaults(run=act, verb="subscribe")

    for verb, (_, verb_help) in VERBS.items():
        p = group.add_parser(verb, help=verb_help, description=verb_help)
        offering_id(p)
        signed(p)
        p.set_defaults(run=act, verb=verb)

    p = group.add_parser("show", help="an offering: terms, status, totals (with --identity, its subscription)")
    offering_id(p)
    p.add_argument("--identity", help="also show this identity's subscription")
    rpc_flag(p)
    p.set_defaults(run=show)
    p = group.add_parser("list", help="offerings, filtered and paginated")
    p.add_argument("--token", help="of this offered token")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--after", help="the `next` of the previous page")
    p.add_argument("--limit", type=_limit, help="page size")
    rpc_flag(p)
    p.set_defaults(run=list_offerings)
    p = group.add_parser("subscriptions", help="an offering's subscriptions by identity, paginated")
    offering_id(p)
    p.add_argument("--after", help="the `next` of the previous page (an identity)")
    p.add_argument("--limit", type=_limit, help="page size")
    rpc_flag(p)
    p.set_defaults(run=subscriptions)


# --- transactions ----------------------------------------------------------------------------------


def build(signer: Signer, args: Any) -> bytes:
    """The signed transaction `args` asks for."""
    if args.verb == "open":
        return signer.open_offering(
            args.id, args.token, args.cash_token, price=args.price, raise_min=args.raise_min,
            raise_max=args.raise_max, investor_min=args.investor_min, investor_max=args.investor_max,
            opens_at=args.opens_at, closes_at=args.closes_at, cash_wallet=args.cash_wallet)
    if args.verb == "subscribe":
        return signer.subscribe(args.id, args.amount)
    return getattr(signer, VERBS[args.verb][0])(args.id)


def checked(args: Any, key: Any) -> None:
    """Build once with a throw-away nonce: a value the ledger would refuse is a usage error that
    names its flag, before any node is asked."""
    try:
        build(Signer(key, "check", 0), args)
    except InvalidTransaction as exc:
        where, colon, problem = str(exc).partition(": ")
        flag = FLAGS.get(where) if colon else None
        raise commands.CliError(f"{flag}: {problem}" if flag else f"offering {args.verb}: {exc}",
                                exit_code=2) from None
    except (ValueError, TypeError) as exc:  # text that cannot be encoded, such as undecodable bytes
        raise commands.CliError(f"offering {args.verb}: {exc}", exit_code=2) from None


def open_offering(args: Any) -> dict[str, Any] | commands.Outcome:
    args.verb = "open"
    return act(args)


def act(args: Any) -> dict[str, Any] | commands.Outcome:
    """`offering open|subscribe|withdraw|close|cancel ID`: sign, send, and wait for the block."""
    url = commands.rpc_url(args.rpc)
    key = commands.load_signing_key(args.key)
    checked(args, key)
    client = commands.rpc_client(url)
    result = commands.sign_and_send(client, key, lambda signer: build(signer, args), no_wait=args.no_wait)
    if result.get("status") != "committed":
        return commands.finished(result)
    offering = commands.rpc_call(client, "offering_get", id=args.id)
    return {**result, "offering": args.id, "offering_status": offering["status"]}


# --- queries -----------------------------------------------------------------------------------------


def show(args: Any) -> dict[str, Any]:
    url = commands.rpc_url(args.rpc)
    params: dict[str, Any] = {"id": args.id}
    if args.identity is not None:
        params["identity"] = args.identity
    return commands.rpc_call(commands.rpc_client(url), "offering_get", **params)


def list_offerings(args: Any) -> dict[str, Any]:
    url = commands.rpc_url(args.rpc)
    params = {name: getattr(args, name) for name in ("token", "status", "after", "limit")
              if getattr(args, name) is not None}
    return commands.rpc_call(commands.rpc_client(url), "offering_list", **params)


def subscriptions(args: Any) -> dict[str, Any]:
    url = commands.rpc_url(args.rpc)
    params = {"id": args.id, **{name: getattr(args, name) for name in ("after", "limit")
                                if getattr(args, name) is not None}}
    return commands.rpc_call(commands.rpc_client(url), "offering_subscriptions", **params)
