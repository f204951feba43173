"""Run one node from its config until SIGINT or SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import gc
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


#: Collection thresholds for a node process (Python's defaults are 700, 10, 10). A validator
#: allocates and frees a few hundred thousand short-lived containers per second (decoded
#: transactions, receipts, messages), and with the defaults a cluster benchmark measured the cyclic
#: collector at about 15 % of the nodes' CPU, with full collections of 60-80 ms that stall the event
#: loop (and so votes and commits) a dozen times per 16 s. See docs/BENCHMARKS.md.
GC_THRESHOLDS: tuple[int, int, int] = (20_000, 20, 100)


def tune_garbage_collector() -> None:
    """Freeze what start-up allocated (modules, the node's long-lived objects: never garbage) out of
    the collector's scans, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(node: Node) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    tune_garbage_collector()
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
