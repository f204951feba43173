"""What each `secledger` subcommand does. Transactions are built and signed here, locally, with
`ledger.client`; only signed bytes go to the node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.client import Action, Signer, new_key
from ledger.errors import InvalidTransaction
from ledger.governance import PROPOSAL_LIFETIME_MAX, STATUSES
from ledger.kinds import ACTION_CLASSES, GOVERNED_ROLES, PARAM_BOUNDS, check_body
from node.keys import KeyFileError, load_key, save_key
from node.rpc.client import RpcClient, RpcError, RpcTransportError

from . import testnet as testnet_module

DEFAULT_RPC = os.environ.get("SECLEDGER_RPC", "http://127.0.0.1:26601/")


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- keys ----------------------------------------------------------------------------------------


def keys_new(args: Any) -> dict[str, str]:
    try:
        save_key(args.file, new_key())
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    return keys_show(args)


def keys_show(args: Any) -> dict[str, str]:
    try:
        key = load_key(args.file)
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    return {"file": str(args.file), "address": bytes(key.verify_key).hex()}


def address(value: str) -> bytes:
    """64 hex digits, or the path of a key file whose public key is meant."""
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    if Path(value).exists():
        try:
            return bytes(load_key(value).verify_key)
        except KeyFileError as exc:
            raise CliError(str(exc)) from None
    raise CliError(f"{value!r} is neither 64 hex digits nor a key file")


# --- networks ----------------------------------------------------------------------------------------


def _members_flag(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= testnet_module.MEMBERS_MAX:
        raise CliError(f"--members: expected 0 to {testnet_module.MEMBERS_MAX}, got {value}", exit_code=2)
    return value


def testnet(args: Any) -> dict[str, Any]:
    members = _members_flag(args.members)
    try:
        nodes = testnet_module.generate(args.out, validators=args.validators, observers=args.observers,
                                        port_base=args.port_base, chain_id=args.chain_id, members=members)
    except (FileExistsError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return {"dir": str(args.out), "nodes": [{"name": n.name, "mode": n.mode, "config": str(args.out / n.config_file),
                                            "rpc": f"http://127.0.0.1:{n.rpc_port}/"} for n in nodes],
            "members": testnet_module.member_keys(args.out)}


def start(args: Any) -> int:
    from node.main import run

    return run(str(args.config))


def up(args: Any) -> int:
    """Run every node of a local network as its own process until Ctrl-C (or SIGTERM)."""
    directory: Path = args.dir
    if not (directory / "genesis.toml").exists():
        testnet_module.generate(directory, validators=args.validators, observers=args.observers,
                                port_base=args.port_base, members=_members_flag(args.members))
        print(f"generated a network of {args.validators} validators and {args.observers} observer(s) in {directory}/")
    configs = sorted(directory.glob("*.toml"), key=lambda p: (not p.name.startswith("validator"), p.name))
    configs = [c for c in configs if c.name != "genesis.toml"]
    (directory / "logs").mkdir(exist_ok=True)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from node.config import load_config

    try:
        for config_path in configs:
            config = load_config(config_path)
            log_file = open(directory / "logs" / f"{config.node.moniker}.log", "ab")  # noqa: SIM115
            process = subprocess.Popen([sys.executable, "-m", "cli.main", "start", "--config", str(config_path)],
                                       stdout=log_file, stderr=log_file)
            processes.append((config.node.moniker, process))
            print(f"{config.node.moniker:<14} {config.node.mode:<10} rpc http://{config.rpc.listen}/  "
                  f"log {directory}/logs/{config.node.moniker}.log")
        members = testnet_module.member_keys(directory)
        for member_id, key_file in members.items():
            print(f"member {member_id}: key {key_file}")
        admin = directory / "keys" / "admin.json"
        if admin.exists() and str(admin) not in members.values():
            print(f"admin key: {admin}")
        print("Ctrl-C stops the network")
        while not stopping:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; see its log", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    print("network stopped")
    return 0


# --- transactions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    name: str
    help: str = ""
    required: bool = True
    action: str | None = None
    default: Any = None
    nargs: str | None = None


@dataclass(frozen=True)
class TxSpec:
    name: str
    help: str
    args: tuple[Arg, ...]
    build: Callable[[Signer, Any], bytes]
    extra: dict[str, Any] = field(default_factory=dict)


def _agents(values: list[str] | None) -> dict[bytes, list[str]]:
    agents: dict[bytes, list[str]] = {}
    for value in values or []:
        who, _, roles = value.partition("=")
        if not roles:
            raise CliError(f"--agent {value!r}: expected ADDRESS=role,role")
        agents[address(who)] = sorted(roles.split(","))
    return agents


def _rules(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        rules = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--rules: not JSON ({exc})") from None
    if not isinstance(rules, dict):
        raise CliError("--rules: expected a JSON object")
    return rules


def _payments(values: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for value in values:
        identity, _, wallet = value.partition("=")
        if not wallet:
            raise CliError(f"--payment {value!r}: expected IDENTITY=WALLET")
        out.append((identity, address(wallet)))
    return out


def _classes(values: list[str]) -> list[list[Any]]:
    """TOKEN:SENIORITY:PREFERENCE_PER_UNIT:participating|non-participating[:CAP_PER_UNIT][:no-convert]"""
    out = []
    for value in values:
        parts = value.split(":")
        if len(parts) < 4 or parts[3] not in ("participating", "non-participating"):
            raise CliError(f"--class {value!r}: expected TOKEN:SENIORITY:PREFERENCE:participating|non-participating"
                           "[:CAP][:no-convert]")
        extra = parts[4:]
        convertible = "no-convert" not in extra
        caps = [p for p in extra if p != "no-convert"]
        out.append([parts[0], int(parts[1]), int(parts[2]), parts[3] == "participating",
                    int(caps[0]) if caps else None, convertible])
    return out


def _content_hash(value: str) -> bytes:
    """64 hex digits, or a file whose SHA-256 is meant."""
    import hashlib

    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    if Path(value).is_file():
        return hashlib.sha256(Path(value).read_bytes()).digest()
    raise CliError(f"--hash {value!r}: neither 64 hex digits nor a file")


A = address
TX_SPECS: tuple[TxSpec, ...] = (
    TxSpec("grant-role", "an administrator grants admin, claim_issuer or token_issuer (on a chain with members, "
           "a member proposes it: see `gov propose grant-role`)",
           (Arg("role"), Arg("account")), lambda s, a: s.grant_role(a.role, A(a.account))),
    TxSpec("revoke-role", "an administrator revokes a role (on a chain with members, a member proposes it)",
           (Arg("role"), Arg("account")), lambda s, a: s.revoke_role(a.role, A(a.account))),
    TxSpec("register-identity", "a claim issuer registers an investor identity with its wallets",
           (Arg("identity"), Arg("wallet", nargs="+")),
           lambda s, a: s.register_identity(a.identity, [A(w) for w in a.wallet])),
    TxSpec("add-wallet", "a claim issuer adds a wallet to an identity", (Arg("identity"), Arg("wallet")),
           lambda s, a: s.add_wallet(a.identity, A(a.wallet))),
    TxSpec("grant-claim", "a claim issuer grants or renews a claim (kyc, accredited, country, investor_type)",
           (Arg("identity"), Arg("topic"), Arg("value", required=False, default=""),
            Arg("expires-at", help="unix time in seconds")),
           lambda s, a: s.grant_claim(a.identity, a.topic, int(a.expires_at), a.value)),
    TxSpec("revoke-claim", "a claim issuer revokes its claim", (Arg("identity"), Arg("topic")),
           lambda s, a: s.revoke_claim(a.identity, a.topic)),
    TxSpec("create-token", "a token issuer creates a token",
           (Arg("symbol"), Arg("name"), Arg("decimals", required=False, default="0"),
            Arg("paused", required=False, action="store_true", default=False),
            Arg("rules", required=False, help='JSON, e.g. {"required_claims": ["kyc"], "holders_max": 2000}'),
            Arg("agent", required=False, nargs="*", help="ADDRESS=role,role (supply, freeze, pause, "
                                                         "force_transfer, recovery)")),
           lambda s, a: s.create_token(a.symbol, a.name, decimals=int(a.decimals), paused=a.paused,
                                       rules=_rules(a.rules), agents=_agents(a.agent))),
    TxSpec("set-agent", "the token owner sets an agent's roles (none removes it)",
           (Arg("token"), Arg("agent"), Arg("roles", required=False, default="")),
           lambda s, a: s.set_agent(a.token, A(a.agent), [r for r in a.roles.split(",") if r])),
    TxSpec("set-rules", "the token owner replaces the token's rules", (Arg("token"), Arg("rules")),
           lambda s, a: s.set_rules(a.token, _rules(a.rules))),
    TxSpec("issue", "an agent issues new units to a verified investor", (Arg("token"), Arg("to"), Arg("amount")),
           lambda s, a: s.issue(a.token, A(a.to), int(a.amount))),
    TxSpec("redeem", "an agent redeems units from a wallet", (Arg("token"), Arg("from"), Arg("amount")),
           lambda s, a: s.redeem(a.token, A(getattr(a, "from")), int(a.amount))),
    TxSpec("transfer", "a holder transfers units", (Arg("token"), Arg("to"), Arg("amount")),
           lambda s, a: s.transfer(a.token, A(a.to), int(a.amount))),
    TxSpec("force-transfer", "an agent moves units between wallets",
           (Arg("token"), Arg("from"), Arg("to"), Arg("amount")),
           lambda s, a: s.force_transfer(a.token, A(getattr(a, "from")), A(a.to), int(a.amount))),
    TxSpec("freeze", "an agent freezes an address", (Arg("token"), Arg("address")),
           lambda s, a: s.freeze(a.token, A(a.address))),
    TxSpec("unfreeze", "an agent unfreezes an address", (Arg("token"), Arg("address")),
           lambda s, a: s.unfreeze(a.token, A(a.address))),
    TxSpec("freeze-partial", "an agent freezes part of a balance", (Arg("token"), Arg("address"), Arg("amount")),
           lambda s, a: s.freeze_partial(a.token, A(a.address), int(a.amount))),
    TxSpec("unfreeze-partial", "an agent unfreezes part of a balance", (Arg("token"), Arg("address"), Arg("amount")),
           lambda s, a: s.unfreeze_partial(a.token, A(a.address), int(a.amount))),
    TxSpec("pause", "an agent pauses holder transfers", (Arg("token"),), lambda s, a: s.pause(a.token)),
    TxSpec("unpause", "an agent resumes holder transfers", (Arg("token"),), lambda s, a: s.unpause(a.token)),
    TxSpec("recover", "an agent moves a lost wallet's holding to a new wallet of the same identity",
           (Arg("token"), Arg("lost-wallet"), Arg("new-wallet")),
           lambda s, a: s.recover(a.token, A(a.lost_wallet), A(a.new_wallet))),
    TxSpec("set-document", "the token owner attaches or updates a document",
           (Arg("token"), Arg("name"), Arg("uri"), Arg("hash", help="64 hex digits, or a file to hash")),
           lambda s, a: s.set_document(a.token, a.name, a.uri, _content_hash(a.hash))),
    TxSpec("remove-document", "the token owner removes a document", (Arg("token"), Arg("name")),
           lambda s, a: s.remove_document(a.token, a.name)),
    TxSpec("declare-distribution", "declare a dividend or coupon per unit held at a record height, funded now",
           (Arg("id"), Arg("token"), Arg("payment-token"), Arg("record-height"),
            Arg("rate", help="payment base units per unit, as N or N/D"), Arg("expires-at", help="unix seconds")),
           lambda s, a: s.declare_distribution(a.id, a.token, a.payment_token, record_height=int(a.record_height),
                                               rate_num=int(a.rate.partition("/")[0]),
                                               rate_den=int(a.rate.partition("/")[2] or 1),
                                               expires_at=int(a.expires_at))),
    TxSpec("claim-distribution", "a holder claims its payment", (Arg("id"),),
           lambda s, a: s.claim_distribution(a.id)),
    TxSpec("pay-distribution", "an agent pushes payments", (Arg("id"), Arg("payment", nargs="+",
                                                                        help="IDENTITY=WALLET")),
           lambda s, a: s.pay_distribution(a.id, _payments(a.payment))),
    TxSpec("reclaim-distribution", "the declarer takes back the unpaid remainder after expiry", (Arg("id"),),
           lambda s, a: s.reclaim_distribution(a.id)),
    TxSpec("declare-liquidation", "split a liquidation amount across share classes by the waterfall",
           (Arg("id"), Arg("payment-token"), Arg("amount"), Arg("record-height"), Arg("expires-at"),
            Arg("class", nargs="+", help="TOKEN:SENIORITY:PREFERENCE_PER_UNIT:participating|non-participating"
                                         "[:CAP_PER_UNIT][:no-convert]")),
           lambda s, a: s.declare_liquidation(a.id, a.payment_token, amount=int(a.amount),
                                              record_height=int(a.record_height), expires_at=int(a.expires_at),
                                              classes=_classes(getattr(a, "class")))),
    TxSpec("create-ballot", "open a shareholder vote",
           (Arg("id"), Arg("token"), Arg("question"), Arg("option", nargs="+"), Arg("record-height"),
            Arg("opens-at-height"), Arg("closes-at-height")),
           lambda s, a: s.create_ballot(a.id, a.token, a.question, a.option, record_height=int(a.record_height),
                                        opens_at_height=int(a.opens_at_height),
                                        closes_at_height=int(a.closes_at_height))),
    TxSpec("vote", "vote (or change your vote) by option number, from 0", (Arg("id"), Arg("option")),
           lambda s, a: s.vote(a.id, int(a.option))),
    TxSpec("tally", "publish a closed ballot's result", (Arg("id"),), lambda s, a: s.tally(a.id)),
)


def _client(url: str) -> RpcClient:
    return RpcClient(url, timeout_ms=75_000)


def _call(client: RpcClient, method: str, **params: Any) -> Any:
    try:
        return client.call_sync(method, **params)
    except RpcError as exc:
        detail = f" {json.dumps(exc.data)}" if exc.data else ""
        raise CliError(f"{method}: {exc}{detail}") from None
    except RpcTransportError as exc:
        raise CliError(f"cannot reach the node at {client.url}: {exc}") from None


def submit(args: Any) -> dict[str, Any]:
    key = _load_key(args.key)
    client = _client(args.rpc)
    status = _call(client, "chain_status")
    if args.spec.name in ("grant-role", "revoke-role") and args.role in GOVERNED_ROLES \
            and _call(client, "gov_members")["members"]:
        return _role_by_proposal(args, key, client, status)
    nonce = _call(client, "account_nonce", address=bytes(key.verify_key).hex())["next_nonce"]
    signer = Signer(key, status["chain_id"], nonce)
    try:
        raw = args.spec.build(signer, args)
    except (ValueError, TypeError, InvalidTransaction) as exc:
        raise CliError(f"{args.spec.name}: {exc}", exit_code=2) from None
    return _send(client, raw, no_wait=args.no_wait)


def _send(client: RpcClient, raw: bytes, *, no_wait: bool) -> dict[str, Any]:
    submitted = _call(client, "tx_submit", tx=raw.hex())
    if no_wait:
        return submitted
    result = _call(client, "tx_wait", hash=submitted["hash"], timeout_ms=30_000)
    if result.get("status") == "rejected":
        print(f"rejected: {result['code']} {result['reason']}", file=sys.stderr)
    return result


def _load_key(path: Path) -> Any:
    try:
        return load_key(path)
    except KeyFileError as exc:
        raise CliError(f"--key: {exc}", exit_code=2) from None


def _role_by_proposal(args: Any, key: Any, client: RpcClient, status: dict[str, Any]) -> dict[str, Any]:
    """`tx grant-role` / `tx revoke-role` on a chain whose genesis names members: administrators
    may not change roles there, so the signer (a member) proposes the change instead; with a
    threshold of 1 of 1 (`secledger testnet`'s single member) it executes at once."""
    action = (Action.grant_role if args.spec.name == "grant-role" else Action.revoke_role)(args.role,
                                                                                           A(args.account))
    result = _propose(client, key, status, [action], DEFAULT_EXPIRES_IN, no_wait=args.no_wait)
    print(f"note: this chain's genesis names members, so chain roles change by proposal: sent as "
          f"`gov propose {args.spec.name}` (proposal {result.get('proposal')}: {result.get('proposal_status')})",
          file=sys.stderr)
    return result


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
    GovSpec("grant-role", "grant claim_issuer or token_issuer",
            (Arg("role", help=" or ".join(GOVERNED_ROLES)), Arg("account", help="a key file or 64 hex digits")),
            lambda a: [Action.grant_role(a.role, K(a.account, "--account"))]),
    GovSpec("revoke-role", "revoke claim_issuer or token_issuer",
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


def gov_propose(args: Any) -> dict[str, Any]:
    expires_in = _flag_integer(args.expires_in, "--expires-in", 1, PROPOSAL_LIFETIME_MAX - 1)
    actions = args.spec.build(args)
    _checked_actions(actions)
    key = _load_key(args.key)
    client = _client(args.rpc)
    return _propose(client, key, _call(client, "chain_status"), actions, expires_in, no_wait=args.no_wait)


def _propose(client: RpcClient, key: Any, status: dict[str, Any], actions: list[dict[str, Any]], expires_in: int,
             *, no_wait: bool) -> dict[str, Any]:
    nonce = _call(client, "account_nonce", address=bytes(key.verify_key).hex())["next_nonce"]
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
        print(f"proposal {proposal_id} failed: {proposal['failure']['code']} {proposal['failure']['reason']} "
              f"(action {proposal['failure']['action']})", file=sys.stderr)
    return out


def _proposal_id(value: str) -> int:
    try:
        proposal_id = int(value)
    except ValueError:
        proposal_id = 0
    if proposal_id < 1:
        raise CliError(f"ID: expected a proposal number (1, 2, ...), got {value!r}", exit_code=2)
    return proposal_id


def gov_vote(args: Any) -> dict[str, Any]:
    """`gov approve`, `gov reject`, `gov withdraw`."""
    proposal_id = _proposal_id(args.id)
    key = _load_key(args.key)
    client = _client(args.rpc)
    status = _call(client, "chain_status")
    nonce = _call(client, "account_nonce", address=bytes(key.verify_key).hex())["next_nonce"]
    signer = Signer(key, status["chain_id"], nonce)
    raw = getattr(signer, args.verb)(proposal_id)
    return _with_proposal(client, _send(client, raw, no_wait=args.no_wait), proposal_id)


def gov_list(args: Any) -> dict[str, Any]:
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
    return _call(_client(args.rpc), "gov_proposals", **params)


def gov_show(args: Any) -> dict[str, Any]:
    return _call(_client(args.rpc), "gov_proposal", id=_proposal_id(args.id))


def gov_members(args: Any) -> dict[str, Any]:
    return _call(_client(args.rpc), "gov_members")


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
    ("events", "events by token, address, kind, heights", (
        ("token", "symbol", False), ("address", "address or key file", False), ("kind", "event kind", False),
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
                  "documents": "token_documents", "distribution": "distribution_get", "ballot": "ballot_get"}
_INTEGER_PARAMS = {"height", "limit", "from_height", "to_height", "amount"}
_ADDRESS_PARAMS = {"address", "sender", "receiver"}


def query(args: Any) -> Any:
    params: dict[str, Any] = {}
    for name, _, required in dict((q[0], q) for q in QUERY_SPECS)[args.query_name][2]:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name in _INTEGER_PARAMS:
            try:
                value = int(value)
            except ValueError:
                flag = name.upper() if required else f"--{name.replace('_', '-')}"
                raise CliError(f"{flag}: expected an integer, got {value!r}", exit_code=2) from None
        elif name in _ADDRESS_PARAMS:
            value = address(value).hex()
        params[name] = value
    return _call(_client(args.rpc), _QUERY_METHODS[args.query_name], **params)
