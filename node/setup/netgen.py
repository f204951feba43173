"""Writing node homes and networks: keys, configs, genesis files and node cards.

Below the command line (`cli/` parses arguments and calls these), beside the node (nothing here
runs one). Two ways to a chain:

- **One member, one host** (what a consortium does): `init_home` writes a node's keys, config and
  card in its home on the member's own machine; the keys never leave it. The cards (public: keys
  and the address where peers dial the node) go to whoever runs the genesis ceremony
  (`cli/genesis.py`); the agreed genesis comes back and `install_genesis` puts it in the home and
  sets the node's peers from the cards.
- **A whole network in one directory** (`generate`): `secledger testnet`, `make run` and the
  tests; on loopback, or spread over several hosts (`hosts`), one node per host in turn.

Every function checks all its inputs before it writes anything: a bad one raises `SetupError`
naming the parameter, and nothing is left half written.

Layout written by `generate` into DIR:
    genesis.toml                   the chain every node starts from
    keys/<node>.node.json          peer-link keys; keys/<validator>.validator.json consensus keys
                                   (each config also names keys/<validator>.next.validator.json, the
                                   key a rotation would switch to: the operator creates it when needed)
    keys/admin.json                the first administrator's account key (and, by default, the key of
                                   the single consortium member)
    keys/member-<i>.json           with `members=N`: the account key of each of N members
    <node>.toml                    one config per node (validator-0 ... observer-0 ...)
    data/<node>/                   created by each node on start (store, double-sign guard)

Layout written by `init_home` into HOME:
    config.toml                    the node's config (paths relative to HOME)
    keys/node.json                 its peer-link key (mode 0600, in a 0700 directory)
    keys/validator.json            a validator's consensus key (mode 0600)
    card.json                      the public card to send to the genesis ceremony
    genesis.toml                   written by `install_genesis`
    data/                          created by the node on start

Members (docs/GOVERNANCE.md): `secledger testnet` and `make run` write one member, "consortium",
holding the admin key and deciding every class of proposal alone (a threshold of 1 of 1:
`members=None`), so a local network is governed like a consortium's and its walk-throughs stay
short. `members=N` names N members deciding by 2/3 (and no administrator); `members=0`, the
default of `generate` for the tests that build networks in-process, none at all (the
administrator rules the chain roles and the validator set is the genesis one for good).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledger import Genesis, GenesisObserver, GenesisValidator
from ledger.client import new_key
from ledger.genesis import CHAIN_ID_PATTERN, CHAIN_ID_RULE, GenesisMember, Thresholds
from ledger.kinds import MEMBERS_MAX
from node.setup.config import (
    MONIKER_PATTERN,
    Address,
    ConfigError,
    ConsensusSection,
    MetricsSection,
    NodeConfig,
    NodeSection,
    P2pSection,
    Peer,
    RpcSection,
    load_config,
    parse_address,
    render_config,
)
from node.setup.genesis_file import GenesisFileError, load_genesis, render_genesis
from node.setup.keys import KeyFileError, load_key, save_key

DEFAULT_PORT_BASE: Final[int] = 26600
#: The member of a single-operator network, which holds keys/admin.json.
CONSORTIUM_MEMBER: Final[str] = "consortium"
#: Most validators, and most observers, one `generate` writes.
NODES_MAX: Final[int] = 100
#: Where the metrics ports of a generated network start, above its peer and RPC ports (at most
#: 2 * 2 * NODES_MAX of them on one host).
METRICS_PORT_OFFSET: Final[int] = 1000
#: Voting power of each validator `generate` writes.
VALIDATOR_POWER: Final[int] = 10
#: The first line of every card, so a card is recognised as one (and its version known).
CARD_FORMAT: Final[str] = "secledger-card/1"
#: Default RPC listen address of `init_home`: loopback, so nothing else can reach it unasked, and
#: the port the CLI asks by default (validator-0's of `make run`), so `secledger query` on the
#: member's host needs no --rpc.
INIT_RPC_LISTEN: Final[Address] = Address("127.0.0.1", DEFAULT_PORT_BASE + 1)
#: Default peer listen address of an observer's `init_home`: it only dials out.
INIT_OBSERVER_LISTEN: Final[Address] = Address("127.0.0.1", DEFAULT_PORT_BASE)
_INIT_CONFIG_HEADER: Final[str] = (
    "# Written by `secledger init`; p2p.peers (and the genesis file) by `secledger genesis install`.\n"
    "# Every key is explained in configs/validator.example.toml.\n\n"
)

__all__ = ["CARD_FORMAT", "MEMBERS_MAX", "Card", "NodePlan", "SetupError", "generate", "init_home",
           "install_genesis", "load_card", "member_keys", "parse_hosts", "plan"]


class SetupError(ValueError):
    """A bad input to a generator, named: `field` is the parameter ("chain_id", "hosts", ...) or
    the file whose content is wrong. `conflict`: the inputs are well formed but clash with what is
    already there (a home that holds a node, a genesis that does not name this node)."""

    def __init__(self, field: str, problem: str, *, conflict: bool = False) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.conflict = conflict


# --- a whole network ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    mode: str
    p2p_port: int
    rpc_port: int
    #: The host it runs on: its peer port listens on this address, and peers dial it there. Its RPC
    #: listens on that host's loopback.
    host: str = "127.0.0.1"

    @property
    def config_file(self) -> str:
        return f"{self.name}.toml"

    @property
    def rpc_url(self) -> str:
        """The RPC URL, on the node's own host."""
        return f"http://127.0.0.1:{self.rpc_port}/"


def plan(validators: int, observers: int, port_base: int, hosts: Sequence[str] = ("127.0.0.1",)) -> list[NodePlan]:
    """Names, hosts and ports: node i runs on hosts[i % len(hosts)] (validators first, then
    observers), and the k-th node on a host takes ports port_base + 2k (peers) and + 2k + 1 (RPC)."""
    names = [(f"validator-{i}", "validator") for i in range(validators)]
    names += [(f"observer-{i}", "observer") for i in range(observers)]
    on_host: dict[str, int] = {}
    nodes = []
    for index, (name, mode) in enumerate(names):
        host = hosts[index % len(hosts)]
        k = on_host[host] = on_host.get(host, -1) + 1
        nodes.append(NodePlan(name, mode, port_base + 2 * k, port_base + 2 * k + 1, host))
    return nodes


def parse_hosts(text: str) -> list[str]:
    """"h1,h2,..." as host names or IP addresses (IPv6 bare or in brackets), each once."""
    hosts = []
    for item in text.split(","):
        host = item.strip().removeprefix("[").removesuffix("]")
        address = parse_address(f"[{host}]:1" if ":" in host else f"{host}:1")
        if address is None:
            raise SetupError("hosts", f"expected host names or IP addresses separated by commas, got {item!r}")
        if _is_unspecified(address.host):
            raise SetupError("hosts", f"{host} is no address another host can dial")
        if address.host in hosts:
            raise SetupError("hosts", f"{host} is given twice")
        hosts.append(address.host)
    return hosts


def member_keys(out: Path) -> dict[str, str]:
    """Member id -> its key file, for the network in `out` (read back from its genesis)."""
    genesis = tomllib.loads((out / "genesis.toml").read_text())
    admin = out / "keys" / "admin.json"
    return {m["id"]: str(admin if m["id"] == CONSORTIUM_MEMBER else out / "keys" / f"{m['id']}.json")
            for m in genesis.get("members", ())}


def generate(out: Path, *, validators: int = 4, observers: int = 1, host: str = "127.0.0.1",
             hosts: Sequence[str] | None = None, port_base: int = DEFAULT_PORT_BASE,
             chain_id: str = "secledger-local", consensus: ConsensusSection | None = None,
             members: int | None = 0, metrics: bool = False) -> list[NodePlan]:
    """Write a whole network into `out` (which must not hold one already). `hosts`: spread the
    nodes over these hosts in turn (default: all on `host`). `members`: 0 (the default here) for
    none; None for the single "consortium" member holding the admin key (1 of 1), which is what
    `secledger testnet` and `make run` write; N for N members deciding by 2/3. `metrics`: serve
    GET /metrics, the k-th node on a host at port_base + METRICS_PORT_OFFSET + k (`make run` does)."""
    # Spread over hosts, each node's RPC stays on its own host's loopback (it has no authentication).
    rpc_host = host if not hosts else "127.0.0.1"
    hosts = list(hosts) if hosts else [host]
    _check_network(out, validators, observers, hosts, port_base, chain_id, members)
    if metrics and port_base + METRICS_PORT_OFFSET + -(-(validators + observers) // len(hosts)) - 1 > 65_535:
        raise SetupError("port_base", f"expected at most {65_536 - METRICS_PORT_OFFSET - validators - observers} "
                                      "(the metrics ports lie above the peer and RPC ports)")
    keys = out / "keys"
    nodes = plan(validators, observers, port_base, hosts)
    node_keys = {}
    for node in nodes:
        save_key(keys / f"{node.name}.node.json", new_key())
        node_keys[node.name] = bytes(load_key(keys / f"{node.name}.node.json").verify_key)
        if node.mode == "validator":
            save_key(keys / f"{node.name}.validator.json", new_key())
    admins: tuple[bytes, ...] = ()
    if not members:
        save_key(keys / "admin.json", new_key())
        admins = (bytes(load_key(keys / "admin.json").verify_key),)
    consortium: tuple[GenesisMember, ...] = ()
    thresholds = None
    if members is None:
        consortium = (GenesisMember(CONSORTIUM_MEMBER, "Consortium (single operator)", admins),)
        thresholds = Thresholds(validators=(1, 1), members=(1, 1), roles=(1, 1), params=(1, 1))
    elif members:
        for i in range(members):
            save_key(keys / f"member-{i}.json", new_key())
        consortium = tuple(GenesisMember(f"member-{i}", f"Member {i}",
                                         (bytes(load_key(keys / f"member-{i}.json").verify_key),))
                           for i in range(members))
        thresholds = Thresholds(validators=(2, 3), members=(2, 3), roles=(2, 3), params=(2, 3))
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=time.time_ns() // 1_000_000,
        validators=tuple(
            GenesisValidator(n.name, bytes(load_key(keys / f"{n.name}.validator.json").verify_key),
                             node_keys[n.name], VALIDATOR_POWER)
            for n in nodes if n.mode == "validator"),
        observers=tuple(GenesisObserver(n.name, node_keys[n.name]) for n in nodes if n.mode == "observer"),
        admins=admins,
        members=consortium,
        thresholds=thresholds,
    )
    (out / "genesis.toml").write_text(render_genesis(genesis))
    for node in nodes:
        # Validators dial every other validator; an observer dials every validator.
        peers = tuple(Peer(node_keys[p.name].hex(), Address(p.host, p.p2p_port))
                      for p in nodes if p.mode == "validator" and p.name != node.name)
        config = NodeConfig(
            node=NodeSection(moniker=node.name, mode=node.mode, home=(out / "data" / node.name).resolve(),
                             genesis_file=(out / "genesis.toml").resolve(),
                             node_key_file=(keys / f"{node.name}.node.json").resolve(),
                             validator_key_file=(keys / f"{node.name}.validator.json").resolve()
                             if node.mode == "validator" else None,
                             # not written here: created by the operator before a key rotation
                             next_validator_key_file=(keys / f"{node.name}.next.validator.json").resolve()
                             if node.mode == "validator" else None),
            p2p=P2pSection(listen=Address(node.host, node.p2p_port), peers=peers),
            rpc=RpcSection(listen=Address(rpc_host, node.rpc_port)),
            consensus=consensus or ConsensusSection(),
            metrics=MetricsSection(enabled=metrics, listen=Address(
                rpc_host, port_base + METRICS_PORT_OFFSET + (node.p2p_port - port_base) // 2)),
        )
        (out / node.config_file).write_text(render_config(config, relative_to=out))
    return nodes


def _check_network(out: Path, validators: int, observers: int, hosts: list[str], port_base: int, chain_id: str,
                   members: int | None) -> None:
    if (out / "genesis.toml").exists():
        raise SetupError("out", f"{out} already holds a network (genesis.toml exists)", conflict=True)
    if out.exists() and not out.is_dir():
        raise SetupError("out", f"{out} exists and is not a directory")
    if not isinstance(chain_id, str) or not CHAIN_ID_PATTERN.fullmatch(chain_id):
        raise SetupError("chain_id", f"expected {CHAIN_ID_RULE}, got {chain_id!r}")
    if not 1 <= validators <= NODES_MAX:
        raise SetupError("validators", f"expected 1 to {NODES_MAX}, got {validators}")
    if not 0 <= observers <= NODES_MAX:
        raise SetupError("observers", f"expected 0 to {NODES_MAX}, got {observers}")
    if members is not None and not 0 <= members <= MEMBERS_MAX:
        raise SetupError("members", f"expected 0 to {MEMBERS_MAX}, got {members}")
    if not hosts:
        raise SetupError("hosts", "expected at least one host")
    per_host = -(-(validators + observers) // len(hosts))
    if not 1 <= port_base or port_base + 2 * per_host - 1 > 65_535:
        raise SetupError("port_base", f"expected 1 to {65_536 - 2 * per_host} (each node on a host takes two "
                                      f"ports), got {port_base}")


# --- one member's node -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    """The public part of a node that its member sends to the genesis ceremony: its name, its
    peer-link key, a validator's consensus key, and the address where peers dial it."""

    name: str
    mode: str  # "validator" or "observer"
    node_key: bytes
    consensus_key: bytes | None  # a validator's; None for an observer
    address: Address | None  # None: an observer that only dials out

    def to_dict(self) -> dict[str, Any]:
        card: dict[str, Any] = {"format": CARD_FORMAT, "name": self.name, "mode": self.mode}
        if self.consensus_key is not None:
            card["consensus_key"] = self.consensus_key.hex()
        card["node_key"] = self.node_key.hex()
        if self.address is not None:
            card["address"] = str(self.address)
        return card

    @property
    def peer(self) -> Peer | None:
        return None if self.address is None else Peer(self.node_key.hex(), self.address)


def load_card(path: str | Path) -> Card:
    """Read a card; a problem raises SetupError naming the file and the key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SetupError(str(path), "no such card file") from None
    except (OSError, ValueError) as exc:
        raise SetupError(str(path), f"not a card ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        raise SetupError(str(path), f'not a card (expected "format": "{CARD_FORMAT}", as `secledger init` writes)')
    mode = data.get("mode")
    allowed = {"format", "name", "mode", "node_key", "address"} | ({"consensus_key"} if mode == "validator" else set())
    for key in sorted(set(data) - allowed):
        raise SetupError(str(path), f"{key}: unknown key" + (" for an observer" if key == "consensus_key" else ""))
    if mode not in ("validator", "observer"):
        raise SetupError(str(path), f'mode: expected "validator" or "observer", got {mode!r}')
    name = data.get("name")
    if not isinstance(name, str) or not MONIKER_PATTERN.fullmatch(name):
        raise SetupError(str(path), f"name: expected 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    address = None
    if "address" in data or mode == "validator":
        address = parse_address(data.get("address"))
        if address is None:
            raise SetupError(str(path), f'address: expected "host:port", got {data.get("address")!r}')
    return Card(name=name, mode=mode, node_key=_card_key(path, "node_key", data.get("node_key")),
                consensus_key=_card_key(path, "consensus_key", data.get("consensus_key"))
                if mode == "validator" else None, address=address)


def _card_key(path: Path, key: str, value: Any) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SetupError(str(path), f"{key}: expected 64 hex digits (an Ed25519 public key)")
    return raw


def init_home(home: Path, *, moniker: str, listen: str | None, external_address: str | None,
              observer: bool = False, rpc_listen: str | None = None) -> Card:
    """Write a node's keys, config and card into `home` (see the layout above); return its card.
    A validator needs `listen` and `external_address`; an observer, which only dials out, may leave
    both out. Refuses a home that already holds a config or keys."""
    config_file, card_file, keys = home / "config.toml", home / "card.json", home / "keys"
    mode = "observer" if observer else "validator"
    if not isinstance(moniker, str) or not MONIKER_PATTERN.fullmatch(moniker):
        raise SetupError("moniker", f"expected 1-64 letters, digits, '.', '_' or '-' (starting with a letter or "
                                    f"digit), got {moniker!r}")
    if not observer:
        for field, value in (("listen", listen), ("external_address", external_address)):
            if value is None:
                raise SetupError(field, "required for a validator (the other members' nodes dial it)")
    listen_at = _listen_address("listen", listen) if listen is not None else INIT_OBSERVER_LISTEN
    external = _dial_address("external_address", external_address) if external_address is not None else None
    rpc_at = _listen_address("rpc_listen", rpc_listen) if rpc_listen is not None else INIT_RPC_LISTEN
    if rpc_at == listen_at:
        raise SetupError("rpc_listen", f"same address as the peer listen address ({listen_at})")
    if external is not None and listen_at.is_loopback and not external.is_loopback:
        raise SetupError("listen", f"{listen_at} is loopback: nodes on other hosts could not reach "
                                   f"{external}; listen on the host's address or 0.0.0.0")
    if home.exists() and not home.is_dir():
        raise SetupError("home", f"{home} exists and is not a directory")
    for path in (config_file, card_file, keys / "node.json", keys / "validator.json"):
        if path.exists():
            raise SetupError("home", f"{home} already holds a node ({path.name} exists); choose another "
                                     "directory, or remove it to start again", conflict=True)
    keys.mkdir(parents=True, exist_ok=True)
    keys.chmod(0o700)
    home = home.resolve()
    save_key(home / "keys" / "node.json", new_key())
    node_key = bytes(load_key(home / "keys" / "node.json").verify_key)
    consensus_key = None
    if not observer:
        save_key(home / "keys" / "validator.json", new_key())
        consensus_key = bytes(load_key(home / "keys" / "validator.json").verify_key)
    config = NodeConfig(
        node=NodeSection(moniker=moniker, mode=mode, home=home / "data", genesis_file=home / "genesis.toml",
                         node_key_file=home / "keys" / "node.json",
                         validator_key_file=None if observer else home / "keys" / "validator.json",
                         next_validator_key_file=None if observer else home / "keys" / "next.validator.json"),
        p2p=P2pSection(listen=listen_at, external_address=external),
        rpc=RpcSection(listen=rpc_at),
    )
    _write(home / "config.toml", _INIT_CONFIG_HEADER + render_config(config, relative_to=home))
    card = Card(name=moniker, mode=mode, node_key=node_key, consensus_key=consensus_key, address=external)
    _write(home / "card.json", json.dumps(card.to_dict(), indent=2) + "\n")
    return card


def install_genesis(home: Path, genesis_file: Path, cards: Iterable[Path] = ()) -> dict[str, Any]:
    """Put the agreed genesis in a node's home (where its config names it) and set its peers from
    the cards: a validator dials every other validator, an observer every validator. Refuses a
    genesis that does not name this node, and a home that already holds another genesis. Returns
    what it did: the genesis hash, the peers, and the validators it has no card for."""
    config_file = home / "config.toml"
    try:
        config = load_config(config_file, check_files=False)
    except ConfigError as exc:
        raise SetupError("home", f"{exc} (write one with `secledger init`)") from None
    try:
        genesis = load_genesis(genesis_file)
    except GenesisFileError as exc:
        raise SetupError("genesis", str(exc)) from None
    node = config.node
    try:
        node_key = bytes(load_key(node.node_key_file).verify_key)
        consensus_key = bytes(load_key(node.validator_key_file).verify_key) if node.validator_key_file else None
    except KeyFileError as exc:
        raise SetupError("home", str(exc)) from None
    if consensus_key is not None:
        mine = [v for v in genesis.validators if v.validator_key == consensus_key]
        if not mine:
            raise SetupError("genesis", f"{genesis_file}: does not name this node's consensus key "
                                        f"{consensus_key.hex()} as a validator", conflict=True)
        if mine[0].node_key != node_key:
            raise SetupError("genesis", f"{genesis_file}: names validator {mine[0].name} with node key "
                                        f"{mine[0].node_key.hex()}, not this node's {node_key.hex()}",
                              conflict=True)
    elif node_key not in {o.node_key for o in genesis.observers}:
        raise SetupError("genesis", f"{genesis_file}: does not name this observer's node key {node_key.hex()} "
                                    "(the ceremony adds it with `secledger genesis add-observer`)", conflict=True)
    by_node_key = {v.node_key: v for v in genesis.validators}
    addresses: dict[bytes, Address] = {}
    for path in cards:
        card = load_card(path)
        if card.mode != "validator":
            continue  # nobody dials an observer
        validator = by_node_key.get(card.node_key)
        if validator is None or validator.validator_key != card.consensus_key:
            raise SetupError(str(path), f"the card of {card.name} does not match any validator of {genesis_file}",
                             conflict=True)
        assert card.address is not None
        addresses[card.node_key] = card.address
    dialled = [v for v in genesis.validators if v.node_key != node_key]
    peers = {p.node_key: p for p in config.p2p.peers}
    for validator in dialled:
        if validator.node_key in addresses:
            peers[validator.node_key.hex()] = Peer(validator.node_key.hex(), addresses[validator.node_key])
    target = node.genesis_file
    text = render_genesis(genesis)
    if target.exists() and target.resolve() != genesis_file.resolve():
        try:
            present = load_genesis(target)
        except GenesisFileError:
            present = None
        if present is None or present.hash != genesis.hash:
            raise SetupError("home", f"{target} already holds another genesis; a node never changes chains: "
                                     "remove it (and the node's data) to start again", conflict=True)
    if not target.exists() or target.resolve() != genesis_file.resolve():
        _write(target, text)
    updated = dataclasses.replace(config, p2p=dataclasses.replace(config.p2p, peers=tuple(peers.values())))
    _write(config_file, _INIT_CONFIG_HEADER + render_config(updated, relative_to=config_file.resolve().parent))
    return {"genesis": str(target), "genesis_hash": genesis.hash.hex(), "chain_id": genesis.chain_id,
            "config": str(config_file), "peers": [str(p) for p in updated.p2p.peers],
            "validators_without_card": [v.name for v in dialled if v.node_key not in addresses]}


def _listen_address(field: str, value: str) -> Address:
    address = parse_address(value)
    if address is None:
        raise SetupError(field, f'expected "host:port" (IPv6 in brackets), got {value!r}')
    return address


def _dial_address(field: str, value: str) -> Address:
    address = _listen_address(field, value)
    if _is_unspecified(address.host) or address.port == 0:
        raise SetupError(field, f"{value} is no address another host can dial")
    return address


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _write(path: Path, text: str) -> None:
    """Atomically (a temporary file, then a rename), so a crash leaves the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
