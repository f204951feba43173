"""`secledger testnet` and `secledger up`: a whole network written into one directory, and run.

The writing is `node.setup.netgen` (below the command line, so the tests' in-process networks use it
too); this module turns flags into its parameters and its errors into one line naming the flag.
`generate`, `plan`, `member_keys` and `NodePlan` are re-exported for the tests that import them
from here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Final

from node.setup.keys import KeyFileError
from node.setup.netgen import (
    CONSORTIUM_MEMBER,
    DEFAULT_PORT_BASE,
    MEMBERS_MAX,
    NodePlan,
    SetupError,
    generate,
    member_keys,
    parse_hosts,
    plan,
)

from .commands import CliError

__all__ = ["CONSORTIUM_MEMBER", "DEFAULT_PORT_BASE", "MEMBERS_MAX", "NodePlan", "generate", "member_keys", "plan",
           "testnet", "up"]

#: Lines of a failed node's log that `up` prints.
LOG_TAIL_LINES: Final[int] = 20
#: The flag behind each parameter of `node.setup.netgen.generate`.
_FLAGS: Final[dict[str, str]] = {"chain_id": "--chain-id", "validators": "--validators",
                                 "observers": "--observers", "members": "--members", "hosts": "--hosts",
                                 "port_base": "--port-base"}


def _generate(out: Path, args: Any, out_flag: str = "--out", **extra: Any) -> list[NodePlan]:
    try:
        hosts = parse_hosts(args.hosts) if getattr(args, "hosts", None) is not None else None
        return generate(out, validators=args.validators, observers=args.observers, port_base=args.port_base,
                        members=args.members, hosts=hosts, **extra)
    except SetupError as exc:
        flag = out_flag if exc.field == "out" else _FLAGS.get(exc.field)
        raise CliError(f"{flag}: {exc.problem}" if flag else str(exc), exit_code=1 if exc.conflict else 2) \
            from None
    except KeyFileError as exc:  # keys left by an earlier run that stopped half-way
        raise CliError(f"{out_flag}: {exc}") from None
    except OSError as exc:
        raise CliError(f"{out_flag}: cannot write {exc.filename or out}: {exc.strerror or exc}") from None


def testnet(args: Any) -> dict[str, Any]:
    nodes = _generate(args.out, args, chain_id=args.chain_id)
    return {"dir": str(args.out),
            "nodes": [{"name": n.name, "mode": n.mode, "host": n.host, "p2p": f"{n.host}:{n.p2p_port}",
                       "config": str(args.out / n.config_file), "rpc": n.rpc_url} for n in nodes],
            "members": member_keys(args.out)}


def up(args: Any) -> int:
    """Run every node of a local network as its own process until Ctrl-C (or SIGTERM). Exits 1
    when a node stops on its own, naming it and printing the end of its log."""
    from node.setup.config import ConfigError, load_config

    directory: Path = args.dir
    if not (directory / "genesis.toml").exists():
        _generate(directory, args, "--dir", metrics=True)  # `make run`'s network: Prometheus can scrape it
        print(f"generated a network of {args.validators} validators and {args.observers} observer(s) in {directory}/")
    configs = sorted(directory.glob("*.toml"), key=lambda p: (not p.name.startswith("validator"), p.name))
    configs = [c for c in configs if c.name != "genesis.toml"]
    if not configs:
        raise CliError(f"--dir: {directory} holds a genesis.toml but no node config (<node>.toml)", exit_code=2)
    loaded = []
    for config_path in configs:
        try:
            loaded.append((config_path, load_config(config_path)))
        except ConfigError as exc:
            raise CliError(f"config error: {exc}", exit_code=2) from None
    (directory / "logs").mkdir(exist_ok=True)
    processes: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    stopping = False
    failed: tuple[str, Path, int] | None = None

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for config_path, config in loaded:
            log_path = directory / "logs" / f"{config.node.moniker}.log"
            with open(log_path, "ab") as log_file:
                process = subprocess.Popen([sys.executable, "-m", "cli.main", "start", "--config", str(config_path)],
                                           stdout=log_file, stderr=log_file)
            processes.append((config.node.moniker, log_path, process))
            print(f"{config.node.moniker:<14} {config.node.mode:<10} rpc http://{config.rpc.listen}/  "
                  f"log {log_path}")
        members = member_keys(directory)
        for member_id, key_file in members.items():
            print(f"member {member_id}: key {key_file}")
        admin = directory / "keys" / "admin.json"
        if admin.exists() and str(admin) not in members.values():
            print(f"admin key: {admin}")
        print("Ctrl-C stops the network", flush=True)
        while not stopping:
            for name, log_path, process in processes:
                if process.poll() is not None:
                    failed = (name, log_path, process.returncode)
                    stopping = True
                    break
            time.sleep(0.2)
    finally:
        for _, _, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, _, process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if failed is not None:
        name, log_path, code = failed
        print(f"error: {name} exited with code {code}; the network is stopped. The end of {log_path}:",
              file=sys.stderr)
        for line in _tail(log_path, LOG_TAIL_LINES):
            print(f"  | {line}", file=sys.stderr)
        return 1
    print("network stopped")
    return 0


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as file:
            return [line.decode(errors="replace").rstrip("\n") for line in deque(file, maxlen=lines)]
    except OSError as exc:
        return [f"(cannot read the log: {exc.strerror or exc})"]
