"""What each `secledger` subcommand does. Transactions are built and signed here, locally, with
`ledger.client`; only signed bytes go to the node.

Errors: a subcommand raises `CliError` with one line that names the flag, argument or file at
fault, and the exit code: 2 when the command line is wrong (a malformed or out-of-range value, a
file it names that is missing or unreadable), 1 when the command was well formed and the operation
failed (the node cannot be reached or refuses, a transaction is refused or rejected in its block).
Every value is checked before any node is asked. `cli.main` prints the line and exits.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ledger.client import Action, Signer, new_key
from ledger.errors import InvalidTransaction
from ledger.governance import PROPOSAL_LIFETIME_MAX, STATUSES
from ledger.kinds import ACTION_CLASSES, GOVERNED_ROLES, PARAM_BOUNDS, check_body
from node.setup.keys import KeyFileError, load_key, save_key

if TYPE_CHECKING:  # the RPC client pulls in aiohttp: imported only when a node is asked
    from node.rpc.client import RpcClient

#: The node a command asks when neither --rpc nor SECLEDGER_RPC says otherwise: validator-0 of
#: `make run`'s network.
DEFAULT_RPC: Final[str] = "http://127.0.0.1:26601/"
#: The environment variable that overrides DEFAULT_RPC (and is overridden by --rpc).
RPC_VARIABLE: Final[str] = "SECLEDGER_RPC"
#: How long one call to a node may take, connection included (tx_wait waits up to 30 s of it).
RPC_TIMEOUT_MS: int = 75_000
#: JSON-RPC "invalid params": the node found a value of ours malformed, a usage error.
_INVALID_PARAMS: Final[int] = -32602
#: JSON-RPC "not found".
_NOT_FOUND: Final[int] = -32001


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Outcome:
    """A result to print on stdout that is nonetheless a failure (exit_code 1): a transaction
    rejected in its block, a proposal that failed. Its one-line reason went to stderr."""

    result: Any
    exit_code: int


# --- keys ----------------------------------------------------------------------------------------


def keys_new(args: Any) -> dict[str, str]:
    try:
        save_key(args.file, new_key())
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{args.file}: cannot write ({exc.strerror or exc})", exit_code=2) from None
    return keys_show(args)


def keys_show(args: Any) -> dict[str, str]:
    try:
        key = load_key(args.file)
    except KeyFileError as exc:
        raise CliError(str(exc), exit_code=2) from None
    return {"file": str(args.file), "address": bytes(key.verify_key).hex()}


def address(value: str) -> bytes:
    """64 hex digits, or the path of a key file whose public key is meant."""
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    if path_exists(value):
        try:
            return bytes(load_key(value).verify_key)
        except KeyFileError as exc:
            raise CliError(str(exc), exit_code=2) from None
    raise CliError(f"{value!r} is neither 64 hex digits nor a key file", exit_code=2)


def public_key(value: str) -> bytes:
    """An Ed25519 public key from what a member may send: 64 hex digits, a key file, or a file
    holding the output of `secledger keys show` (its "address")."""
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    if not path_exists(value):
        raise CliError(f"{value!r} is neither 64 hex digits nor a file", exit_code=2)
    try:
        data = json.loads(Path(value).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{value}: not a key file nor `keys show` output ({exc})", exit_code=2) from None
    text = data.get("public_key", data.get("address")) if isinstance(data, dict) else None
    try:
        key = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CliError(f"{value}: no public key in it (expected a key file, or `keys show` output with an "
                       "\"address\" of 64 hex digits)", exit_code=2)
    return key


def path_exists(value: str) -> bool:
    try:
        return Path(value).exists()
    except (OSError, ValueError):  # a name too long, or with a NUL in it
        return False


# --- command-line values (argparse types: an error names the flag) ----------------------------------


def _type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a converter that raises CliError: argparse then names the flag."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except CliError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__
    return parse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CliError(f"expected an integer, got {text!r}") from None


def _rate(text: str) -> tuple[int, int]:
    """N or N/D: payment base units per unit held."""
    num, slash, den = text.partition("/")
    try:
        numerator, denominator = int(num), int(den) if slash else 1
    except ValueError:
        raise CliError(f"expected N or N/D (integers), got {text!r}") from None
    if denominator < 1:
        raise CliError(f"expected a denominator of at least 1, got {text!r}")
    return numerator, denominator


def _rules(text: str) -> dict[str, Any]:
    try:
        rules = json.loads(text)
    except ValueError as exc:
        raise CliError(f"not JSON ({exc})") from None
    if not isinstance(rules, dict):
        raise CliError("expected a JSON object, e.g. {\"required_claims\": [\"kyc\"]}")
    return rules


def _agent(text: str) -> tuple[bytes, list[str]]:
    who, _, roles = text.partition("=")
    if not roles:
        raise CliError(f"expected ADDRESS=role,role, got {text!r}")
    return address(who), sorted(roles.split(","))


def _payment(text: str) -> tuple[str, bytes]:
    identity, _, wallet = text.partition("=")
    if not wallet:
        raise CliError(f"expected IDENTITY=WALLET, got {text!r}")
    return identity, address(wallet)


def _share_class(text: str) -> list[Any]:
    """TOKEN:SENIORITY:PREFERENCE_PER_UNIT:participating|non-participating[:CAP_PER_UNIT][:no-convert]"""
    parts = text.split(":")
    usage = ("expected TOKEN:SENIORITY:PREFERENCE:participating|non-participating[:CAP][:no-convert], "
             f"got {text!r}")
    if len(parts) < 4 or parts[3] not in ("participating", "non-participating"):
        raise CliError(usage)
    extra = parts[4:]
    caps = [p for p in extra if p != "no-convert"]
    if len(caps) > 1:
        raise CliError(usage)
    try:
        return [parts[0], int(parts[1]), int(parts[2]), parts[3] == "participating",
                int(caps[0]) if caps else None, "no-convert" not in extra]
    except ValueError:
        raise CliError(usage) from None


def _content_hash(value: str) -> bytes:
    """64 hex digits, or a file whose SHA-256 is meant."""
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    if path_exists(value) and Path(value).is_file():
        try:
            return hashlib.sha256(Path(value).read_bytes()).digest()
        except OSError as exc:
            raise CliError(f"{value}: cannot read ({exc.strerror or exc})") from None
    raise CliError(f"{value!r}: neither 64 hex digits nor a file")


def _path(text: str) -> Path:
    """A path the system accepts (not too long, no NUL), whether or not it exists."""
    if not text.strip():
        raise CliError("expected a path, got an empty one")
    try:
        os.stat(text)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, ValueError) as exc:
        raise CliError(f"not a usable path ({getattr(exc, 'strerror', None) or exc}): {text[:80]!r}") from None
    return Path(text)


INTEGER = _type(_integer)
ADDRESS = _type(address)
PATH = _type(_path)


# --- networks and nodes -------------------------------------------------------------------------------


def start(args: Any) -> int:
    from node.main import run

    return run(str(args.config))


# --- transactions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    name: str
    help: str = ""
    required: bool = True
    action: str | None = None
    default: Any = None
    nargs: str | None = None
    type: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class TxSpec:
    name: str
    help: str
    args: tuple[Arg, ...]
    build: Callable[[Signer, Any], bytes]
    extra: dict[str, Any] = field(default_factory=dict)


#: Body fields whose flag is not `--` and the field's name with `-` for `_`.
_BODY_FLAGS: Final[dict[str, str]] = {
    "wallets": "--wallet", "agents": "--agent", "rate_num": "--rate", "rate_den": "--rate",
    "payments": "--payment", "classes": "--class", "options": "--option",
}


def body_flag(spec: TxSpec, field_name: str) -> str | None:
    """The flag of `spec` that gives the body field `field_name`, or None."""
    flag = _BODY_FLAGS.get(field_name, "--" + field_name.replace("_", "-"))
    return flag if flag[2:] in {arg.name for arg in spec.args} else None


def _built(spec: TxSpec, signer: Signer, args: Any) -> bytes:
    """The signed transaction; a value the ledger would refuse is a usage error naming its flag."""
    try:
        return spec.build(signer, args)
    except InvalidTransaction as exc:
        where, colon, problem = str(exc).partition(": ")
        flag = body_flag(spec, where.split(".", 1)[0].split("[", 1)[0]) if colon else None
        if flag is None:
            raise CliError(f"tx {spec.name}: {exc}", exit_code=2) from None
        detail = f" (at {where})" if "." in where or "[" in where else ""
        raise CliError(f"{flag}: {problem}{detail}", exit_code=2) from None
    except (ValueError, TypeError) as exc:  # text that cannot be encoded, such as undecodable bytes
        raise CliError(f"tx {spec.name}: {exc}", exit_code=2) from None


N = INTEGER
A = ADDRESS
TX_SPECS: tuple[TxSpec, ...] = (
    TxSpec("grant-role", "an administrator grants admin, claim_issuer, token_issuer or venue_operator (on a chain "
           "with members, a member proposes it: see `gov propose grant-role`)",
           (Arg("role"), Arg("account", type=A)), lambda s, a: s.grant_role(a.role, a.account)),
    TxSpec("revoke-role", "an administrator revokes a role (on a chain with members, a member proposes it)",
           (Arg("role"), Arg("account", type=A)), lambda s, a: s.revoke_role(a.role, a.account)),
    TxSpec("register-identity", "a claim issuer registers an investor identity with its wallets",
           (Arg("identity"), Arg("wallet", nargs="+", type=A)),
           lambda s, a: s.register_identity(a.identity, a.wallet)),
    TxSpec("add-wallet", "a claim issuer adds a wallet to an identity", (Arg("identity"), Arg("wallet", type=A)),
           lambda s, a: s.add_wallet(a.identity, a.wallet)),
    TxSpec("grant-claim", "a claim issuer grants or renews a claim (kyc, accredited, country, investor_type)",
           (Arg("identity"), Arg("topic"), Arg("value", required=False, default=""),
            Arg("expires-at", help="unix time in seconds", type=N)),
           lambda s, a: s.grant_claim(a.identity, a.topic, a.expires_at, a.value)),
    TxSpec("revoke-claim", "a claim issuer revokes its claim", (Arg("identity"), Arg("topic")),
           lambda s, a: s.revoke_claim(a.identity, a.topic)),
    TxSpec("create-token", "a token issuer creates a token",
           (Arg("symbol"), Arg("name"), Arg("decimals", required=False, default="0", type=N),
            Arg("paused", required=False, action="store_true", default=False),
            Arg("rules", required=False, type=_type(_rules),
                help='JSON, e.g. {"required_claims": ["kyc"], "holders_max": 2000}'),
            Arg("agent", required=False, nargs="*", type=_type(_agent),
                help="ADDRESS=role,role (supply, freeze, pause, force_transfer, recovery)")),
           lambda s, a: s.create_token(a.symbol, a.name, decimals=a.decimals, paused=a.paused,
                                       rules=a.rules or {}, agents=dict(a.agent or ()))),
    TxSpec("set-agent", "the token owner sets an agent's roles (none removes it)",
           (Arg("token"), Arg("agent", type=A), Arg("roles", required=False, default="")),
           lambda s, a: s.set_agent(a.token, a.agent, [r for r in a.roles.split(",") if r])),
    TxSpec("set-rules", "the token owner replaces the token's rules", (Arg("token"), Arg("rules", type=_type(_rules))),
           lambda s, a: s.set_rules(a.token, a.rules)),
    TxSpec("set-name", "the token owner renames the token", (Arg("token"), Arg("name")),
           lambda s, a: s.set_name(a.token, a.name)),
    TxSpec("issue", "an agent issues new units to a verified investor",
           (Arg("token"), Arg("to", type=A), Arg("amount", type=N)),
           lambda s, a: s.issue(a.token, a.to, a.amount)),
    TxSpec("redeem", "an agent redeems units from a wallet", (Arg("token"), Arg("from", type=A), Arg("amount", type=N)),
           lambda s, a: s.redeem(a.token, getattr(a, "from"), a.amount)),
    TxSpec("transfer", "a holder transfers units", (Arg("token"), Arg("to", type=A), Arg("amount", type=N)),
           lambda s, a: s.transfer(a.token, a.to, a.amount)),
    TxSpec("force-transfer", "an agent moves units between wallets",
           (Arg("token"), Arg("from", type=A), Arg("to", type=A), Arg("amount", type=N)),
           lambda s, a: s.force_transfer(a.token, getattr(a, "from"), a.to, a.amount)),
    TxSpec("freeze", "an agent freezes an address", (Arg("token"), Arg("address", type=A)),
           lambda s, a: s.freeze(a.token, a.address)),
    TxSpec("unfreeze", "an agent unfreezes an address", (Arg("token"), Arg("address", type=A)),
           lambda s, a: s.unfreeze(a.token, a.address)),
    TxSpec("freeze-partial", "an agent freezes part of a balance",
           (Arg("token"), Arg("address", type=A), Arg("amount", type=N)),
           lambda s, a: s.freeze_partial(a.token, a.address, a.amount)),
    TxSpec("unfreeze-partial", "an agent unfreezes part of a balance",
           (Arg("token"), Arg("address", type=A), Arg("amount", type=N)),
           lambda s, a: s.unfreeze_partial(a.token, a.address, a.amount)),
    TxSpec("pause", "an agent pauses holder transfers", (Arg("token"),), lambda s, a: s.pause(a.token)),
    TxSpec("unpause", "an agent resumes holder transfers", (Arg("token"),), lambda s, a: s.unpause(a.token)),
    TxSpec("recover", "an agent moves a lost wallet's holding to a new wallet of the same identity",
           (Arg("token"), Arg("lost-wallet", type=A), Arg("new-wallet", type=A)),
           lambda s, a: s.recover(a.token, a.lost_wallet, a.new_wallet)),
    TxSpec("set-document", "the token owner attaches or updates a document",
           (Arg("token"), Arg("name"), Arg("uri"),
            Arg("hash", help="64 hex digits, or a file to hash", type=_type(_content_hash))),
           lambda s, a: s.set_document(a.token, a.name, a.uri, a.hash)),
    TxSpec("remove-document", "the token owner removes a document", (Arg("token"), Arg("name")),
           lambda s, a: s.remove_document(a.token, a.name)),
    TxSpec("declare-distribution", "declare a dividend or coupon per unit held at a record height, funded now",
           (Arg("id"), Arg("token"), Arg("payment-token"), Arg("record-height", type=N),
            Arg("rate", help="payment base units per unit, as N or N/D", type=_type(_rate)),
            Arg("expires-at", help="unix seconds", type=N)),
           lambda s, a: s.declare_distribution(a.id, a.token, a.payment_token, record_height=a.record_height,
                                               rate_num=a.rate[0], rate_den=a.rate[1], expires_at=a.expires_at)),
    TxSpec("claim-distribution", "a holder claims its payment", (Arg("id"),),
           lambda s, a: s.claim_distribution(a.id)),
    TxSpec("pay-distribution", "an agent pushes payments",
           (Arg("id"), Arg("payment", nargs="+", help="IDENTITY=WALLET", type=_type(_payment))),
           lambda s, a: s.pay_distribution(a.id, a.payment)),
    TxSpec("reclaim-distribution", "the declarer takes back the unpaid remainder after expiry", (Arg("id"),),
           lambda s, a: s.reclaim_distribution(a.id)),
    TxSpec("declare-liquidation", "split a liquidation amount across share classes by the waterfall",
           (Arg("id"), Arg("payment-token"), Arg("amount", type=N), Arg("record-height", type=N),
            Arg("expires-at", type=N),
            Arg("class", nargs="+", type=_type(_share_class),
                help="TOKEN:SENIORITY:PREFERENCE_PER_UNIT:participating|non-participating[:CAP_PER_UNIT][:no-convert]")),
           lambda s, a: s.declare_liquidation(a.id, a.payment_token, amount=a.amount, record_height=a.record_height,
                                              expires_at=a.expires_at, classes=getattr(a, "class"))),
    TxSpec("create-ballot", "open a shareholder vote",
           (Arg("id"), Arg("token"), Arg("question"), Arg("option", nargs="+"), Arg("record-height", type=N),
            Arg("opens-at-height", type=N), Arg("closes-at-height", type=N)),
           lambda s, a: s.create_ballot(a.id, a.token, a.question, a.option, record_height=a.record_height,
                                        opens_at_height=a.opens_at_height, closes_at_height=a.closes_at_height)),
    TxSpec("vote", "vote (or change your vote) by option number, from 0", (Arg("id"), Arg("option", type=N)),
           lambda s, a: s.vote(a.id, a.option)),
    TxSpec("tally", "publish a closed ballot's result", (Arg("id"),), lambda s, a: s.tally(a.id)),
)


# --- talking to a node ---------------------------------------------------------------------------------


def rpc_url(value: str | None) -> str:
    """The node's URL from --rpc, else SECLEDGER_RPC, else DEFAULT_RPC. "host:port" means
    http://host:port/. A malformed one is a usage error naming where it came from."""
    source = "--rpc"
    if value is None:
        value, source = os.environ.get(RPC_VARIABLE) or DEFAULT_RPC, RPC_VARIABLE
    text = value.strip()
    if "://" not in text:
        text = f"http://{text}"
    problem = None
    try:
        parsed = urllib.parse.urlsplit(text)
        port = parsed.port
    except ValueError as exc:
        parsed, port, problem = None, None, str(exc)
    if parsed is not None and problem is None:
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
            problem = "contains spaces or control characters"
        elif parsed.scheme not in ("http", "https"):
            problem = f"scheme {parsed.scheme!r} is not http or https"
        elif not parsed.hostname:
            problem = "no host"
        elif port is None:
            problem = "no port"
    if problem is not None or parsed is None:
        raise CliError(f"{source}: expected a node URL such as http://127.0.0.1:26601/ or 127.0.0.1:26601, "
                       f"got {value!r} ({problem})", exit_code=2)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path or "/", parsed.query, ""))


def _client(url: str) -> RpcClient:
    from node.rpc.client import RpcClient

    return RpcClient(url, timeout_ms=RPC_TIMEOUT_MS)


def _call(client: RpcClient, method: str, *, missing_ok: bool = False, **params: Any) -> Any:
    from node.rpc.client import RpcError, RpcTransportError

    try:
        return client.call_sync(method, **params)
    except RpcError as exc:
        if missing_ok and exc.code == _NOT_FOUND:
            return None
        detail = f" {json.dumps(exc.data)}" if exc.data else ""
        raise CliError(f"{method}: {exc}{detail}", exit_code=2 if exc.code == _INVALID_PARAMS else 1) from None
    except (RpcTransportError, http.client.HTTPException, OSError, ValueError) as exc:
        raise CliError(f"cannot reach the node at {client.url} (--rpc): {_transport_reason(exc, client)}") from None


def rpc_client(url: str) -> RpcClient:
    """The CLI's client for `url` (for other command modules, such as cli/export.py)."""
    return _client(url)


def rpc_call(client: RpcClient, method: str, *, missing_ok: bool = False, **params: Any) -> Any:
    """One call; a failure is a `CliError` of one line (exit 2 for params the node found malformed,
    1 for any other refusal or an unreachable node). `missing_ok`: "not found" answers None."""
    return _call(client, method, missing_ok=missing_ok, **params)


def load_signing_key(path: Path) -> Any:
    """The --key file's key (for other command modules, such as cli/settle.py); an unusable file is
    a usage error naming --key."""
    return _load_key(path)


def sign_and_send(client: RpcClient, key: Any, build: Callable[[Signer], bytes], *, no_wait: bool) -> dict[str, Any]:
    """Sign `build`'s transaction with the key's next nonce on the node's chain, submit it, and wait
    for its block unless `no_wait`."""
    status = _call(client, "chain_status")
    return _send(client, build(Signer(key, status["chain_id"], _next_nonce(client, key))), no_wait=no_wait)


def finished(result: dict[str, Any]) -> dict[str, Any] | Outcome:
    """A transaction rejected in its block is a failure: its receipt, the reason on stderr, exit 1."""
    return _finished(result)


def _transport_reason(exc: BaseException, client: RpcClient) -> str:
    """Why no answer came, in a few words: "connection refused", "timed out after 75 s", ..."""
    import socket
    import urllib.error

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError | socket.timeout):
            return f"timed out after {client.timeout_ms / 1000:g} s"
        if isinstance(seen, urllib.error.URLError) and not isinstance(seen, urllib.error.HTTPError):
            reason = seen.reason
            if isinstance(reason, BaseException):
                seen = reason
                continue
            return str(reason)
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused; is a node running there?"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        if isinstance(seen, http.client.HTTPException):
            return f"not an HTTP answer ({type(seen).__name__}): is this a node's RPC port?"
        seen = seen.__cause__
    return str(exc).removeprefix(f"{client.url}: ") or type(exc).__name__


def submit(args: Any) -> dict[str, Any] | Outcome:
    url = rpc_url(args.rpc)
    key = _load_key(args.key)
    _built(args.spec, Signer(key, "check", 0), args)  # every value checked before the node is asked
    client = _client(url)
    status = _call(client, "chain_status")
    if args.spec.name in ("grant-role", "revoke-role") and args.role in GOVERNED_ROLES \
            and _call(client, "gov_members")["members"]:
        return _role_by_proposal(args, key, client, status)
    nonce = _next_nonce(client, key)
    raw = _built(args.spec, Signer(key, status["chain_id"], nonce), args)
    return _finished(_send(client, raw, no_wait=args.no_wait))


def _next_nonce(client: RpcClient, key: Any) -> int:
    """The nonce to sign with next; the node sends it as a decimal string (docs/RPC.md, "Numbers")."""
    return int(_call(client, "account_nonce", address=bytes(key.verify_key).hex())["next_nonce"])


def _send(client: RpcClient, raw: bytes, *, no_wait: bool) -> dict[str, Any]:
    submitted = _call(client, "tx_submit", tx=raw.hex())
    if no_wait:
        return submitted
    return _call(client, "tx_wait", hash=submitted["hash"], timeout_ms=30_000)


def _finished(result: dict[str, Any]) -> dict[str, Any] | Outcome:
    """A transaction rejected in its block (by a rule that changed since it was admitted) is a
    failure: its receipt on stdout, the reason on stderr, exit code 1."""
    if result.get("status") == "rejected":
        print(f"error: transaction rejected in block {result.get('height')}: {result.get('reason')} "
              f"({result.get('code')})", file=sys.stderr)
        return Outcome(result, 1)
    failure = result.get("proposal_failure")
    if failure:
        print(f"error: proposal {result.get('proposal')} failed: {failure['code']} {failure['reason']} "
              f"(action {failure['action']}); nothing of it was applied", file=sys.stderr)
        return Outcome(result, 1)
    return result


def _load_key(path: Path) -> Any:
    try:
        return load_key(path)
    except KeyFileError as exc:
        raise CliError(f"--key: {exc}", exit_code=2) from None


def _role_by_proposal(args: Any, key: Any, client: RpcClient, status: dict[str, Any]) -> dict[str, Any] | Outcome:
    """`tx grant-role` / `tx revoke-role` on a chain whose genesis names members: administrators
    may not change roles there, so the signer (a member) proposes the change instead; with a
    threshold of 1 of 1 (`secledger testnet`'s single member) it executes at once."""
    action = (Action.grant_role if args.spec.name == "grant-role" else Action.revoke_role)(args.role, args.account)
    result = _propose(client, key, status, [action], DEFAULT_EXPIRES_IN, no_wait=args.no_wait)
    print(f"note: this chain's genesis names members, so chain roles change by proposal: sent as "
          f"`gov propose {args.spec.name}` (proposal {result.get('proposal')}: {result.get('proposal_status')})",
          file=sys.stderr)
    return _finished(result)


# --- governance ---------------------------------------------------------------------------------------

#: Blocks a proposal stays open after the block it lands in, unless --expires-in says otherwise.
DEFAULT_EXPIRES_IN: int = 1000
#: The flag of the CLI that gives each field of an action, to name it in an error.
_ACTION_FLAGS: dict[str, str] = {
    "validator_key": "--consensus-key", "node_key": "--node-key", "power": "--power", "address": "--address",
    "name": "--name", "new_validator_key": "--new-consensus-key", "new_node_key": "--new-node-key", "id": "--id",
    "keys": "--member-key", "role": "--role", "account": "--account", "value": "--value",
}


def _flag_integer(value: Any, flag: str, lo: int | None = None, hi: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CliError(f"{flag}: expected an integer, got {value!r}", exit_code=2) from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise CliError(f"{flag}: expected {lo} to {hi}, got {number}", exit_code=2)
    return number


def _flag_key(value: str, flag: str) -> bytes:
    """An Ed25519 public key given as 64 hex digits or as a key file, named by its flag in errors."""
    try:
        return address(value)
    except CliError as exc:
        raise CliError(f"{flag}: {exc}", exit_code=2) from None


@dataclass(frozen=True)
class GovSpec:
    name: str
    help: str
    args: tuple[Arg, ...]
    build: Callable[[Any], list[dict[str, Any]]]


K = _flag_key
GOV_SPECS: tuple[GovSpec, ...] = (
    GovSpec("add-validator", "add a validator (effective two blocks after the proposal executes)",
            (Arg("consensus-key", help="its consensus (validator) key: a key file or 64 hex digits"),
             Arg("node-key", help="its peer-link node key: a key file or 64 hex digits"),
             Arg("power", help="voting power"), Arg("address", help="host:port where peers dial it"),
             Arg("name", required=False, help="a label (default: validator- and the key's first 8 hex digits)")),
            lambda a: [Action.add_validator(K(a.consensus_key, "--consensus-key"), K(a.node_key, "--node-key"),
                                            _flag_integer(a.power, "--power"), a.address,
                                            a.name or f"validator-{K(a.consensus_key, '--consensus-key').hex()[:8]}")]),
    GovSpec("remove-validator", "remove a validator", (Arg("consensus-key", help="its consensus key"),),
            lambda a: [Action.remove_validator(K(a.consensus_key, "--consensus-key"))]),
    GovSpec("set-power", "change a validator's voting power",
            (Arg("consensus-key", help="its consensus key"), Arg("power", help="the new voting power")),
            lambda a: [Action.set_validator_power(K(a.consensus_key, "--consensus-key"),
                                                  _flag_integer(a.power, "--power"))]),
    GovSpec("rotate-key", "give a validator new consensus and node keys (either may stay)",
            (Arg("consensus-key", help="its current consensus key"),
             Arg("new-consensus-key", help="its new consensus key"), Arg("new-node-key", help="its new node key")),
            lambda a: [Action.rotate_validator(K(a.consensus_key, "--consensus-key"),
                                               K(a.new_consensus_key, "--new-consensus-key"),
                                               K(a.new_node_key, "--new-node-key"))]),
    GovSpec("add-member", "add a consortium member",
            (Arg("id", help="member id: 1 to 64 of A-Z a-z 0-9 . _ -"), Arg("name", help="display name"),
             Arg("member-key", nargs="+", help="its account keys: key files or 64 hex digits")),
            lambda a: [Action.add_member(a.id, a.name, sorted({K(k, "--member-key") for k in a.member_key}))]),
    GovSpec("remove-member", "remove a consortium member", (Arg("id", help="member id"),),
            lambda a: [Action.remove_member(a.id)]),
    GovSpec("set-member-keys", "replace a member's account keys",
            (Arg("id", help="member id"), Arg("member-key", nargs="+", help="its new account keys")),
            lambda a: [Action.set_member_keys(a.id, sorted({K(k, "--member-key") for k in a.member_key}))]),
    GovSpec("grant-role", "grant claim_issuer, token_issuer or venue_operator",
            (Arg("role", help=" or ".join(GOVERNED_ROLES)), Arg("account", help="a key file or 64 hex digits")),
            lambda a: [Action.grant_role(a.role, K(a.account, "--account"))]),
    GovSpec("revoke-role", "revoke claim_issuer, token_issuer or venue_operator",
            (Arg("role", help=" or ".join(GOVERNED_ROLES)), Arg("account", help="a key file or 64 hex digits")),
            lambda a: [Action.revoke_role(a.role, K(a.account, "--account"))]),
    GovSpec("set-param", "set a chain parameter",
            (Arg("name", help=", ".join(f"{n} ({lo}..{hi})" for n, (lo, hi) in PARAM_BOUNDS.items())),
             Arg("value", help="an integer within the parameter's bounds")),
            lambda a: [Action.set_param(a.name, _flag_integer(a.value, "--value"))]),
)


def _checked_actions(actions: list[dict[str, Any]]) -> None:
    """Check the actions as the ledger will decode them, before any node is asked; an error names
    the flag that gave the field."""
    try:
        check_body("gov.propose", {"actions": actions, "expires_at_height": 1})
    except InvalidTransaction as exc:
        where, _, problem = str(exc).partition(": ")
        field = where.rsplit(".", 1)[-1].split("[", 1)[0]
        raise CliError(f"{_ACTION_FLAGS.get(field, where)}: {problem}", exit_code=2) from None


def gov_propose(args: Any) -> dict[str, Any] | Outcome:
    url = rpc_url(args.rpc)
    expires_in = _flag_integer(args.expires_in, "--expires-in", 1, PROPOSAL_LIFETIME_MAX - 1)
    actions = args.spec.build(args)
    _checked_actions(actions)
    key = _load_key(args.key)
    client = _client(url)
    return _finished(_propose(client, key, _call(client, "chain_status"), actions, expires_in,
                              no_wait=args.no_wait))


def _propose(client: RpcClient, key: Any, status: dict[str, Any], actions: list[dict[str, Any]], expires_in: int,
             *, no_wait: bool) -> dict[str, Any]:
    nonce = _next_nonce(client, key)
    signer = Signer(key, status["chain_id"], nonce)
    # the proposal lands in the next block at the earliest, and stays open `expires_in` blocks after it
    raw = signer.propose(actions, expires_at_height=status["height"] + 1 + expires_in)
    result = _send(client, raw, no_wait=no_wait)
    ids = [e["data"]["proposal"] for e in result.get("events", ()) if e["kind"] == "gov.proposed"]
    return _with_proposal(client, result, ids[0] if ids else None)


def _with_proposal(client: RpcClient, result: dict[str, Any], proposal_id: int | None) -> dict[str, Any]:
    if proposal_id is None or result.get("status") != "committed":
        return result
    proposal = _call(client, "gov_proposal", id=proposal_id)
    out = {**result, "proposal": proposal_id, "proposal_status": proposal["status"]}
    if proposal["failure"]:
        out["proposal_failure"] = proposal["failure"]
    return out


def _proposal_id(value: str) -> int:
    try:
        proposal_id = int(value)
    except ValueError:
        proposal_id = 0
    if proposal_id < 1:
        raise CliError(f"ID: expected a proposal number (1, 2, ...), got {value!r}", exit_code=2)
    return proposal_id


def gov_vote(args: Any) -> dict[str, Any] | Outcome:
    """`gov approve`, `gov reject`, `gov withdraw`."""
    url = rpc_url(args.rpc)
    proposal_id = _proposal_id(args.id)
    key = _load_key(args.key)
    client = _client(url)
    status = _call(client, "chain_status")
    nonce = _next_nonce(client, key)
    signer = Signer(key, status["chain_id"], nonce)
    raw = getattr(signer, args.verb)(proposal_id)
    return _finished(_with_proposal(client, _send(client, raw, no_wait=args.no_wait), proposal_id))


def gov_list(args: Any) -> dict[str, Any]:
    url = rpc_url(args.rpc)
    params: dict[str, Any] = {}
    if args.status is not None:
        params["status"] = args.status
    if args.proposer is not None:
        params["proposer"] = args.proposer
    if args.action_class is not None:
        params["class"] = args.action_class
    if args.after is not None:
        params["after"] = _flag_integer(args.after, "--after", 0)
    if args.limit is not None:
        params["limit"] = _flag_integer(args.limit, "--limit", 1)
    return _call(_client(url), "gov_proposals", **params)


def gov_show(args: Any) -> dict[str, Any]:
    url = rpc_url(args.rpc)
    return _call(_client(url), "gov_proposal", id=_proposal_id(args.id))


def gov_members(args: Any) -> dict[str, Any]:
    return _call(_client(rpc_url(args.rpc)), "gov_members")


GOV_STATUSES: tuple[str, ...] = STATUSES
GOV_CLASSES: tuple[str, ...] = ACTION_CLASSES


# --- queries -----------------------------------------------------------------------------------------

QUERY_SPECS: tuple[tuple[str, str, tuple[tuple[str, str, bool], ...]], ...] = (
    ("status", "the node's chain status", ()),
    ("block", "a block with its certificate", (("height", "block height", True),)),
    ("validators", "the validator set", (("height", "effective at this height (default: the next block's)",
                                          False),)),
    ("evidence", "evidence of double signing", ()),
    ("token", "a token's terms, rules, supply and holders count", (("token", "symbol", True),)),
    ("balance", "a wallet's balance", (("token", "symbol", True), ("address", "address or key file", True),
                                      ("height", "at this past height", False))),
    ("holders", "a token's holders", (("token", "symbol", True), ("height", "at this past height", False),
                                      ("after", "page after this identity", False), ("limit", "page size", False))),
    ("identity", "an identity and its claims", (("identity", "identity id", True),)),
    ("tx", "a transaction's status and events", (("hash", "transaction hash", True),)),
    ("events", "events by token, address, identity, kind, heights", (
        ("token", "symbol", False), ("address", "address or key file", False), ("kind", "event kind", False),
        ("from_height", "first height", False), ("to_height", "last height", False),
        ("after", "cursor of the previous page", False), ("limit", "page size", False),
        ("identity", "events that concern this identity", False))),
    ("identity-history", "an identity's trail: claims, wallets, transfers, refusals, payments", (
        ("identity", "identity id", True), ("kind", "event kind", False),
        ("from_height", "first height", False), ("to_height", "last height", False),
        ("after", "cursor of the previous page", False), ("limit", "page size", False))),
    ("compliance", "would this transfer pass? the exact code", (
        ("token", "symbol", True), ("sender", "address or key file", True),
        ("receiver", "address or key file", True), ("amount", "amount in base units", True))),
    ("nonce", "an account's next nonce", (("address", "address or key file", True),)),
    ("documents", "a token's current documents", (("token", "symbol", True),)),
    ("distribution", "a distribution or liquidation", (("id", "action id", True),
                                                      ("identity", "with this identity's entitlement", False))),
    ("ballot", "a ballot and its running tallies", (("id", "action id", True),)),
)

_QUERY_METHODS = {"status": "chain_status", "block": "block_get", "validators": "validators_list",
                  "evidence": "evidence_list", "token": "token_get", "balance": "token_balance",
                  "holders": "token_holders", "identity": "identity_get", "tx": "tx_get",
                  "events": "events_query", "compliance": "compliance_check", "nonce": "account_nonce",
                  "documents": "token_documents", "distribution": "distribution_get", "ballot": "ballot_get",
                  "identity-history": "identity_history"}
_INTEGER_PARAMS = {"height", "limit", "from_height", "to_height", "amount"}
#: Params the node takes as u64 decimal strings (docs/RPC.md, "Numbers"): checked as integers here.
_AMOUNT_PARAMS = {"amount"}
_ADDRESS_PARAMS = {"address", "sender", "receiver"}


def query(args: Any) -> Any:
    url = rpc_url(args.rpc)
    params: dict[str, Any] = {}
    for name, _, required in dict((q[0], q) for q in QUERY_SPECS)[args.query_name][2]:
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = name.upper() if required else f"--{name.replace('_', '-')}"
        if name in _INTEGER_PARAMS:
            try:
                value = int(value)
            except ValueError:
                raise CliError(f"{flag}: expected an integer, got {value!r}", exit_code=2) from None
            if name in _AMOUNT_PARAMS:
                value = str(value)
        elif name in _ADDRESS_PARAMS:
            try:
                value = address(value).hex()
            except CliError as exc:
                raise CliError(f"{flag}: {exc}", exit_code=2) from None
        params[name] = value
    return _call(_client(url), _QUERY_METHODS[args.query_name], **params)
