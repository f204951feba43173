"""Benchmark (not a test): the cluster benchmark with every node on a host of its own, 25 ms apart.

Four validators and an observer, each in a Linux network namespace with one veth on a bridge
(tests/e2e/netns.py, the harness of tests/e2e/test_multihost.py), run as `secledger start`
processes. Every validator-to-validator peer link goes through a userspace relay
(bench/delay_proxy.py) that holds each chunk DELAY before passing it on, in order, both ways: a
link between two validators has DELAY one way and DELAY back (a round trip of 2 x DELAY), whoever
dialled it. The relay runs in the bridge's own namespace, one route per dialling direction; the
observer dials the validators directly, and so do the clients (each member's clients talk to its
own node, over its own LAN). Netem would do the same in the kernel; it is not available here.

The load, the commit times and the measurements are bench/cluster.py's (`Bench`, `Watcher`, `Rpc`,
imported, not copied): saturation with at most --window transactions in flight, then open-loop
fixed loads; a transaction is committed when every validator has announced its block. With
--baseline (the default) each run is paired with the same run at delay 0 through the same relay,
the two interleaved (their order alternates from one pair to the next), so the difference is the
distance and nothing else; --pairs repeats every pair. Every run records the load average, the
CPU time of every process (nodes, this client, the relay), how faithfully the relay kept the
delay, and the nodes' event loop stalls (bench/stalls.py).

Needs root and `ip` (iproute2). Every namespace, veth and process it makes is removed at the end,
on failure, on Ctrl-C and on SIGTERM; its nodes and relay die with it if it is killed outright
(PR_SET_PDEATHSIG), and the namespaces of a run that was killed are removed by the next run (or
`--cleanup`).

    sudo .venv/bin/python bench/wan.py [--seconds 15] [--loads 200,500] [--pairs 2] [--no-baseline]
                                       [--no-saturation] [--delay-ms 25] [--json FILE] [--cleanup]

Prints a markdown table of every run and a summary (p50 and p99 per load and delay, each pair's
figures side by side). Anchor: CometBFT's QA reports commit latencies up to about 4 s for 200 nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import cluster  # noqa: E402  (bench/cluster.py: the load generator and the measurements)
import stalls  # noqa: E402
import tomli_w  # noqa: E402

from tests.e2e import netns  # noqa: E402

#: Namespaces of this benchmark are named slwan<pid>hub, slwan<pid>h0, ...
PREFIX = "slwan"
#: Their addresses: the bridge .1 (where the relay listens), host i .(11 + i). A subnet of its own,
#: inside namespaces of its own: nothing of the machine's network is touched.
SUBNET = "10.203.8"
P2P_PORT, RPC_PORT, METRICS_PORT = 26600, 26601, 26602
#: The relay's port for validator i dialling validator j: RELAY_PORT_BASE + 10 i + j.
RELAY_PORT_BASE = 27000
DEFAULT_DELAY_MS = 25.0
#: The network directory: /tmp/secledger-wan-<pid>-XXXX (removed at the end, or by the next run).
TMP_PREFIX = "secledger-wan-"


def log(message: str) -> None:
    cluster.log(message)


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


# --- the relay process -------------------------------------------------------------------------------


class Relay:
    """bench/delay_proxy.py as a child process, driven over its stdin."""

    def __init__(self, listen_host: str, routes: dict[int, tuple[str, int]], delay_ms: float) -> None:
        command = [sys.executable, str(HERE / "delay_proxy.py"), "--listen-host", listen_host,
                   "--delay-ms", str(delay_ms), *[f"--route={port}={host}:{target}"
                                                  for port, (host, target) in routes.items()]]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        start_new_session=True, preexec_fn=netns.die_with_parent)
        ready = self._answer()
        if sorted(ready.get("ready", [])) != sorted(routes):
            raise RuntimeError(f"the relay did not listen on every route: {ready}")
        self.delay_ms = delay_ms

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the relay exited (code {self.process.poll()})")
        return json.loads(line)

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def set_delay(self, delay_ms: float) -> None:
        self._ask(f"delay {delay_ms:g}")
        self.delay_ms = delay_ms

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def cpu_seconds(self) -> float | None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def relay_totals(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the relay carried between two `stats`: chunks, and how many left over 5 ms late."""
    chunks = late = 0
    late_max = 0.0
    for port, now in after["routes"].items():
        then = before["routes"].get(port, {"chunks": 0, "late_chunks": 0})
        chunks += now["chunks"] - then["chunks"]
        late += now["late_chunks"] - then["late_chunks"]
        late_max = max(late_max, now["late_max_ms"])  # since the relay started
    return {"chunks": chunks, "late_chunks": late, "late_max_ms_so_far": late_max}


# --- the cluster, one node per namespace ----------------------------------------------------------


class WanCluster(cluster.Cluster):
    """bench/cluster.py's `Cluster`, generated with `secledger testnet --hosts` (node k on host k),
    RPC and metrics on each host's address (the client runs in the bridge's namespace), and each
    validator's validator peers dialled through the relay."""

    def __init__(self, directory: Path, hosts: netns.Hosts) -> None:  # noqa: D107 - replaces Cluster's
        self.directory = directory
        self.profile_to = None
        self.hosts = hosts
        count = cluster.VALIDATORS + cluster.OBSERVERS
        addresses = [hosts.address(i) for i in range(count)]
        out = subprocess.run([cluster.SECLEDGER, "testnet", "--validators", str(cluster.VALIDATORS),
                              "--observers", str(cluster.OBSERVERS), "--out", str(directory),
                              "--port-base", str(P2P_PORT), "--hosts", ",".join(addresses)],
                             check=True, capture_output=True, text=True)
        self.nodes = {n["name"]: n for n in json.loads(out.stdout)["nodes"]}
        self.validators = [n for n, d in self.nodes.items() if d["mode"] == "validator"]
        self.chain_id = tomllib.loads((directory / "genesis.toml").read_text())["chain_id"]
        self.host_of = {name: addresses.index(node["host"]) for name, node in self.nodes.items()}
        if sorted(self.host_of.values()) != list(range(count)):
            raise RuntimeError(f"expected one node per host, got {self.host_of}")
        validator_hosts = {self.host_of[v] for v in self.validators}
        assert hosts.hub_address is not None
        #: relay port -> the validator it leads to; validator i dials validator j at RELAY_PORT_BASE + 10 i + j.
        self.routes: dict[int, tuple[str, int]] = {}
        self.metrics_urls: dict[str, str] = {}
        for name, node in self.nodes.items():
            i, address = self.host_of[name], addresses[self.host_of[name]]
            path = Path(node["config"])
            config = tomllib.loads(path.read_text())
            for section, values in cluster.CONFIG_OVERRIDES.items():
                config.setdefault(section, {}).update(values)
            config["rpc"]["listen"] = f"{address}:{RPC_PORT}"
            config["metrics"] = {"enabled": True, "listen": f"{address}:{METRICS_PORT}"}
            if node["mode"] == "validator":
                peers = []
                for peer in config["p2p"]["peers"]:
                    key, _, at = peer.partition("@")
                    host, _, port = at.rpartition(":")
                    j = addresses.index(host)
                    if j in validator_hosts and int(port) == P2P_PORT:
                        relay_port = RELAY_PORT_BASE + 10 * i + j
                        self.routes[relay_port] = (host, P2P_PORT)
                        peer = f"{key}@{hosts.hub_address}:{relay_port}"
                    peers.append(peer)
                config["p2p"]["peers"] = peers
            path.write_text(tomli_w.dumps(config))
            node["rpc"] = f"http://{address}:{RPC_PORT}/"
            self.metrics_urls[name] = f"http://{address}:{METRICS_PORT}/metrics"
        expected = cluster.VALIDATORS * (cluster.VALIDATORS - 1)
        if len(self.routes) != expected:
            raise RuntimeError(f"expected {expected} validator links through the relay, got {len(self.routes)}")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.rss_end: dict[str, str] = {}
        self.relay: Relay | None = None
        (directory / "logs").mkdir(exist_ok=True)

    def start(self) -> None:
        for name, node in self.nodes.items():
            with open(self.log_path(name), "ab") as log_file:
                self.processes[name] = subprocess.Popen(
                    self.hosts.command(self.host_of[name], cluster.SECLEDGER, "start", "--config", node["config"]),
                    stdout=log_file, stderr=log_file, start_new_session=True, preexec_fn=netns.die_with_parent)

    def cpu_seconds(self) -> dict[str, float]:
        used = super().cpu_seconds()
        relay = self.relay.cpu_seconds() if self.relay is not None else None
        if relay is not None:
            used["delay relay"] = relay
        return used


# --- one session: set-up, then the runs ------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[tuple[int, str, float, float]]:
    """(pair, kind, rate, delay_ms) in the order they run: each pair's delays interleaved, their
    order alternating from one pair to the next."""
    kinds = ([] if args.no_saturation else [("saturation", 0.0)]) + [("load", r) for r in args.load_list]
    runs = []
    for pair in range(args.pairs):
        delays = [args.delay_ms, 0.0] if args.baseline else [args.delay_ms]
        if pair % 2:
            delays.reverse()
        for kind, rate in kinds:
            runs += [(pair, kind, rate, d) for d in delays]
    return runs


async def session(wan: WanCluster, args: argparse.Namespace) -> list[dict[str, Any]]:
    assert wan.relay is not None
    relay = wan.relay
    connector = aiohttp.TCPConnector(limit=4 * args.clients + 16)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        rpc = cluster.Rpc(http)
        await cluster.wait_connected(wan, rpc, 120)
        watcher = cluster.Watcher(wan)
        await watcher.start()
        bench = cluster.Bench(wan, rpc, watcher, investors=args.investors, clients=args.clients)
        started = time.monotonic()
        await bench.setup()
        await bench.open()
        log(f"set-up done in {time.monotonic() - started:.1f} s (relay at {relay.delay_ms:g} ms)")
        records = []
        for pair, kind, rate, delay in plan(args):
            relay.set_delay(delay)
            await asyncio.sleep(0.5)  # what was read before the change leaves at its old time
            before, load_before = relay.stats(), loadavg()
            log(f"pair {pair}: {kind} {'' if kind == 'saturation' else f'{rate:.0f} tx/s '}"
                f"at {delay:g} ms each way for {args.seconds:g} s (load average {load_before})")
            if kind == "saturation":
                result = await bench.saturation(args.seconds, args.window, args.presign_rate)
            else:
                result = await bench.load(rate, args.seconds)
            record = {"pair": pair, "delay_ms": delay, "loadavg_before": load_before, "loadavg_after": loadavg(),
                      "relay": relay_totals(before, relay.stats()), "result": vars(result)}
            records.append(record)
            log(row_text(record, wan))
        wan.rss_end = {k: f"{v:.0f}" for k, v in wan.peak_memory_mb("VmRSS").items()}
        await bench.close()
        await watcher.stop()
        return records


# --- output ------------------------------------------------------------------------------------------


def cpu_per_tx_ms(result: dict[str, Any], names: list[str]) -> float:
    """CPU milliseconds per committed transfer of these processes (their CPU time over the run)."""
    cores = sum(result["cores_used"].get(n, 0.0) for n in names)
    return 1000 * cores * result["span_s"] / result["committed"] if result["committed"] else math.nan


def row_text(record: dict[str, Any], wan: WanCluster) -> str:
    r = record["result"]
    relay = record["relay"]
    return (f"{r['mode']:<10} {record['delay_ms']:>4g} ms  offered {r['offered']:6.0f}/s  committed "
            f"{r['throughput']:6.0f}/s  p50 {r['p50_ms']:6.0f}  p99 {r['p99_ms']:6.0f}  max {r['max_ms']:6.0f} ms  "
            f"blocks {r['blocks']} x {r['block_txs_mean']:.0f} every {r['block_interval_ms']:.0f} ms  "
            f"CPU ms/tx: nodes {cpu_per_tx_ms(r, list(wan.nodes)):.2f} relay {cpu_per_tx_ms(r, ['delay relay']):.3f}  "
            f"relay chunks {relay['chunks']} ({relay['late_chunks']} > 5 ms late)  "
            f"load {record['loadavg_before']} -> {record['loadavg_after']}  {stalls.line(r['loop_stalls'])}")


def table(records: list[dict[str, Any]], wan: WanCluster) -> str:
    rows = []
    for rec in records:
        r = rec["result"]
        counts = stalls.summary(r["loop_stalls"], wan.validators)[0]
        worst = stalls.summary(r["loop_stalls"], list(wan.nodes))[2]
        rows.append(
            f"| {rec['pair']} | {rec['delay_ms']:g} | {r['mode']} | {r['offered']:.0f} | {r['throughput']:.0f} | "
            f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} | "
            f"{r['committed']} / {r['submitted']} | {r['blocks']} x {r['block_txs_mean']:.0f} | "
            f"{r['block_interval_ms']:.0f} | {cpu_per_tx_ms(r, list(wan.nodes)):.2f} | "
            f"{cpu_per_tx_ms(r, ['bench client']):.2f} | {cpu_per_tx_ms(r, ['delay relay']):.3f} | "
            f"{r['cores_used'].get('other processes', math.nan):.2f} | "
            f"{rec['relay']['late_chunks']} / {rec['relay']['chunks']} | {counts} | {worst} | "
            f"{rec['loadavg_before']} |")
    return ("| pair | delay ms each way | run | offered tx/s | committed tx/s | p50 ms | p95 ms | p99 ms | max ms | "
            "committed / submitted | blocks x mean txs | ms between blocks | CPU ms per tx: 5 nodes | client | relay | "
            "other processes, cores | relay chunks > 5 ms late / all | validators' loop stalls by ms "
            f"({stalls.header()}) | worst stall ms ({' '.join(stalls.short(n) for n in wan.nodes)}) | "
            "load average before |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
            "| --- | --- |\n" + "\n".join(rows))


def summary(records: list[dict[str, Any]]) -> str:
    grouped: dict[tuple[str, float, float], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        r = rec["result"]
        grouped[(r["mode"], 0.0 if r["mode"] == "saturation" else r["offered"], rec["delay_ms"])].append(r)
    lines = []
    for (mode, rate, delay), results in sorted(grouped.items(), key=lambda kv: (kv[0][0] != "saturation", kv[0][1],
                                                                                -kv[0][2])):
        what = "saturation" if mode == "saturation" else f"{rate:.0f} tx/s"
        lines.append(f"- {what}, {delay:g} ms each way: committed "
                     + ", ".join(f"{r['throughput']:.0f}" for r in results) + " tx/s; p50 "
                     + ", ".join(f"{r['p50_ms']:.0f}" for r in results) + " ms; p99 "
                     + ", ".join(f"{r['p99_ms']:.0f}" for r in results) + " ms")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of each timed run (default 15)")
    parser.add_argument("--loads", default="200,500", help="fixed offered loads, tx/s (default 200,500)")
    parser.add_argument("--pairs", type=int, default=2, help="how many times every run is repeated (default 2)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="no interleaved run at delay 0 beside each delayed one")
    parser.add_argument("--no-saturation", action="store_true", help="fixed loads only")
    parser.add_argument("--delay-ms", type=float, default=DEFAULT_DELAY_MS,
                        help="delay each way on every validator-to-validator link (default 25)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--investors", type=int, default=200)
    parser.add_argument("--window", type=int, default=5_000, help="most txs in flight at saturation (default 5000)")
    parser.add_argument("--presign-rate", type=int, default=6000, help="transfers signed per second of saturation")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the network directory (logs)")
    parser.add_argument("--cleanup", action="store_true",
                        help="only remove the namespaces of earlier runs that were killed, and exit")
    args = parser.parse_args()
    args.load_list = [float(x) for x in args.loads.split(",") if x.strip()]
    problem = netns.unavailable()
    if problem is not None:
        print(f"bench/wan.py {problem}", file=sys.stderr)
        return 2
    removed = netns.remove_stale(PREFIX)
    if removed:
        log(f"removed namespaces of earlier runs that were killed: {', '.join(removed)}")
    for stale in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        pid = stale.name[len(TMP_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
            log(f"removed the network directory of an earlier run that was killed: {stale}")
    if args.cleanup:
        return 0

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    command = " ".join([".venv/bin/python bench/wan.py", *sys.argv[1:]])
    wall = time.monotonic()
    load_start = loadavg()
    log(f"load average {load_start}; measuring the Ed25519 bound")
    verify_before, workers = cluster.ed25519_bound()
    directory = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
    hosts = netns.Hosts(cluster.VALIDATORS + cluster.OBSERVERS, prefix=PREFIX, subnet=SUBNET, hub_address=True)
    wan: WanCluster | None = None
    previous: int | None = None
    records: list[dict[str, Any]] = []
    failed: BaseException | None = None
    try:
        hosts.create()
        log(f"namespaces {hosts.hub} (bridge {hosts.hub_address}) and {', '.join(hosts.names)}")
        previous = netns.enter(hosts.hub)  # this process, its relay and its client live on the bridge
        wan = WanCluster(directory / "net", hosts)
        wan.relay = Relay(hosts.hub_address or "", wan.routes, args.delay_ms)
        wan.start()
        log(f"{len(wan.nodes)} nodes started, {len(wan.routes)} validator links through the relay "
            f"at {args.delay_ms:g} ms each way; network in {directory}")
        try:
            import uvloop
        except ImportError:
            uvloop = None
        runner = uvloop.run if uvloop is not None else asyncio.run
        records = runner(session(wan, args))
    except KeyboardInterrupt as exc:
        failed = exc
        log("interrupted")
    except BaseException as exc:  # clean up first, then say what broke
        failed = exc
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            clean_up(wan, hosts, previous, directory, keep=args.keep)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    if failed is not None:
        if isinstance(failed, KeyboardInterrupt):
            return 130
        if wan is not None and args.keep:
            log(f"node logs: {directory / 'net' / 'logs'}")
        raise failed
    verify_after, _ = cluster.ed25519_bound()
    assert wan is not None
    bound = max(verify_before, verify_after) / (cluster.VALIDATORS + cluster.OBSERVERS)
    report = {"command": command, "machine": cluster.machine(), "loadavg_start": load_start,
              "verify_before_after": [verify_before, verify_after], "bound_workers": workers,
              "bound_per_node_tx_s": bound, "delay_ms": args.delay_ms, "wall_s": time.monotonic() - wall,
              "runs": records}
    print(f"\n{command}\nmachine: {report['machine']}; load average at the start {load_start}")
    print(f"Ed25519 verifies/s on {workers} cores: {verify_before:.0f} before, {verify_after:.0f} after; "
          f"bound {bound:.0f} tx/s (every one of the {len(wan.nodes)} nodes verifies each transaction)\n")
    print(table(records, wan))
    print("\n" + summary(records))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


def clean_up(wan: WanCluster | None, hosts: netns.Hosts, previous: int | None, directory: Path, *, keep: bool) -> None:
    """Every process, namespace and veth of this run: gone, and checked."""
    if wan is not None:
        wan.stop()
        if wan.relay is not None:
            wan.relay.stop()
    if previous is not None:
        netns.leave(previous)  # before the namespaces go: this process must not be in one of them
    hosts.destroy()
    left = hosts.remaining()
    alive = [n for n, p in (wan.processes.items() if wan is not None else []) if p.poll() is None]
    if wan is not None and wan.relay is not None and wan.relay.process.poll() is None:
        alive.append("delay relay")
    if left or alive:
        log(f"warning: left behind: namespaces {left}, processes {alive}")
    else:
        log(f"cleaned up: namespaces {hosts.hub} and {len(hosts.names)} hosts (with their veths and bridge), "
            f"{len(wan.processes) if wan is not None else 0} nodes and the relay")
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
