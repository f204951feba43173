"""The node's TOML configuration: one frozen dataclass per section, loaded and checked strictly.

`load_config(path)` reads a file with `tomllib` and either returns a `NodeConfig` or raises a
`ConfigError` naming the file, the dotted key and the problem, e.g.
    configs/v0.toml: p2p.listen: expected "host:port", got "abc"
Unknown sections and unknown keys are errors, so a typo never passes silently. Only [node] is
required; every other key has the default written on its dataclass field. Relative paths are
resolved against the directory of the config file. `render_config` writes a config back.

Defaults listen on loopback only; a node reachable from other hosts must say so explicitly
(an empty host such as ":26656" is refused rather than read as "all interfaces").
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import tomli_w

MODES: Final[tuple[str, ...]] = ("validator", "observer")
LOG_LEVELS: Final[tuple[str, ...]] = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS: Final[tuple[str, ...]] = ("text", "json")
MONIKER_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NODE_KEY_PATTERN: Final[re.Pattern[str]] = re.compile(r"[0-9a-f]{64}")
"""An Ed25519 public key as 64 lower-case hex digits."""
BLOCK_HASH_PATTERN: Final[re.Pattern[str]] = re.compile(r"[0-9A-Fa-f]{64}")
"""A block header hash (SHA-256) as 64 hex digits, as `secledger query block` prints it."""
HOSTNAME_PATTERN: Final[re.Pattern[str]] = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)

TIMEOUT_MS_MAX: Final[int] = 600_000
"""Upper bound for every consensus timeout: ten minutes is a misconfiguration, not a tuning."""
PEERS_MAX: Final[int] = 1_000
"""Entries in p2p.peers or p2p.allowed_keys."""


class ConfigError(Exception):
    """A problem with one key of one file. `key` is dotted ("p2p.listen"), or "" for the file."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}" if key else f"{self.file}: {problem}")


@dataclass(frozen=True, slots=True)
class Address:
    """A "host:port" listen or dial address; IPv6 hosts are written in brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class Peer:
    """A persistent peer: its node key and where to dial it ("<64 hex>@host:port")."""

    node_key: str
    address: Address

    def __str__(self) -> str:
        return f"{self.node_key}@{self.address}"


# --- sections -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSection:
    """[node]: who this node is and where its files are. All keys but validator_key_file required."""

    moniker: str
    mode: str  # "validator" votes; "observer" follows and verifies, and its RPC is read-only
    home: Path  # data directory: LMDB store, double-sign guard; created on start if missing
    genesis_file: Path
    node_key_file: Path  # Ed25519 key that authenticates peer links
    validator_key_file: Path | None = None  # required for a validator, forbidden for an observer
    #: The key this validator's consensus key is being rotated to (docs/GOVERNANCE.md): signed
    #: with from the height the chain's rotation takes effect; may be created while the node runs.
    next_validator_key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class P2pSection:
    listen: Address = Address("127.0.0.1", 26656)
    #: Where nodes on other hosts dial this one, when that is not `listen` (a DNS name, an address
    #: behind NAT): what `secledger init` puts on the node's card. Not used by the node itself.
    external_address: Address | None = None
    peers: tuple[Peer, ...] = ()
    allowed_keys: tuple[str, ...] = ()  # node keys allowed to connect beyond the peers (observers)
    frame_bytes_max: int = 1_048_576  # largest encrypted frame on a peer link
    dial_backoff_max_ms: int = 5_000  # cap of the exponential redial delay


@dataclass(frozen=True, slots=True)
class RpcSection:
    listen: Address = Address("127.0.0.1", 26657)
    request_bytes_max: int = 1_048_576  # larger HTTP bodies and WebSocket messages answer -32004
    batch_length_max: int = 100  # entries in one JSON-RPC batch
    console: bool = True  # serve the regulator's read-only web console at /console/ (docs/CONSOLE.md)


@dataclass(frozen=True, slots=True)
class MempoolSection:
    txs_max: int = 20_000  # transactions waiting; one more is refused "mempool full"
    bytes_max: int = 67_108_864  # their total encoded size


@dataclass(frozen=True, slots=True)
class ConsensusSection:
    """Timeouts of round r last base + r * delta, capped at timeout_round_max_ms."""

    timeout_propose_ms: int = 1_000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 500
    timeout_prevote_delta_ms: int = 250
    timeout_precommit_ms: int = 500
    timeout_precommit_delta_ms: int = 250
    timeout_round_max_ms: int = 10_000
    timeout_commit_ms: int = 200  # pause after a decision before the next height
    empty_block_interval_ms: int = 1_000  # with nothing to order, wait up to this long before a new height
    block_txs_max: int = 5_000
    block_bytes_max: int = 4_194_304


@dataclass(frozen=True, slots=True)
class LogSection:
    level: str = "info"
    format: str = "text"  # "json": one JSON object per line (node/ops/logs.py)


@dataclass(frozen=True, slots=True)
class MetricsSection:
    """[metrics]: Prometheus text format at GET /metrics on its own address (docs/OPERATIONS.md)."""

    enabled: bool = False
    listen: Address = Address("127.0.0.1", 26660)


@dataclass(frozen=True, slots=True)
class StateSyncSection:
    """[statesync]: taking and serving snapshots of the state, and joining from one
    (docs/OPERATIONS.md, "State sync and archive nodes")."""

    enabled: bool = False  # a node with an empty store joins from a peer's snapshot, then block-syncs
    snapshot_interval: int = 0  # take a snapshot every this many blocks (0: never)
    snapshots_kept: int = 2  # the newest this many snapshots are kept and served
    # The trust root of state sync (both or neither): a height and the hash of its block header, as a
    # node the operator trusts reports them; 0 and "": none, and only the genesis set is trusted.
    trust_height: int = 0
    trust_hash: str = ""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node: NodeSection
    p2p: P2pSection = field(default_factory=P2pSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    log: LogSection = field(default_factory=LogSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    statesync: StateSyncSection = field(default_factory=StateSyncSection)


# --- public ---------------------------------------------------------------------------------------


def load_config(path: str | Path, *, check_files: bool = True) -> NodeConfig:
    """Read and check a config file. With `check_files`, the genesis and key files must exist."""
    reader = _Reader(str(path), Path(path).resolve().parent)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigError(path, "", f"cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, "", f"invalid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", f"invalid TOML: not UTF-8 at byte {error.start}") from None
    return reader.config(document, check_files)


def render_config(config: NodeConfig, relative_to: str | Path | None = None) -> str:
    """The config as TOML; `load_config` of the result gives `config` back. Paths are written
    relative to `relative_to` (the directory the file will live in) when given, else absolute."""
    base = Path(relative_to).resolve() if relative_to is not None else None
    document: dict[str, Any] = {}
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        table: dict[str, Any] = {}
        for key_field in dataclasses.fields(section):
            value = _render_value(getattr(section, key_field.name), base)
            if value is not None:
                table[key_field.name] = value
        document[section_field.name] = table
    return tomli_w.dumps(document)


# --- private --------------------------------------------------------------------------------------

Parse = Callable[["_Reader", str, Any], Any]


class _Reader:
    """Checks one document; knows the file name and directory for messages and paths."""

    def __init__(self, file: str, directory: Path) -> None:
        self.file = file
        self.directory = directory

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, key, problem)

    def config(self, document: Mapping[str, Any], check_files: bool) -> NodeConfig:
        for name, value in document.items():
            if name not in _SECTIONS:
                if not isinstance(value, dict):
                    home = [section for section, (_, parsers) in _SECTIONS.items() if name in parsers]
                    where = f"section [{home[0]}]" if home else "a section such as [node]"
                    raise self.error(name, f"unknown top-level key; keys belong in {where}")
                raise self.error(name, f"unknown section{_hint(name, _SECTIONS)}; known: {', '.join(_SECTIONS)}")
            if not isinstance(value, dict):
                raise self.error(name, f"expected a table [{name}], got {_type_name(value)}")
        if "node" not in document:
            raise self.error("node", "missing required section [node]")
        sections = {name: self.section(name, document.get(name, {})) for name in _SECTIONS}
        config = NodeConfig(**sections)
        self.check_across(config, check_files)
        return config

    def section(self, name: str, table: Mapping[str, Any]) -> Any:
        kind, parsers = _SECTIONS[name]
        fields = {key_field.name: key_field for key_field in dataclasses.fields(kind)}
        for key in table:
            if key not in parsers:
                raise self.error(f"{name}.{key}", f"unknown key{_hint(key, parsers)}; known: {', '.join(parsers)}")
        values: dict[str, Any] = {}
        for key, parse in parsers.items():
            dotted = f"{name}.{key}"
            if key in table:
                values[key] = parse(self, dotted, table[key])
            elif fields[key].default is dataclasses.MISSING and fields[key].default_factory is dataclasses.MISSING:
                raise self.error(dotted, "missing required key")
        return kind(**values)

    def check_across(self, config: NodeConfig, check_files: bool) -> None:
        node = config.node
        if node.mode == "validator" and node.validator_key_file is None:
            raise self.error("node.validator_key_file", 'required when mode = "validator"')
        if node.mode == "observer" and node.validator_key_file is not None:
            raise self.error("node.validator_key_file", 'not allowed when mode = "observer" (an observer never signs)')
        if node.mode == "observer" and node.next_validator_key_file is not None:
            raise self.error("node.next_validator_key_file", 'not allowed when mode = "observer" (an observer never signs)')
        if config.p2p.listen == config.rpc.listen:
            raise self.error("rpc.listen", f"same address as p2p.listen ({config.rpc.listen})")
        if config.metrics.enabled:
            for other in ("p2p", "rpc"):
                if config.metrics.listen == getattr(config, other).listen:
                    raise self.error("metrics.listen", f"same address as {other}.listen ({config.metrics.listen})")
        consensus = config.consensus
        for name in ("timeout_propose_ms", "timeout_prevote_ms", "timeout_precommit_ms"):
            if getattr(consensus, name) > consensus.timeout_round_max_ms:
                raise self.error(
                    "consensus.timeout_round_max_ms",
                    f"must be >= consensus.{name} ({getattr(consensus, name)}), got {consensus.timeout_round_max_ms}",
                )
        if consensus.block_bytes_max > config.mempool.bytes_max:
            raise self.error(
                "consensus.block_bytes_max",
                f"must be <= mempool.bytes_max ({config.mempool.bytes_max}), got {consensus.block_bytes_max}",
            )
        statesync = config.statesync
        if statesync.trust_height and not statesync.trust_hash:
            raise self.error("statesync.trust_hash", "required when statesync.trust_height is set (the hash of "
                             "the block header at that height)")
        if statesync.trust_hash and not statesync.trust_height:
            raise self.error("statesync.trust_height", "required when statesync.trust_hash is set (the height "
                             "of that block header, at least 1)")
        if check_files:
            for key in ("genesis_file", "node_key_file", "validator_key_file"):
                path = getattr(node, key)
                if path is not None and not path.is_file():
                    raise self.error(f"node.{key}", f"no such file: {path}")
            if node.home.exists() and not node.home.is_dir():
                raise self.error("node.home", f"exists and is not a directory: {node.home}")


def _integer(minimum: int, maximum: int) -> Parse:
    def parse(reader: _Reader, key: str, value: Any) -> int:
        # TOML booleans are ints in Python; true is not a number of bytes.
        if isinstance(value, bool) or not isinstance(value, int):
            raise reader.error(key, f"expected an integer, got {_show(value)}")
        if not minimum <= value <= maximum:
            raise reader.error(key, f"expected {minimum}..{maximum}, got {value}")
        return value

    return parse


def _choice(options: tuple[str, ...]) -> Parse:
    def parse(reader: _Reader, key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise reader.error(key, f"expected one of {', '.join(_show(o) for o in options)}, got {_show(value)}")
        return value

    return parse


def _boolean(reader: _Reader, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise reader.error(key, f"expected true or false, got {_show(value)}")
    return value


def _block_hash(reader: _Reader, key: str, value: Any) -> str:
    if not isinstance(value, str) or not (value == "" or BLOCK_HASH_PATTERN.fullmatch(value)):
        raise reader.error(key, f'expected a block hash of 64 hex digits, or "" for none, got {_show(value)}')
    return value.lower()


def _moniker(reader: _Reader, key: str, value: Any) -> str:
    if not isinstance(value, str) or not MONIKER_PATTERN.fullmatch(value):
        raise reader.error(key, f"expected 1-64 letters, digits, '.', '_' or '-', got {_show(value)}")
    return value


def _path(reader: _Reader, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise reader.error(key, f"expected a path, got {_show(value)}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (reader.directory / path).resolve()


def _address(reader: _Reader, key: str, value: Any) -> Address:
    address = parse_address(value)
    if address is None:
        raise reader.error(key, f'expected "host:port", got {_show(value)}')
    return address


def _optional_address(reader: _Reader, key: str, value: Any) -> Address | None:
    return None if value == "" else _address(reader, key, value)


def _peers(reader: _Reader, key: str, value: Any) -> tuple[Peer, ...]:
    items = _array(reader, key, value)
    peers: list[Peer] = []
    for index, item in enumerate(items):
        node_key, _, rest = item.partition("@") if isinstance(item, str) else ("", "", "")
        address = parse_address(rest)
        if not NODE_KEY_PATTERN.fullmatch(node_key) or address is None:
            raise reader.error(f"{key}[{index}]", f'expected "<64 hex node key>@host:port", got {_show(item)}')
        if any(peer.node_key == node_key for peer in peers):
            raise reader.error(f"{key}[{index}]", f"duplicate node key {node_key}")
        peers.append(Peer(node_key, address))
    return tuple(peers)


def _node_keys(reader: _Reader, key: str, value: Any) -> tuple[str, ...]:
    items = _array(reader, key, value)
    for index, item in enumerate(items):
        if not isinstance(item, str) or not NODE_KEY_PATTERN.fullmatch(item):
            raise reader.error(f"{key}[{index}]", f"expected a node key of 64 lower-case hex digits, got {_show(item)}")
        if items.index(item) != index:
            raise reader.error(f"{key}[{index}]", f"duplicate node key {item}")
    return tuple(items)


def _array(reader: _Reader, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise reader.error(key, f"expected an array, got {_show(value)}")
    if len(value) > PEERS_MAX:
        raise reader.error(key, f"expected at most {PEERS_MAX} entries, got {len(value)}")
    return value


def parse_address(value: Any) -> Address | None:
    """A "host:port" (IPv6 in brackets) as an `Address`, or None if it is not one."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", value)
    if match is None:
        return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65_535:
        return None
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not HOSTNAME_PATTERN.fullmatch(host):
        return None
    return Address(host, port)


def _render_value(value: Any, base: Path | None) -> Any:
    if value is None:
        return None  # an absent optional key
    if isinstance(value, Path):
        if base is not None:
            try:
                return value.relative_to(base).as_posix()
            except ValueError:
                pass  # outside the directory: keep it absolute
        return str(value)
    if isinstance(value, Address | Peer):
        return str(value)
    if isinstance(value, tuple):
        return [_render_value(item, base) for item in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{_type_name(value)} {value}"
    return _type_name(value)


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def _hint(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


_NODE_KEYS: Final[dict[str, Parse]] = {
    "moniker": _moniker,
    "mode": _choice(MODES),
    "home": _path,
    "genesis_file": _path,
    "node_key_file": _path,
    "validator_key_file": _path,
    "next_validator_key_file": _path,
}

_SECTIONS: Final[dict[str, tuple[type, dict[str, Parse]]]] = {
    "node": (NodeSection, _NODE_KEYS),
    "p2p": (
        P2pSection,
        {
            "listen": _address,
            "external_address": _optional_address,
            "peers": _peers,
            "allowed_keys": _node_keys,
            "frame_bytes_max": _integer(4_096, 67_108_864),
            "dial_backoff_max_ms": _integer(100, TIMEOUT_MS_MAX),
        },
    ),
    "rpc": (
        RpcSection,
        {
            "listen": _address,
            "request_bytes_max": _integer(1_024, 67_108_864),
            "batch_length_max": _integer(1, 10_000),
            "console": _boolean,
        },
    ),
    "mempool": (
        MempoolSection,
        {"txs_max": _integer(1, 1_000_000), "bytes_max": _integer(1_024, 17_179_869_184)},
    ),
    "consensus": (
        ConsensusSection,
        {
            "timeout_propose_ms": _integer(1, TIMEOUT_MS_MAX),
            "timeout_propose_delta_ms": _integer(0, TIMEOUT_MS_MAX),
            "timeout_prevote_ms": _integer(1, TIMEOUT_MS_MAX),
            "timeout_prevote_delta_ms": _integer(0, TIMEOUT_MS_MAX),
            "timeout_precommit_ms": _integer(1, TIMEOUT_MS_MAX),
            "timeout_precommit_delta_ms": _integer(0, TIMEOUT_MS_MAX),
            "timeout_round_max_ms": _integer(1, TIMEOUT_MS_MAX),
            "timeout_commit_ms": _integer(0, TIMEOUT_MS_MAX),
            "empty_block_interval_ms": _integer(0, TIMEOUT_MS_MAX),
            "block_txs_max": _integer(1, 100_000),
            "block_bytes_max": _integer(1_024, 1_073_741_824),
        },
    ),
    "log": (LogSection, {"level": _choice(LOG_LEVELS), "format": _choice(LOG_FORMATS)}),
    "metrics": (MetricsSection, {"enabled": _boolean, "listen": _address}),
    "statesync": (StateSyncSection, {"enabled": _boolean, "snapshot_interval": _integer(0, 1_000_000_000),
                                     "snapshots_kept": _integer(1, 100), "trust_height": _integer(0, 2**63 - 1),
                                     "trust_hash": _block_hash}),
}

# The parser tables and the dataclasses must name the same keys, or a key would be unreadable.
for _kind, _parsers in _SECTIONS.values():
    assert [f.name for f in dataclasses.fields(_kind)] == list(_parsers), _kind
assert [f.name for f in dataclasses.fields(NodeConfig)] == list(_SECTIONS)
