"""`secledger init` and `secledger genesis ...`: a consortium set up as each member would.

Each member runs `init` on its own host: its keys are made there and never leave it; its card
(public keys, name, address) goes to whoever runs the ceremony. The ceremony builds one genesis
file, one command at a time, each editing the file named by `--genesis`:

    genesis new --chain-id ID            the empty document
    genesis add-member / add-admin       who governs (docs/GOVERNANCE.md, section 1)
    genesis set-thresholds               by how many votes
    genesis add-validator / add-observer from the members' cards (or keys)
    genesis validate / show              complete? and the hash every member compares

Until it is complete the file is a draft: every entry is checked as the ledger checks a genesis
(`Genesis.from_dict`), but validators, members, thresholds or administrators may still be
missing. Once complete it is written exactly as any genesis is. Then each member runs
`genesis install` on its host: the genesis goes into the node's home and the node's peers are set
from the cards. The writing itself is `node.setup.netgen`; this module handles flags and files.
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path
from typing import Any, Final

import tomli_w

from ledger import Genesis, InvalidGenesis
from ledger.genesis import CHAIN_ID_PATTERN, CHAIN_ID_RULE
from node.setup.genesis_file import render_genesis
from node.setup.netgen import SetupError, init_home, install_genesis, load_card

from .commands import CliError, path_exists, public_key

#: Voting power `genesis add-validator` gives unless --power says otherwise.
DEFAULT_POWER: Final[int] = 10
#: The order of a genesis document's keys, as `Genesis.to_dict` writes them.
_ORDER: Final[tuple[str, ...]] = ("chain_id", "genesis_time_ms", "validators", "observers", "admins", "members",
                                  "thresholds")
_DRAFT_HEADER: Final[str] = (
    "# secledger genesis, being put together with `secledger genesis ...` (docs/OPERATIONS.md).\n"
    "# Not complete yet: `secledger genesis validate --genesis <this file>` says what is missing.\n"
)
_INIT_FLAGS: Final[dict[str, str]] = {"moniker": "--moniker", "listen": "--listen",
                                      "external_address": "--external-address", "rpc_listen": "--rpc-listen",
                                      "home": "--home"}


# --- secledger init ------------------------------------------------------------------------------------


def init(args: Any) -> dict[str, Any]:
    try:
        card = init_home(args.home, moniker=args.moniker, listen=args.listen, external_address=args.external_address,
                         observer=args.observer, rpc_listen=args.rpc_listen)
    except SetupError as exc:
        flag = _INIT_FLAGS.get(exc.field, exc.field)
        raise CliError(f"{flag}: {exc.problem}", exit_code=1 if exc.conflict else 2) from None
    except OSError as exc:
        raise CliError(f"--home: cannot write {exc.filename or args.home}: {exc.strerror or exc}") from None
    return {"home": str(args.home), "config": str(args.home / "config.toml"), "card_file": str(args.home / "card.json"),
            "card": card.to_dict(),
            "next": f"send {args.home / 'card.json'} to the member who runs the genesis ceremony; "
                    "keys/ stays on this host"}


# --- secledger genesis ---------------------------------------------------------------------------------


def genesis_new(args: Any) -> dict[str, Any]:
    path: Path = args.genesis
    if not CHAIN_ID_PATTERN.fullmatch(args.chain_id):
        raise CliError(f"--chain-id: expected {CHAIN_ID_RULE}, got {args.chain_id!r}", exit_code=2)
    time_ms = args.genesis_time_ms if args.genesis_time_ms is not None else time.time_ns() // 1_000_000
    if not 0 <= time_ms < 2**53:
        raise CliError(f"--genesis-time-ms: expected a unix time in milliseconds, got {time_ms}", exit_code=2)
    if path_exists(str(path)):
        raise CliError(f"--genesis: {path} exists; the ceremony starts from a new file")
    data: dict[str, Any] = {"chain_id": args.chain_id, "genesis_time_ms": time_ms, "validators": [],
                            "observers": [], "admins": []}
    _save(path, data)
    return _summary(path, data)


def genesis_add_member(args: Any) -> dict[str, Any]:
    keys = [_public_key(k, "--key").hex() for k in args.key]
    return _edit(args, lambda data: data.setdefault("members", []).append(
        {"id": args.id, "name": args.name, "keys": keys}),
        {"id": "--id", "name": "--name", "keys": "--key", "members": "--id"})


def genesis_add_admin(args: Any) -> dict[str, Any]:
    keys = [_public_key(k, "--key").hex() for k in args.key]
    return _edit(args, lambda data: data.setdefault("admins", []).extend(keys), {"admins": "--key"})


def genesis_set_thresholds(args: Any) -> dict[str, Any]:
    given = {c: getattr(args, c) for c in ("validators", "members", "roles", "params")}
    if args.all is None and None in given.values():
        missing = ", ".join(f"--{c}" for c, v in given.items() if v is None)
        raise CliError(f"--all: needed, or else each of {missing} (a fraction N/D per class of proposal)", exit_code=2)
    fractions = {c: list(v if v is not None else args.all) for c, v in given.items()}
    flags = {c: f"--{c}" if given[c] is not None else "--all" for c in given}

    def change(data: dict[str, Any]) -> None:
        data["thresholds"] = fractions

    return _edit(args, change, flags)


def genesis_add_validator(args: Any) -> dict[str, Any]:
    name, consensus_key, node_key = args.name, args.consensus_key, args.node_key
    if args.card is not None:
        if consensus_key is not None or node_key is not None:
            raise CliError("--card: gives the keys already; leave out --consensus-key and --node-key", exit_code=2)
        card = _card(args.card)
        if card.mode != "validator":
            raise CliError(f"--card: {args.card} is an observer's card; add it with `genesis add-observer`",
                           exit_code=2)
        assert card.consensus_key is not None
        name, consensus, node = name or card.name, card.consensus_key, card.node_key
    else:
        for flag, value in (("--name", name), ("--consensus-key", consensus_key), ("--node-key", node_key)):
            if value is None:
                raise CliError(f"{flag}: needed without --card (or give the member's card with --card)", exit_code=2)
        consensus, node = _public_key(consensus_key, "--consensus-key"), _public_key(node_key, "--node-key")
    entry = {"name": name, "validator_key": consensus.hex(), "node_key": node.hex(), "power": args.power}
    flags = {"name": "--name", "validator_key": "--consensus-key", "node_key": "--node-key", "power": "--power"}
    if args.card is not None:
        flags.update(validator_key="--card", node_key="--card", **({} if args.name else {"name": "--card"}))
    return _edit(args, lambda data: data.setdefault("validators", []).append(entry), flags)


def genesis_add_observer(args: Any) -> dict[str, Any]:
    name, node_key = args.name, args.node_key
    flags = {"name": "--name", "node_key": "--node-key"}
    if args.card is not None:
        if node_key is not None:
            raise CliError("--card: gives the node key already; leave out --node-key", exit_code=2)
        card = _card(args.card)
        name, node = name or card.name, card.node_key
        flags.update(node_key="--card", **({} if args.name else {"name": "--card"}))
    else:
        for flag, value in (("--name", name), ("--node-key", node_key)):
            if value is None:
                raise CliError(f"{flag}: needed without --card (or give the observer's card with --card)",
                               exit_code=2)
        node = _public_key(node_key, "--node-key")
    entry = {"name": name, "node_key": node.hex()}
    return _edit(args, lambda data: data.setdefault("observers", []).append(entry), flags)


def genesis_validate(args: Any) -> dict[str, Any]:
    genesis = _complete(args.genesis)
    return {"genesis": str(args.genesis), "valid": True, "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash.hex()}


def genesis_show(args: Any) -> dict[str, Any]:
    genesis = _complete(args.genesis)
    return {"genesis": str(args.genesis), "genesis_hash": genesis.hash.hex(), **genesis.to_dict()}


def genesis_install(args: Any) -> dict[str, Any]:
    config = args.home / "config.toml"
    if not config.is_file():
        raise CliError(f"--home: {config}: no such file (write it with `secledger init --home {args.home} ...`)",
                       exit_code=2)
    if not args.genesis.is_file():
        raise CliError(f"--genesis: {args.genesis}: no such file", exit_code=2)
    cards: list[Path] = []
    for item in args.card or ():
        if item.is_dir():
            cards += sorted(item.glob("*.json"))
        elif item.is_file():
            cards.append(item)
        else:
            raise CliError(f"--card: {item}: no such file or directory", exit_code=2)
    try:
        return install_genesis(args.home, args.genesis, cards)
    except SetupError as exc:
        flag = {"home": "--home", "genesis": "--genesis"}.get(exc.field, "--card")
        raise CliError(f"{flag}: {exc.problem}" if flag != "--card" else f"--card: {exc}",
                       exit_code=1 if exc.conflict else 2) from None
    except OSError as exc:
        raise CliError(f"--home: cannot write {exc.filename or args.home}: {exc.strerror or exc}") from None


# --- the draft file ---------------------------------------------------------------------------------------


def _edit(args: Any, change: Any, flags: dict[str, str]) -> dict[str, Any]:
    """Load the draft, make one change, check it, save it. The draft must check before the change
    (or the error is the file's, not the flags'); an entry the change makes wrong names its flag."""
    path: Path = args.genesis
    data = _load(path)
    try:
        _missing(data)
    except InvalidGenesis as exc:
        raise CliError(f"--genesis: {path}: {exc} (fix the file first)") from None
    change(data)
    try:
        _missing(data)
    except InvalidGenesis as exc:
        where, _, problem = str(exc).partition(": ")
        field = where.rsplit(".", 1)[-1].split("[", 1)[0]
        flag = flags.get(field)
        if flag is None:
            raise CliError(f"--genesis: {path}: {exc}") from None
        if "the same value appears twice" in problem or "already" in problem:
            raise CliError(f"{flag}: {problem.replace('the same value appears twice', 'already in the genesis')} "
                           f"({where})") from None
        raise CliError(f"{flag}: {problem} ({where})", exit_code=2) from None
    _save(path, data)
    return _summary(path, data)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"--genesis: {path}: no such file (start one with `secledger genesis new`)",
                       exit_code=2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--genesis: {path}: cannot read ({getattr(exc, 'strerror', None) or exc})",
                       exit_code=2) from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"--genesis: {path}: not valid TOML ({exc})", exit_code=2) from None
    return data


def _missing(data: dict[str, Any]) -> list[str]:
    """What keeps the draft from being a complete genesis ([] if nothing). Raises InvalidGenesis
    for a wrong entry: the ledger's own `Genesis.from_dict` judges the draft with stand-ins for
    the missing parts (random keys and names that no entry can share)."""
    missing = []
    filled = dict(data)

    def stand_in_key() -> str:
        return os.urandom(32).hex()

    stand_in = f"stand-in-{os.urandom(6).hex()}"
    if isinstance(data.get("validators", []), list) and not data.get("validators"):
        missing.append("a validator (genesis add-validator)")
        filled["validators"] = [{"name": stand_in, "validator_key": stand_in_key(), "node_key": stand_in_key(),
                                 "power": 1}]
    if "members" in data and "thresholds" not in data:
        missing.append("thresholds for the members (genesis set-thresholds)")
        filled["thresholds"] = {c: [1, 1] for c in ("validators", "members", "roles", "params")}
    if "thresholds" in data and "members" not in data:
        missing.append("a member for the thresholds (genesis add-member)")
        filled["members"] = [{"id": stand_in, "name": stand_in, "keys": [stand_in_key()]}]
    if "members" not in data and "thresholds" not in data and isinstance(data.get("admins", []), list) \
            and not data.get("admins"):
        missing.append("a member or an administrator (genesis add-member, genesis add-admin)")
        filled["admins"] = [stand_in_key()]
    Genesis.from_dict(filled)
    return missing


def _complete(path: Path) -> Genesis:
    data = _load(path)
    try:
        missing = _missing(data)
        if missing:
            raise CliError(f"--genesis: {path}: not complete: it still needs {'; '.join(missing)}")
        return Genesis.from_dict(data)
    except InvalidGenesis as exc:
        raise CliError(f"--genesis: {path}: {exc}") from None


def _save(path: Path, data: dict[str, Any]) -> None:
    ordered = {k: data[k] for k in _ORDER if k in data} | {k: v for k, v in data.items() if k not in _ORDER}
    text = render_genesis(Genesis.from_dict(ordered)) if not _missing(ordered) else \
        _DRAFT_HEADER + "\n" + tomli_w.dumps(ordered)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"--genesis: cannot write {path}: {exc.strerror or exc}") from None


def _summary(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    missing = _missing(data)
    summary: dict[str, Any] = {
        "genesis": str(path), "chain_id": data.get("chain_id"),
        "validators": [v.get("name") for v in data.get("validators", ())],
        "observers": [o.get("name") for o in data.get("observers", ())],
        "members": [m.get("id") for m in data.get("members", ())],
        "admins": len(data.get("admins", ())), "complete": not missing}
    if missing:
        summary["missing"] = missing
    else:
        summary["genesis_hash"] = Genesis.from_dict(data).hash.hex()
    return summary


def _public_key(value: str, flag: str) -> bytes:
    try:
        return public_key(value)
    except CliError as exc:
        raise CliError(f"{flag}: {exc}", exit_code=2) from None


def _card(path: Path) -> Any:
    try:
        return load_card(path)
    except SetupError as exc:
        raise CliError(f"--card: {exc}", exit_code=2) from None
