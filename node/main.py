"""Run one node from its config until SIGINT or SIGTERM, then shut down cleanly.

Every failure before the node runs is one line on stderr naming the config file and the key to fix,
with exit code 2 and no traceback (the checks are in node/ops/startup.py):

    cannot start validator-0: testnet/validator-0.toml: rpc.listen: port 26601 of 127.0.0.1 is already in use ...
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

import lmdb

from ledger import LedgerError

from .fault_points import FaultSwitchError
from .ops import logs, startup
from .service import Node
from .setup.config import ConfigError, load_config
from .setup.genesis_file import GenesisFileError
from .setup.keys import KeyFileError
from .validator.sign_guard import SignGuardError

log = logging.getLogger("secledger.node")


def setup_logging(level: str, moniker: str, format: str = "text") -> None:
    """Text (the default) or JSON lines on stderr: node/ops/logs.py."""
    logs.setup_logging(level, moniker, format)


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


async def serve(node: Node, config_path: str = "config") -> int:
    """Run `node` until SIGINT or SIGTERM; the exit code (2 when it cannot listen)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    moniker = node.config.node.moniker
    try:
        # Before the node signs or dials anything: every address it will listen on is free.
        startup.check_listen_addresses(node.config, config_path)
        await node.start()
    except startup.StartupError as exc:
        return await _refuse(node, f"cannot start {moniker}: {exc}")
    except OSError as exc:  # a port taken between the check and the bind: check again, to name it
        problem = f"{config_path}: cannot listen: {exc.strerror or exc}"
        await node.stop()
        try:
            startup.check_listen_addresses(node.config, config_path)
        except startup.StartupError as named:
            problem = str(named)
        print(f"cannot start {moniker}: {problem}", file=sys.stderr)
        return 2
    tune_garbage_collector()
    try:
        await stop.wait()
    finally:
        await node.stop()
    return 0


async def _refuse(node: Node, line: str) -> int:
    await node.stop()
    print(line, file=sys.stderr)  # last, so that it is the last line of the node's log too
    return 2


def run(config_path: str) -> int:
    """Start the node described by `config_path`; return the process exit code."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    moniker = config.node.moniker
    setup_logging(config.log.level, moniker, config.log.format)
    try:
        startup.check_key_files(config, config_path)
        node = Node(config)
    except (startup.StartupError, FaultSwitchError) as exc:
        print(f"cannot start {moniker}: {exc}", file=sys.stderr)
        return 2
    except (GenesisFileError, KeyFileError, SignGuardError, LedgerError, lmdb.Error, OSError) as exc:
        print(f"cannot start {moniker}: {startup.describe_failure(exc, config, config_path)}", file=sys.stderr)
        return 2
    logs.set_height_source(lambda: node.ledger.tip.height)
    try:
        warning = startup.check_validator_set(node, config_path)
    except startup.StartupError as exc:
        print(f"cannot start {moniker}: {exc}", file=sys.stderr)
        node.mempool.close()
        node.ledger.close()
        return 2
    if warning is not None:
        log.warning(warning)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        return asyncio.run(serve(node, config_path))
    return uvloop.run(serve(node, config_path))
