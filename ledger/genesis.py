"""The genesis document: who the consortium is, before the first block.

It names the chain id, the validators (consensus key, peer-link node key, voting power), the
observers allowed to connect, and the first administrators. Every node must start from the very
same document; its hash is kept in the store, and a node refuses to open a store of another chain.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import InvalidGenesis

_CHAIN_ID = re.compile(r"[a-z0-9][a-z0-9._\-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9._\-]{1,64}")
VOTING_POWER_MAX: int = 2**40


@dataclass(frozen=True, slots=True)
class GenesisValidator:
    name: str
    validator_key: bytes  # Ed25519 key that signs votes and proposals
    node_key: bytes  # Ed25519 key that authenticates the peer link
    power: int


@dataclass(frozen=True, slots=True)
class GenesisObserver:
    name: str
    node_key: bytes


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: tuple[GenesisValidator, ...]
    observers: tuple[GenesisObserver, ...]
    admins: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain form with hex keys, as written in genesis files."""
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [
                {"name": v.name, "validator_key": v.validator_key.hex(), "node_key": v.node_key.hex(),
                 "power": v.power}
                for v in self.validators
            ],
            "observers": [{"name": o.name, "node_key": o.node_key.hex()} for o in self.observers],
            "admins": [a.hex() for a in self.admins],
        }

    def encode(self) -> bytes:
        return codec.encode(self.to_dict())

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(b"secledger/genesis/v1\x00" + self.encode()).digest()

    @property
    def node_keys(self) -> frozenset[bytes]:
        """Every peer-link key the genesis allows to connect."""
        return frozenset([v.node_key for v in self.validators] + [o.node_key for o in self.observers])

    @classmethod
    def from_dict(cls, data: Any) -> Genesis:
        if not isinstance(data, dict):
            raise InvalidGenesis("genesis: expected a table")
        known = {"chain_id", "genesis_time_ms", "validators", "observers", "admins"}
        for key in sorted(set(data) - known):
            raise InvalidGenesis(f"genesis: unknown key {key!r}")
        chain_id = data.get("chain_id")
        if not isinstance(chain_id, str) or not _CHAIN_ID.fullmatch(chain_id):
            raise InvalidGenesis("chain_id: expected lower-case letters, digits, '.', '_' or '-' (1 to 64)")
        time_ms = data.get("genesis_time_ms")
        if not isinstance(time_ms, int) or isinstance(time_ms, bool) or not 0 <= time_ms < 2**53:
            raise InvalidGenesis("genesis_time_ms: expected a unix time in milliseconds")
        validators = tuple(_validator(i, v) for i, v in enumerate(_list(data, "validators")))
        if not validators:
            raise InvalidGenesis("validators: at least one validator is needed")
        observers = tuple(_observer(i, o) for i, o in enumerate(_list(data, "observers", required=False)))
        admins = tuple(_key(f"admins[{i}]", a) for i, a in enumerate(_list(data, "admins")))
        if not admins:
            raise InvalidGenesis("admins: at least one administrator is needed")
        _unique("validators.validator_key", [v.validator_key for v in validators])
        _unique("node_key", [v.node_key for v in validators] + [o.node_key for o in observers])
        _unique("name", [v.name for v in validators] + [o.name for o in observers])
        _unique("admins", list(admins))
        return cls(chain_id, time_ms, validators, observers, admins)


def _list(data: dict[str, Any], key: str, *, required: bool = True) -> list[Any]:
    value = data.get(key, None if required else [])
    if not isinstance(value, list):
        raise InvalidGenesis(f"{key}: expected a list")
    return value


def _key(where: str, value: Any) -> bytes:
    try:
        key = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        key = None
    if key is None or len(key) != 32:
        raise InvalidGenesis(f"{where}: expected 64 hex digits (an Ed25519 public key)")
    return key


def _fields(where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidGenesis(f"{where}: expected a table")
    for key in sorted(set(value) - allowed):
        raise InvalidGenesis(f"{where}: unknown key {key!r}")
    return value


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidGenesis(f"{where}.name: expected 1 to 64 of A-Z a-z 0-9 . _ -")
    return value


def _validator(i: int, value: Any) -> GenesisValidator:
    where = f"validators[{i}]"
    v = _fields(where, value, {"name", "validator_key", "node_key", "power"})
    power = v.get("power")
    if not isinstance(power, int) or isinstance(power, bool) or not 1 <= power <= VOTING_POWER_MAX:
        raise InvalidGenesis(f"{where}.power: expected an integer from 1 to {VOTING_POWER_MAX}")
    return GenesisValidator(
        name=_name(where, v.get("name")),
        validator_key=_key(f"{where}.validator_key", v.get("validator_key")),
        node_key=_key(f"{where}.node_key", v.get("node_key")),
        power=power,
    )


def _observer(i: int, value: Any) -> GenesisObserver:
    where = f"observers[{i}]"
    o = _fields(where, value, {"name", "node_key"})
    return GenesisObserver(name=_name(where, o.get("name")), node_key=_key(f"{where}.node_key", o.get("node_key")))


def _unique(what: str, items: list[Any]) -> None:
    if len(set(items)) != len(items):
        raise InvalidGenesis(f"{what}: the same value appears twice")
