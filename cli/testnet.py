"""Generate a local network: keys, one genesis, one config per node, all on loopback.

Layout of DIR:
    genesis.toml                   the chain every node starts from
    keys/<node>.node.json          peer-link keys; keys/<validator>.validator.json consensus keys
                                   (each config also names keys/<validator>.next.validator.json, the
                                   key a rotation would switch to: the operator creates it when needed)
    keys/admin.json                the first administrator's account key (and, by default, the key of
                                   the single consortium member)
    keys/member-<i>.json           with `members=N`: the account key of each of N members
    <node>.toml                    one config per node (validator-0 ... observer-0 ...)
    data/<node>/                   created by each node on start (store, double-sign guard)

Members (docs/GOVERNANCE.md): `secledger testnet` and `make run` write one member, "consortium",
holding the admin key and deciding every class of proposal alone (a threshold of 1 of 1:
`members=None`), so a local network is governed like a consortium's and its walk-throughs stay
short. `members=N` names N members deciding by 2/3 (and no administrator); `members=0`, the
default of `generate` for the tests that build networks in-process, none at all (the
administrator rules the chain roles and the validator set is the genesis one for good).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ledger import Genesis, GenesisObserver, GenesisValidator
from ledger.client import new_key
from ledger.genesis import GenesisMember, Thresholds
from ledger.kinds import MEMBERS_MAX
from node.config import (
    Address,
    ConsensusSection,
    NodeConfig,
    NodeSection,
    P2pSection,
    Peer,
    RpcSection,
    render_config,
)
from node.genesis_file import render_genesis
from node.keys import load_key, save_key

DEFAULT_PORT_BASE: int = 26600
#: The member of a single-operator network, which holds keys/admin.json.
CONSORTIUM_MEMBER: str = "consortium"
__all__ = ["MEMBERS_MAX", "NodePlan", "generate", "member_keys", "plan"]


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    mode: str
    p2p_port: int
    rpc_port: int

    @property
    def config_file(self) -> str:
        return f"{self.name}.toml"


def plan(validators: int, observers: int, port_base: int) -> list[NodePlan]:
    nodes = [NodePlan(f"validator-{i}", "validator", port_base + 2 * i, port_base + 2 * i + 1)
             for i in range(validators)]
    nodes += [NodePlan(f"observer-{i}", "observer", port_base + 2 * (validators + i),
                       port_base + 2 * (validators + i) + 1) for i in range(observers)]
    return nodes


def member_keys(out: Path) -> dict[str, str]:
    """Member id -> its key file, for the network in `out` (read back from its genesis)."""
    import tomllib

    genesis = tomllib.loads((out / "genesis.toml").read_text())
    admin = out / "keys" / "admin.json"
    return {m["id"]: str(admin if m["id"] == CONSORTIUM_MEMBER else out / "keys" / f"{m['id']}.json")
            for m in genesis.get("members", ())}


def generate(out: Path, *, validators: int = 4, observers: int = 1, host: str = "127.0.0.1",
             port_base: int = DEFAULT_PORT_BASE, chain_id: str = "secledger-local",
             consensus: ConsensusSection | None = None, members: int | None = 0) -> list[NodePlan]:
    """Write a whole network into `out` (which must not hold one already). `members`: 0 (the
    default here) for none; None for the single "consortium" member holding the admin key (1 of 1),
    which is what `secledger testnet` and `make run` write; N for N members deciding by 2/3."""
    if (out / "genesis.toml").exists():
        raise FileExistsError(f"{out} already holds a network (genesis.toml exists)")
    if validators < 1:
        raise ValueError("a network needs at least one validator")
    if members is not None and not 0 <= members <= MEMBERS_MAX:
        raise ValueError(f"members: expected 0 to {MEMBERS_MAX}")
    keys = out / "keys"
    nodes = plan(validators, observers, port_base)
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
                             node_keys[n.name], 10)
            for n in nodes if n.mode == "validator"),
        observers=tuple(GenesisObserver(n.name, node_keys[n.name]) for n in nodes if n.mode == "observer"),
        admins=admins,
        members=consortium,
        thresholds=thresholds,
    )
    (out / "genesis.toml").write_text(render_genesis(genesis))
    for node in nodes:
        # Validators dial every other validator; an observer dials every validator.
        peers = tuple(Peer(node_keys[p.name].hex(), Address(host, p.p2p_port))
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
            p2p=P2pSection(listen=Address(host, node.p2p_port), peers=peers),
            rpc=RpcSection(listen=Address(host, node.rpc_port)),
            consensus=consensus or ConsensusSection(),
        )
        (out / node.config_file).write_text(render_config(config, relative_to=out))
    return nodes
