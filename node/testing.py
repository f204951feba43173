"""A whole network in one process, on loopback ports chosen at run time: for integration tests.

`LocalNetwork` generates keys, genesis and configs with `node.setup.netgen`, starts every node as a
`Node` on the running event loop, and stops them all on exit. Not used by the node itself.
"""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

from node.service import Node
from node.setup.config import ConsensusSection, NodeConfig, load_config

#: Consensus timeouts short enough for tests on a loaded 2-core machine, long enough to be stable.
FAST_CONSENSUS = ConsensusSection(timeout_propose_ms=800, timeout_propose_delta_ms=200, timeout_prevote_ms=300,
                                  timeout_prevote_delta_ms=100, timeout_precommit_ms=300,
                                  timeout_precommit_delta_ms=100, timeout_round_max_ms=3000,
                                  timeout_commit_ms=50, empty_block_interval_ms=100, block_txs_max=5000, block_bytes_max=4_194_304)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port_base(count: int) -> int:
    """A run of `count` consecutive free loopback ports (checked by binding each).

    The run is taken below the kernel's ephemeral range: a port inside it can be handed to any
    outgoing connection (another test's client socket) between this check and the server's bind,
    which is how CI once failed with "address already in use". Below the range only explicit binds
    land, so a port that is free here stays free for the test that asked for it.
    """
    low, _ = _ephemeral_range()
    floor = 10_000
    chooser = random.Random()  # test scaffolding only; never used by ledger/ or consensus/
    for _ in range(200):
        if low - count > floor:
            base = chooser.randrange(floor, low - count)
        else:  # an unusual kernel setting: fall back to a kernel-chosen port
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                base = probe.getsockname()[1]
            if base + count >= 65535:
                continue
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports found")


class LocalNetwork:
    def __init__(self, directory: Path, *, validators: int = 4, observers: int = 1,
                 consensus: ConsensusSection = FAST_CONSENSUS, members: int | None = 0) -> None:
        """`members`: as `node.setup.netgen.generate` takes it: 0 (no members: keys/admin.json grants roles
        directly), None (the single member holding the admin key that `secledger testnet` writes),
        or N (N members deciding by 2/3)."""
        from node.setup.netgen import generate

        self.directory = directory
        base = free_port_base(2 * (validators + observers))
        self.plans = generate(directory, validators=validators, observers=observers, port_base=base,
                              consensus=consensus, members=members)
        self.configs: dict[str, NodeConfig] = {p.name: load_config(directory / p.config_file) for p in self.plans}
        self.nodes: dict[str, Node] = {}

    async def start(self, name: str | None = None) -> None:
        for plan in self.plans if name is None else [p for p in self.plans if p.name == name]:
            node = Node(self.configs[plan.name])
            await node.start()
            self.nodes[plan.name] = node

    async def stop(self, name: str | None = None) -> None:
        for key in list(self.nodes) if name is None else [name]:
            node = self.nodes.pop(key)
            await node.stop()

    def rpc_url(self, name: str) -> str:
        return f"http://{self.configs[name].rpc.listen}/"

    async def wait_for_height(self, height: int, *, names: list[str] | None = None, timeout_s: float = 30) -> None:
        async def reached() -> None:
            while not all(self.nodes[n].ledger.tip.height >= height for n in (names or list(self.nodes))):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(reached(), timeout_s)

    async def __aenter__(self) -> LocalNetwork:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
