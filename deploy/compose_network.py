"""Write deploy/network/: the genesis, keys and configs of the five nodes of deploy/compose.yaml.

    python deploy/compose_network.py [--out deploy/network] [--chain-id ID] [--members N]

Each node runs in its own container, where compose's network resolves the service names: a node
listens on all of its container's interfaces, peers dial each other by service name, and only the
ports compose.yaml publishes (on the host's loopback) are reachable from outside. In each config:

    [node]     home = "/var/lib/secledger" (the container's volume); genesis and keys under
               /etc/secledger (this directory, mounted read-only)
    [p2p]      listen = "0.0.0.0:26656"; peers = "<node key>@validator-<i>:26656", ...
    [rpc]      listen = "0.0.0.0:26657" (published on 127.0.0.1 of the host only)
    [metrics]  enabled = true, listen = "0.0.0.0:26660"

Keys are written mode 0600 by the user who runs this; build the image with that user's uid
(`SECLEDGER_UID=$(id -u)`, see compose.yaml) so the node can read them. A real consortium does
not do this: each member writes its own keys on its own host (`secledger init`, docs/OPERATIONS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from node.setup.config import Address, MetricsSection, Peer, load_config, render_config
from node.setup.keys import load_key
from node.setup.netgen import generate

#: The services of compose.yaml, in the order `generate` names its nodes.
VALIDATORS = 4
OBSERVERS = 1
#: Where compose.yaml mounts this directory, and each node's volume, inside the containers.
CONFIG_DIR = Path("/etc/secledger")
DATA_DIR = Path("/var/lib/secledger")
P2P_PORT, RPC_PORT, METRICS_PORT = 26656, 26657, 26660
ANY = "0.0.0.0"


def write(out: Path, *, chain_id: str = "secledger-compose", members: int | None = None) -> list[str]:
    """Write the network; returns the service names (= node names = hosts)."""
    names = [f"validator-{i}" for i in range(VALIDATORS)] + [f"observer-{i}" for i in range(OBSERVERS)]
    plans = generate(out, validators=VALIDATORS, observers=OBSERVERS, hosts=names, port_base=P2P_PORT,
                     chain_id=chain_id, members=members)
    assert [p.name for p in plans] == names, "compose.yaml names one service per node, in this order"
    by_key = {bytes(load_key(out / "keys" / f"{name}.node.json").verify_key).hex(): name for name in names}
    for name in names:
        path = out / f"{name}.toml"
        config = load_config(path)
        node = config.node

        def inside(local: Path | None) -> Path | None:
            return None if local is None else CONFIG_DIR / local.resolve().relative_to(out.resolve())

        config = dataclasses.replace(
            config,
            node=dataclasses.replace(node, home=DATA_DIR, genesis_file=inside(node.genesis_file),
                                     node_key_file=inside(node.node_key_file),
                                     validator_key_file=inside(node.validator_key_file),
                                     next_validator_key_file=inside(node.next_validator_key_file)),
            p2p=dataclasses.replace(config.p2p, listen=Address(ANY, P2P_PORT), peers=tuple(
                Peer(peer.node_key, Address(by_key[peer.node_key], P2P_PORT)) for peer in config.p2p.peers)),
            rpc=dataclasses.replace(config.rpc, listen=Address(ANY, RPC_PORT)),
            metrics=MetricsSection(enabled=True, listen=Address(ANY, METRICS_PORT)),
        )
        path.write_text(f"# {name} of deploy/compose.yaml: paths are inside its container.\n"
                        + render_config(config))
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the network that deploy/compose.yaml runs.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "network")
    parser.add_argument("--chain-id", default="secledger-compose")
    parser.add_argument("--members", type=int, default=None,
                        help="consortium members (default: one, holding keys/admin.json, deciding alone)")
    args = parser.parse_args(argv)
    try:
        names = write(args.out, chain_id=args.chain_id, members=args.members)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(names)} to {args.out}/; now: docker compose -f deploy/compose.yaml up --build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
