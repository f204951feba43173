"""The genesis document: who the consortium is, before the first block.

It names the chain id, the validators (consensus key, peer-link node key, voting power), the
observers allowed to connect, the first administrators and, optionally, the consortium's members
with the thresholds of their proposals (docs/GOVERNANCE.md). Every node must start from the very
same document; its hash is kept in the store, and a node refuses to open a store of another chain.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import InvalidGenesis
from .kinds import ACTION_CLASSES, MEMBER_KEYS_MAX, MEMBERS_MAX, THRESHOLD_PART_MAX, VOTING_POWER_MAX

_CHAIN_ID = re.compile(r"[a-z0-9][a-z0-9._\-]{0,63}")
#: What a chain id may be (for tools that check one before they write a genesis).
CHAIN_ID_PATTERN: re.Pattern[str] = _CHAIN_ID
#: The same rule in words, as `Genesis.from_dict` states it.
CHAIN_ID_RULE: str = "lower-case letters, digits, '.', '_' or '-' (1 to 64)"
_NAME = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_MEMBER_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
#: Longest display name of a member (as `member.add` allows).
MEMBER_NAME_LENGTH_MAX: int = 64

__all__ = ["VOTING_POWER_MAX", "Genesis", "GenesisMember", "GenesisObserver", "GenesisValidator", "Thresholds"]


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
class GenesisMember:
    """A consortium member: an id, a display name, and the account keys that sign its proposals
    and votes (any one of them acts for the member)."""

    id: str
    name: str
    keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The fraction of members whose approval executes a proposal, per class of action, each as
    (numerator, denominator): a proposal passes when approvals * den >= num * members."""

    validators: tuple[int, int]
    members: tuple[int, int]
    roles: tuple[int, int]
    params: tuple[int, int]

    def of(self, action_class: str) -> tuple[int, int]:
        return getattr(self, action_class)

    def to_dict(self) -> dict[str, list[int]]:
        return {c: list(self.of(c)) for c in ACTION_CLASSES}


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: tuple[GenesisValidator, ...]
    observers: tuple[GenesisObserver, ...]
    admins: tuple[bytes, ...]
    #: Empty: no consortium governance (administrators rule the chain roles, the validator set is
    #: fixed). Members and thresholds are both given or both absent.
    members: tuple[GenesisMember, ...] = ()
    thresholds: Thresholds | None = None

    def __post_init__(self) -> None:
        assert bool(self.members) == (self.thresholds is not None), "members and thresholds go together"

    def to_dict(self) -> dict[str, Any]:
        """Plain form with hex keys, as written in genesis files. A genesis without members has no
        `members` or `thresholds` key at all, so its hash is the one it had before governance."""
        plain = self._base_dict()
        if self.members:
            assert self.thresholds is not None
            plain["members"] = [{"id": m.id, "name": m.name, "keys": [k.hex() for k in m.keys]}
                                for m in self.members]
            plain["thresholds"] = self.thresholds.to_dict()
        return plain

    def _base_dict(self) -> dict[str, Any]:
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
        known = {"chain_id", "genesis_time_ms", "validators", "observers", "admins", "members", "thresholds"}
        for key in sorted(set(data) - known):
            raise InvalidGenesis(f"genesis: unknown key {key!r}")
        chain_id = data.get("chain_id")
        if not isinstance(chain_id, str) or not _CHAIN_ID.fullmatch(chain_id):
            raise InvalidGenesis(f"chain_id: expected {CHAIN_ID_RULE}")
        time_ms = data.get("genesis_time_ms")
        if not isinstance(time_ms, int) or isinstance(time_ms, bool) or not 0 <= time_ms < 2**53:
            raise InvalidGenesis("genesis_time_ms: expected a unix time in milliseconds")
        validators = tuple(_validator(i, v) for i, v in enumerate(_list(data, "validators")))
        if not validators:
            raise InvalidGenesis("validators: at least one validator is needed")
        observers = tuple(_observer(i, o) for i, o in enumerate(_list(data, "observers", required=False)))
        members, thresholds = _governance(data)
        admins = tuple(_key(f"admins[{i}]", a)
                       for i, a in enumerate(_list(data, "admins", required=not members)))
        if not admins and not members:
            raise InvalidGenesis("admins: at least one administrator is needed (or members, see docs/GOVERNANCE.md)")
        _unique("validators.validator_key", [v.validator_key for v in validators])
        _unique("node_key", [v.node_key for v in validators] + [o.node_key for o in observers])
        _unique("name", [v.name for v in validators] + [o.name for o in observers])
        _unique("admins", list(admins))
        return cls(chain_id, time_ms, validators, observers, admins, members, thresholds)


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


def _governance(data: dict[str, Any]) -> tuple[tuple[GenesisMember, ...], Thresholds | None]:
    """The optional `members` and `thresholds`: both present or both absent."""
    if ("members" in data) != ("thresholds" in data):
        present, absent = ("members", "thresholds") if "members" in data else ("thresholds", "members")
        raise InvalidGenesis(f"{absent}: required when {present} is given (both or neither)")
    if "members" not in data:
        return (), None
    raw_members = _list(data, "members")
    if not raw_members:
        raise InvalidGenesis("members: at least one member is needed (leave out members and thresholds for none)")
    if len(raw_members) > MEMBERS_MAX:
        raise InvalidGenesis(f"members: at most {MEMBERS_MAX} members")
    members = tuple(_member(i, m) for i, m in enumerate(raw_members))
    ids = [m.id for m in members]
    for i, member_id in enumerate(ids):
        if ids.index(member_id) != i:
            raise InvalidGenesis(f"members[{i}].id: {member_id!r} is already the id of members[{ids.index(member_id)}]")
    holder: dict[bytes, int] = {}
    for i, member in enumerate(members):
        for key in member.keys:
            if key in holder:
                raise InvalidGenesis(f"members[{i}].keys: {key.hex()} is already a key of members[{holder[key]}]")
            holder[key] = i
    return members, _thresholds(data["thresholds"])


def _member(i: int, value: Any) -> GenesisMember:
    where = f"members[{i}]"
    m = _fields(where, value, {"id", "name", "keys"})
    member_id = m.get("id")
    if not isinstance(member_id, str) or not _MEMBER_ID.fullmatch(member_id):
        raise InvalidGenesis(f"{where}.id: expected 1 to 64 of A-Z a-z 0-9 . _ -")
    name = m.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MEMBER_NAME_LENGTH_MAX:
        raise InvalidGenesis(f"{where}.name: expected text of 1 to {MEMBER_NAME_LENGTH_MAX} characters")
    raw_keys = m.get("keys")
    if not isinstance(raw_keys, list) or not 1 <= len(raw_keys) <= MEMBER_KEYS_MAX:
        raise InvalidGenesis(f"{where}.keys: expected a list of 1 to {MEMBER_KEYS_MAX} keys")
    keys = tuple(_key(f"{where}.keys[{j}]", k) for j, k in enumerate(raw_keys))
    if len(set(keys)) != len(keys):
        raise InvalidGenesis(f"{where}.keys: the same key appears twice")
    return GenesisMember(member_id, name, keys)


def _thresholds(value: Any) -> Thresholds:
    t = _fields("thresholds", value, set(ACTION_CLASSES))
    parts = {}
    for action_class in ACTION_CLASSES:
        where = f"thresholds.{action_class}"
        if action_class not in t:
            raise InvalidGenesis(f"{where}: missing (each of {', '.join(ACTION_CLASSES)} needs a threshold)")
        fraction = t[action_class]
        if not isinstance(fraction, list) or len(fraction) != 2 or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in fraction):
            raise InvalidGenesis(f"{where}: expected [numerator, denominator], two integers")
        num, den = fraction
        if not 1 <= num <= den <= THRESHOLD_PART_MAX:
            raise InvalidGenesis(f"{where}: expected 1 <= numerator <= denominator <= {THRESHOLD_PART_MAX}, "
                                 f"got [{num}, {den}]")
        parts[action_class] = (num, den)
    return Thresholds(**parts)


def _unique(what: str, items: list[Any]) -> None:
    if len(set(items)) != len(items):
        raise InvalidGenesis(f"{what}: the same value appears twice")
