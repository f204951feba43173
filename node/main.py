"""Run one node from its config until SIGINT or SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from ledger import LedgerError

from .config import ConfigError, load_config
from .genesis_file import GenesisFileError
from .keys import KeyFileError
from .service import Node
from .sign_guard import SignGuardError

log = logging.getLogger("secledger.node")


def setup_logging(level: str, moniker: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format=f"%(asctime)s {moniker} %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


async def serve(node: Node) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    try:
        await stop.wait()
    finally:
        await node.stop()


def run(config_path: str) -> int:
    """Start the node described by `config_path`; return the process exit code."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log.level, config.node.moniker)
    try:
        node = Node(config)
    except (GenesisFileError, KeyFileError, SignGuardError, LedgerError) as exc:
        print(f"cannot start {config.node.moniker}: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        asyncio.run(serve(node))
    else:
        uvloop.run(serve(node))
    return 0
