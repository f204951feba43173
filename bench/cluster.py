"""Benchmark (not a test): a real cluster of `secledger start` processes on this machine.

Four validators and one observer are generated with `secledger testnet` in a temporary directory
and started as separate processes. Through JSON-RPC the admin appoints a KYC provider and an
issuer, the KYC provider registers investors with KYC and country claims, the issuer creates a
token whose rules require KYC on both sides and block some countries, and its agent issues every
investor a balance. Then signed transfers between investors (all signed before the timed part)
are submitted by several concurrent clients, each owning its own senders (so nonces stay
sequential per sender) and sending JSON-RPC batches over its own WebSocket to one validator,
without waiting for the previous answer (the node answers a connection's messages in order):

- saturation: for --seconds, each client submits batches as fast as the cluster takes them, with
  at most `--window` transactions in flight (submitted, not yet committed);
- fixed loads (open loop), the --loads and half the saturation throughput (loads above 1.25 x
  saturation are skipped): each transfer is sent when it falls due, whatever the replies, unless
  the client already has 4 batches unanswered (then it goes in the next batch).

A transfer is committed when the block holding it has been committed on EVERY validator (the time
the last one announced it on its `blocks` WebSocket subscription). Committed tx/s = our committed
transfers / (last commit - first submission); latency = commit - submission (the scheduled time
in open loop, so a slow reply does not hide queueing). After each run the cluster drains.

Beside it, the machine's bound: Ed25519 verifications per second on all cores (pynacl, a pool of
os.cpu_count() processes), divided by the number of nodes that must verify each transaction.

    .venv/bin/python bench/cluster.py [--seconds 15] [--clients 8] [--loads 200,500,1000,2000]
                                      [--out docs/bench] [--profile [--profile-nodes validator-0,observer-0]]
                                      [--no-write] [--saturation-only]

Writes docs/bench/cluster.png, docs/bench/cluster.json and the "## Cluster" section of
docs/BENCHMARKS.md (other sections are left as they are). `--profile` adds a second, separate
saturation run with validator-0 (or the nodes `--profile-nodes` names) under `py-spy record`, writes
where each one's time goes, as shares and as microseconds of its CPU per committed transfer, and
keeps the raw stacks in docs/bench/cluster-profile-NODE.txt.gz (for flame graphs; summarize again
with `--summarize-profile FILE`). Needs matplotlib for the plot.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gzip
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import stalls  # noqa: E402  (bench/stalls.py: the nodes' event loop stalls, from /metrics)
import tomli_w  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402

from ledger.client import Action, Signer  # noqa: E402
from ledger.testing import FAR_FUTURE_S, key_for  # noqa: E402
from node.rpc.client import RpcClient, RpcError  # noqa: E402
from node.setup.keys import load_key  # noqa: E402
from node.testing import free_port_base  # noqa: E402

SECTION = "## Cluster"
BIN = Path(sys.executable).parent
SECLEDGER = str(BIN / "secledger")
DEFAULT_OUT = ROOT / "docs" / "bench"
VALIDATORS, OBSERVERS = 4, 1
#: py-spy's sampling rate for `--profile` (non-blocking: the node is never paused).
PROFILE_RATE_HZ: int = 200
TOKEN = "BENCH"
RULES = {"required_claims": ["kyc"], "country_block": ["IR", "KP", "SY"], "check_sender": True}
COUNTRIES = ("US", "DE", "FR", "GB", "CH")
#: Changes to the generated node configs (everything else keeps `secledger testnet`'s defaults).
CONFIG_OVERRIDES: dict[str, dict[str, int]] = {
    "p2p": {"frame_bytes_max": 16 * 1_048_576},
    "rpc": {"request_bytes_max": 8 * 1_048_576, "batch_length_max": 1000},
    "mempool": {"txs_max": 200_000, "bytes_max": 256 * 1_048_576},
    "consensus": {"timeout_commit_ms": 10, "block_txs_max": 10_000, "block_bytes_max": 8 * 1_048_576},
}
SETUP_BATCH = 500
SATURATION_BATCH = 250
#: Unanswered batches per client at saturation: one being admitted and the next one ready, not a
#: flood of whole batches queued in the node's WebSocket ahead of everything else.
SATURATION_BATCHES_IN_FLIGHT = 2
#: Unanswered batches per client in the open-loop runs: past it, what falls due waits in the client
#: and goes in the next batch (its latency still counts from its scheduled time). Without a bound, a
#: load above saturation queued hundreds of batches in a node's WebSocket, their answers piled up
#: faster than this busy client read them, and the node dropped it as a slow reader (its bounded
#: outbound queue, as designed).
OPEN_LOOP_BATCHES_IN_FLIGHT = 4
OPEN_LOOP_BATCH_MAX = 1000
DRAIN_TIMEOUT_S = 60.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the bound: Ed25519 verifications per second on every core ------------------------------------


def _verify_worker(seconds: float) -> int:
    key = SigningKey(bytes(range(32)))
    signed = key.sign(b"\x5a" * 120)  # about a transfer's signed payload
    verify, count = key.verify_key.verify, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            verify(signed)
        count += 100
    return count


def ed25519_bound(seconds: float = 2.0) -> tuple[float, int]:
    """Verifications per second with os.cpu_count() processes verifying at once; and that count."""
    workers = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_verify_worker, [0.05] * workers)  # warm up (imports, CPU frequency)
        start = time.perf_counter()
        counts = pool.map(_verify_worker, [seconds] * workers)
        elapsed = time.perf_counter() - start
    return sum(counts) / max(elapsed, seconds), workers


# --- the cluster: generated, started and stopped as processes -------------------------------------


class Cluster:
    def __init__(self, directory: Path, *, profile_to: dict[str, Path] | None = None) -> None:
        self.directory = directory
        #: node name -> where py-spy writes its raw stacks; those nodes run under py-spy.
        self.profile_to = profile_to or {}
        base = free_port_base(3 * (VALIDATORS + OBSERVERS))  # peers and RPC, then metrics
        out = subprocess.run([SECLEDGER, "testnet", "--validators", str(VALIDATORS), "--observers", str(OBSERVERS),
                              "--out", str(directory), "--port-base", str(base)],
                             check=True, capture_output=True, text=True)
        self.nodes = {n["name"]: n for n in json.loads(out.stdout)["nodes"]}
        self.validators = [n for n, d in self.nodes.items() if d["mode"] == "validator"]
        self.chain_id = tomllib.loads((directory / "genesis.toml").read_text())["chain_id"]
        #: Every node's GET /metrics, scraped for its event loop stalls before and after each run (bench/stalls.py).
        self.metrics_urls: dict[str, str] = {}
        for k, (name, node) in enumerate(self.nodes.items()):
            path = Path(node["config"])
            config = tomllib.loads(path.read_text())
            for section, values in CONFIG_OVERRIDES.items():
                config.setdefault(section, {}).update(values)
            metrics_port = base + 2 * (VALIDATORS + OBSERVERS) + k
            config["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{metrics_port}"}
            self.metrics_urls[name] = f"http://127.0.0.1:{metrics_port}/metrics"
            path.write_text(tomli_w.dumps(config))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.rss_end: dict[str, str] = {}  # VmRSS at the end of the session, MiB, and its parts
        (directory / "logs").mkdir(exist_ok=True)

    def url(self, name: str) -> str:
        return self.nodes[name]["rpc"]

    def log_path(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def start(self) -> None:
        for name, node in self.nodes.items():
            command = [SECLEDGER, "start", "--config", node["config"]]
            if name in self.profile_to:
                command = [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", str(PROFILE_RATE_HZ),
                           "--nonblocking", "--output", str(self.profile_to[name]), "--", *command]
            log_file = open(self.log_path(name), "ab")  # noqa: SIM115 - owned by the child
            self.processes[name] = subprocess.Popen(command, stdout=log_file, stderr=log_file,
                                                    start_new_session=True)
            log_file.close()

    def node_pid(self, name: str) -> int:
        """The node's own pid (under py-spy, its child's)."""
        pid = self.processes[name].pid
        if name in self.profile_to:
            children = _children(pid)
            if children:
                return children[0]
        return pid

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log_path(name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with code {process.returncode}; log tail:\n{tail}")

    def peak_memory_mb(self, field: str = "VmHWM") -> dict[str, float]:
        """VmHWM (peak resident set; or another field of /proc/PID/status) of every node, in MiB."""
        peaks = {}
        for name in self.nodes:
            try:
                status = Path(f"/proc/{self.node_pid(name)}/status").read_text()
            except OSError:
                continue
            match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
            if match:
                peaks[name] = int(match.group(1)) / 1024
        return peaks

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds each node process has used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for name in self.nodes:
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{self.node_pid(name)}/stat").read_text().rsplit(")", 1)[1].split()
                used[name] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    def stop(self) -> None:
        spies = [self.processes[name] for name in self.profile_to if name in self.processes]
        # py-spy writes its profile when the node it runs exits: stop the nodes, then wait for py-spy.
        for spy in spies:
            for pid in _children(spy.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                log("warning: py-spy did not exit after its node stopped")
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    process.send_signal(signal.SIGCONT)
                    process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


# --- JSON-RPC over one shared aiohttp session -------------------------------------------------------


class Rpc:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(self, url: str, body: bytes) -> Any:
        async with self.session.post(url, data=body, headers={"Content-Type": "application/json"}) as reply:
            return json.loads(await reply.read())

    async def call(self, url: str, method: str, **params: Any) -> Any:
        answer = await self.post(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                  "params": params}).encode())
        if "error" in answer:
            error = answer["error"]
            raise RpcError(error["code"], error["message"], error.get("data"))
        return answer["result"]

    async def batch(self, url: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                           for i, (m, p) in enumerate(calls)]).encode()
        answers = sorted(await self.post(url, body), key=lambda a: a["id"])
        return answers

    async def submit_all(self, url: str, txs: list[bytes]) -> None:
        """Submit in order, in batches; raise on any refusal; wait until the last one is committed."""
        for start in range(0, len(txs), SETUP_BATCH):
            part = txs[start:start + SETUP_BATCH]
            answers = await self.batch(url, [("tx_submit", {"tx": tx.hex()}) for tx in part])
            errors = [a["error"] for a in answers if "error" in a]
            if errors:
                raise RuntimeError(f"set-up transaction refused: {errors[0]} ({len(errors)} refused)")
        last = answers[-1]["result"]["hash"]
        receipt = await self.call(url, "tx_wait", hash=last, timeout_ms=60_000)
        if receipt.get("status") != "committed":
            raise RuntimeError(f"set-up transaction failed: {receipt}")


def tx_request(index: int, tx_hex: str) -> str:
    return f'{{"jsonrpc":"2.0","id":{index},"method":"tx_submit","params":{{"tx":"{tx_hex}"}}}}'


class Submitter:
    """One client's WebSocket to its validator. Batches go out as they fall due, without waiting
    for the answer to the one before: the node answers each connection's messages one at a time,
    in order, so each sender's nonces stay sequential, and the answers come back in that order.
    (Over HTTP a client must wait for each answer before the next batch, or nonces could arrive
    out of order; transfers falling due meanwhile then wait in the client, and small batches
    each pay a whole HTTP request.)"""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.ws_url = url.replace("http://", "ws://", 1) + "ws"
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.waiting: deque[tuple[list[str], Submissions]] = deque()
        self.idle = asyncio.Event()
        self.idle.set()
        self._answered = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.socket = await self.session.ws_connect(self.ws_url, max_msg_size=0, heartbeat=None)
        self._reader = asyncio.create_task(self._read())

    async def send(self, first_id: int, part: list[str], subs: Submissions) -> None:
        assert self.socket is not None
        subs.sent += len(part)
        self.waiting.append((part, subs))
        self.idle.clear()
        await self.socket.send_str("[" + ",".join(tx_request(first_id + j, tx) for j, tx in enumerate(part)) + "]")

    async def wait_for_room(self, batches_max: int) -> None:
        """Until fewer than `batches_max` batches are unanswered (woken by answers, not polling)."""
        while len(self.waiting) >= batches_max:
            self._answered.clear()
            await self._answered.wait()

    async def _read(self) -> None:
        assert self.socket is not None
        async for message in self.socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            answered = time.monotonic()
            answers = json.loads(message.data)
            part, subs = self.waiting.popleft()
            for tx in part:
                subs.answered_at[tx] = answered
            for answer in answers if isinstance(answers, list) else [answers]:
                if "error" in answer:
                    subs.refused[_reason(answer["error"])] += 1
                else:
                    subs.admitted += 1
            self._answered.set()
            if not self.waiting:
                self.idle.set()
        if self.waiting:
            log(f"warning: {self.ws_url} closed with {len(self.waiting)} batches unanswered")
            self.waiting.clear()
            self.idle.set()
            self._answered.set()

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# --- commit times: a `blocks` subscription on every node ------------------------------------------


@dataclass
class Watcher:
    """When each node committed each height (time.monotonic()), and how many txs it had."""

    cluster: Cluster
    times: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    drops: int = 0
    committed_v0: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        ready = []
        for name in self.cluster.nodes:
            event = asyncio.Event()
            ready.append(event)
            self._tasks.append(asyncio.create_task(self._follow(name, event)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 30)

    async def _follow(self, name: str, ready: asyncio.Event) -> None:
        client = RpcClient(self.cluster.url(name), timeout_ms=3_600_000)
        try:
            while True:
                try:
                    async with client.subscribe("blocks") as subscription:
                        ready.set()
                        async for block in subscription:
                            now = time.monotonic()
                            self.times[name].setdefault(block["height"], now)
                            if name == "validator-0":
                                self.committed_v0 += block["txs"]
                    self.drops += 1
                    log(f"blocks subscription to {name} closed ({subscription.close_code}); resubscribing")
                except Exception:  # reconnect whatever broke; cancellation still ends the task
                    await asyncio.sleep(0.2)
        finally:
            await client.close()

    def first_commit_time(self, height: int) -> float | None:
        """When the FIRST validator committed `height` (None if none has)."""
        stamps = [t for v in self.cluster.validators if (t := self.times[v].get(height)) is not None]
        return min(stamps) if stamps else None

    def commit_time(self, height: int) -> float | None:
        """When the LAST validator committed `height` (None if one has not)."""
        stamps = [self.times[v].get(height) for v in self.cluster.validators]
        return None if None in stamps else max(stamps)  # type: ignore[type-var]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- the workload ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    mode: str  # "saturation" or "load"
    offered: float  # tx/s: the fixed rate, or the achieved submission rate at saturation
    seconds: float
    submitted: int = 0
    admitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    committed: int = 0  # our txs committed on every validator (whenever)
    committed_in_window: int = 0
    window_throughput: float = 0.0  # committed inside [start, start + seconds] / seconds
    rule_rejected: int = 0
    throughput: float = 0.0  # committed / (last commit on every validator - start of submission)
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    mean_ms: float = math.nan
    blocks: int = 0
    block_txs_mean: float = 0.0
    block_interval_ms: float = math.nan
    cores_used: dict[str, float] = field(default_factory=dict)  # CPU seconds / wall seconds, start to drained
    observer_lag_ms: float = math.nan  # p95 of (observer committed a height - last validator did)
    #: Where the latency goes, p50 and p99 in ms from submission: the validator's answer (admitted),
    #: the first validator's commit, the last one's (the latency above).
    stages_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Share of our transactions (%) by how many blocks committed after the validator answered
    #: them and before their own block: 1 is the block already under way; 2 or more means the
    #: transaction missed a proposal it could have been in (it had not reached the proposer).
    blocks_passed_pct: dict[str, float] = field(default_factory=dict)
    #: Wall time from the start of the run to its drain (what cores_used divides by).
    span_s: float = math.nan
    #: Each node's event loop stalls during the run (bench/stalls.py `delta`), from its /metrics.
    loop_stalls: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Submissions:
    """One run's submissions: when each transfer was submitted (`stamps`) and answered, the
    refusals by reason, and how many were sent and admitted. Only `Submitter` updates it, never
    across an await, so concurrent clients never overwrite each other's counts."""

    stamps: dict[str, float] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    admitted: int = 0


class Bench:
    def __init__(self, cluster: Cluster, rpc: Rpc, watcher: Watcher, *, investors: int, clients: int) -> None:
        self.cluster, self.rpc, self.watcher = cluster, rpc, watcher
        self.investors = [f"bench-inv-{i:04d}" for i in range(investors)]
        self.keys = {name: key_for(name) for name in self.investors}
        self.addresses = {name: bytes(k.verify_key) for name, k in self.keys.items()}
        self.signers = [Signer(self.keys[n], cluster.chain_id, 0) for n in self.investors]
        self.clients = clients
        # client c owns the senders i with i % clients == c and talks to one validator
        self.owned = [list(range(c, investors, clients)) for c in range(clients)]
        self.client_url = [cluster.url(cluster.validators[c % len(cluster.validators)]) for c in range(clients)]
        self.sender_url = {i: self.client_url[i % clients] for i in range(investors)}
        self.cursor = [0] * clients
        self.submitters = [Submitter(rpc.session, url) for url in self.client_url]

    async def setup(self) -> None:
        url = self.cluster.url("validator-0")
        admin_key = load_key(self.cluster.directory / "keys" / "admin.json")
        chain = self.cluster.chain_id
        admin = Signer(admin_key, chain, 0)
        kyc = Signer(key_for("bench-kyc"), chain, 0)
        issuer = Signer(key_for("bench-issuer"), chain, 0)
        agent = Signer(key_for("bench-agent"), chain, 0)
        # `secledger testnet`'s single consortium member holds the admin key and decides alone
        top = (await self.rpc.call(url, "chain_status"))["height"]
        await self.rpc.submit_all(url, [admin.propose([Action.grant_role("claim_issuer", kyc.address),
                                                       Action.grant_role("token_issuer", issuer.address)],
                                                      expires_at_height=top + 100_000)])
        txs = []
        for i, name in enumerate(self.investors):
            txs.append(kyc.register_identity(name, [self.addresses[name]]))
            txs.append(kyc.grant_claim(name, "kyc", FAR_FUTURE_S))
            txs.append(kyc.grant_claim(name, "country", FAR_FUTURE_S, COUNTRIES[i % len(COUNTRIES)]))
        await self.rpc.submit_all(url, txs)
        await self.rpc.submit_all(url, [issuer.create_token(TOKEN, "Bench shares", rules=RULES,
                                                            agents={agent.address: ["supply"]})])
        await self.rpc.submit_all(url, [agent.issue(TOKEN, self.addresses[n], 10**12) for n in self.investors])
        # a transfer the rules refuse, to prove they are in force: an unregistered receiver
        outsider = bytes(key_for("bench-outsider").verify_key)
        check = await self.rpc.call(url, "compliance_check", token=TOKEN, sender=self.addresses[self.investors[0]].hex(),
                                    receiver=outsider.hex(), amount="1")
        if check["ok"]:
            raise RuntimeError(f"the token's rules are not in force: {check}")
        check = await self.rpc.call(url, "compliance_check", token=TOKEN, sender=self.addresses[self.investors[0]].hex(),
                                    receiver=self.addresses[self.investors[1]].hex(), amount="1")
        if not check["ok"]:
            raise RuntimeError(f"a transfer between investors would be refused: {check}")

    def sign(self, client: int, count: int) -> list[str]:
        """`count` transfers of one client's senders, round robin, each sender's in nonce order (hex)."""
        owned, n, out = self.owned[client], len(self.investors), []
        for _ in range(count):
            k = self.cursor[client]
            self.cursor[client] += 1
            sender = owned[k % len(owned)]
            receiver = self.investors[(sender + 1 + (k // len(owned)) % (n - 1)) % n]
            out.append(self.signers[sender].transfer(TOKEN, self.addresses[receiver], 1).hex())
        return out

    async def resync_nonces(self) -> None:
        by_url: dict[str, list[int]] = defaultdict(list)
        for i in range(len(self.investors)):
            by_url[self.sender_url[i]].append(i)
        for url, senders in by_url.items():
            answers = await self.rpc.batch(url, [("account_nonce", {"address": self.signers[i].address.hex()})
                                                 for i in senders])
            for i, answer in zip(senders, answers, strict=True):
                self.signers[i].nonce = int(answer["result"]["next_nonce"])

    async def drain(self) -> None:
        """Wait until every validator's mempool is empty and all are at one height."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            self.cluster.check_alive()
            statuses = [await self.rpc.call(self.cluster.url(v), "chain_status") for v in self.cluster.validators]
            if all(s["mempool"]["txs"] == 0 for s in statuses) and len({s["height"] for s in statuses}) == 1:
                return
            await asyncio.sleep(0.25)
        log(f"warning: not drained after {DRAIN_TIMEOUT_S:.0f} s")

    def _mark(self) -> None:
        self._cpu_mark = (self.cluster.cpu_seconds(), time.process_time(), _machine_busy_s(), time.monotonic())

    def _cores_used(self) -> dict[str, float]:
        nodes0, own0, busy0, wall0 = self._cpu_mark
        wall = time.monotonic() - wall0
        used = {n: (c - nodes0.get(n, 0.0)) / wall for n, c in self.cluster.cpu_seconds().items()}
        used["bench client"] = (time.process_time() - own0) / wall
        used["other processes"] = max(0.0, (_machine_busy_s() - busy0) / wall - sum(used.values()))
        return {k: round(v, 2) for k, v in used.items()}

    async def height(self) -> int:
        return (await self.rpc.call(self.cluster.url("validator-0"), "chain_status"))["height"]

    async def _scrape_stalls(self) -> dict[str, stalls.Histogram]:
        return await stalls.scrape(self.rpc.session, getattr(self.cluster, "metrics_urls", {}))

    async def _mark_stalls(self) -> None:
        self._stalls_mark = await self._scrape_stalls()

    # --- the two kinds of run ---

    async def open(self) -> None:
        for submitter in self.submitters:
            await submitter.open()

    async def close(self) -> None:
        for submitter in self.submitters:
            await submitter.close()

    async def saturation(self, seconds: float, window: int, presign_rate: int) -> RunResult:
        per_client = math.ceil(presign_rate * seconds / self.clients)
        log(f"saturation: signing {per_client * self.clients} transfers")
        queues = [self.sign(c, per_client) for c in range(self.clients)]
        subs = Submissions()
        base_committed = self.watcher.committed_v0
        start_height = await self.height()
        await self._mark_stalls()
        t0 = time.monotonic()
        t_end = t0 + seconds
        self._mark()

        async def client(c: int) -> None:
            txs, sent = queues[c], 0
            while sent < len(txs) and time.monotonic() < t_end:
                await self.submitters[c].wait_for_room(SATURATION_BATCHES_IN_FLIGHT)
                if subs.sent - (self.watcher.committed_v0 - base_committed) >= window:
                    await asyncio.sleep(0.005)
                    continue
                part = txs[sent:sent + SATURATION_BATCH]
                now = time.monotonic()
                for tx in part:
                    subs.stamps[tx] = now
                await self.submitters[c].send(sent, part, subs)
                sent += len(part)
            if sent >= len(txs):
                log(f"warning: client {c} ran out of pre-signed transfers; raise --presign-rate")

        await asyncio.gather(*(client(c) for c in range(self.clients)))
        submit_end = time.monotonic()
        await asyncio.gather(*(s.idle.wait() for s in self.submitters))
        result = RunResult("saturation", 0.0, seconds)
        await self._finish(result, subs, start_height, t0, t_end)
        result.offered = result.submitted / (submit_end - t0)
        return result

    async def load(self, rate: float, seconds: float) -> RunResult:
        per_client = math.ceil(rate * seconds / self.clients)
        queues = [self.sign(c, per_client) for c in range(self.clients)]
        client_rate = rate / self.clients
        subs = Submissions()
        start_height = await self.height()
        await self._mark_stalls()
        t0 = time.monotonic() + 0.05
        t_end = t0 + seconds
        self._mark()

        async def client(c: int) -> None:
            txs, sent = queues[c], 0
            first = t0 + c / rate  # stagger the clients
            while sent < len(txs):
                now = time.monotonic()
                due = min(len(txs), math.floor((now - first) * client_rate) + 1) if now >= first else 0
                if due <= sent:
                    await asyncio.sleep(max(0.0, first + sent / client_rate - now))
                    continue
                if len(self.submitters[c].waiting) >= OPEN_LOOP_BATCHES_IN_FLIGHT:
                    await self.submitters[c].wait_for_room(OPEN_LOOP_BATCHES_IN_FLIGHT)
                    continue  # more fell due meanwhile: it goes in this batch
                part = txs[sent:min(due, sent + OPEN_LOOP_BATCH_MAX)]
                for j, tx in enumerate(part):
                    subs.stamps[tx] = first + (sent + j) / client_rate  # scheduled time: no coordinated omission
                await self.submitters[c].send(sent, part, subs)
                sent += len(part)

        await asyncio.gather(*(client(c) for c in range(self.clients)))
        await asyncio.gather(*(s.idle.wait() for s in self.submitters))
        result = RunResult("load", rate, seconds)
        await self._finish(result, subs, start_height, t0, t_end)
        return result

    async def _finish(self, result: RunResult, subs: Submissions, start_height: int, t0: float,
                      t_end: float) -> None:
        stamps = subs.stamps
        await self.drain()
        cores_used = self._cores_used()
        result.span_s = time.monotonic() - self._cpu_mark[3]
        result.loop_stalls = stalls.delta(self._stalls_mark, await self._scrape_stalls(), result.span_s)
        await asyncio.sleep(0.3)  # the last notifications
        end_height = await self.height()
        latencies: list[float] = []
        commit_times: list[float] = []
        in_window, blocks_with_ours = 0, []
        first_commits: list[float] = []
        height_of: dict[str, int] = {}
        heights = list(range(start_height + 1, end_height + 1))
        for start in range(0, len(heights), 2):  # small reads, spread: the nodes' peak memory is measured
            url = self.cluster.url(self.cluster.validators[(start // 2) % len(self.cluster.validators)])
            answers = await self.rpc.batch(url, [("block_get", {"height": h}) for h in heights[start:start + 2]])
            for answer in answers:
                block = answer["result"]
                when = self.watcher.commit_time(block["height"])
                ours = [stamps[tx] for tx in block["txs_raw"] if tx in stamps]
                if not ours:
                    continue
                height_of.update((tx, block["height"]) for tx in block["txs_raw"] if tx in stamps)
                blocks_with_ours.append((block["height"], len(block["txs"]), when))
                first = self.watcher.first_commit_time(block["height"])
                if first is not None:
                    first_commits += [first - stamps[tx] for tx in block["txs_raw"] if tx in stamps]
                if when is None:
                    continue
                latencies += [when - s for s in ours]
                commit_times.append(when)
                if t0 <= when <= t_end:
                    in_window += len(ours)
        result.submitted = len(stamps)
        result.cores_used = cores_used
        result.admitted = subs.admitted
        result.refused = dict(subs.refused)
        result.committed = len(latencies)
        result.committed_in_window = in_window
        result.window_throughput = in_window / (t_end - t0)
        if commit_times:
            result.throughput = len(latencies) / (max(commit_times) - t0)
        result.rule_rejected = _rule_rejections(self.cluster.log_path("validator-0"), start_height, end_height)
        if latencies:
            latencies.sort()
            result.p50_ms, result.p95_ms, result.p99_ms = (1000 * _percentile(latencies, p) for p in (50, 95, 99))
            result.max_ms = 1000 * latencies[-1]
            result.mean_ms = 1000 * sum(latencies) / len(latencies)
        answered = sorted(at - stamps[tx] for tx, at in subs.answered_at.items())
        for stage, values in (("admitted", answered), ("first commit", sorted(first_commits)),
                              ("last commit", latencies)):
            if values:
                result.stages_ms[stage] = (1000 * _percentile(values, 50), 1000 * _percentile(values, 99))
        result.blocks_passed_pct = self._blocks_passed(heights, height_of, subs.answered_at)
        result.blocks = len(blocks_with_ours)
        lags = sorted(self.watcher.times[o][h] - when for h, _, when in blocks_with_ours
                      for o in self.cluster.nodes if o not in self.cluster.validators
                      if when is not None and h in self.watcher.times[o])
        if lags:
            result.observer_lag_ms = 1000 * _percentile(lags, 95)
        if blocks_with_ours:
            result.block_txs_mean = sum(b[1] for b in blocks_with_ours) / len(blocks_with_ours)
            times = [b[2] for b in blocks_with_ours if b[2] is not None]
            if len(times) > 1:
                result.block_interval_ms = 1000 * (max(times) - min(times)) / (len(times) - 1)
        await self.resync_nonces()

    def _blocks_passed(self, heights: list[int], height_of: dict[str, int],
                       answered_at: dict[str, float]) -> dict[str, float]:
        firsts = [(h, t) for h in heights if (t := self.watcher.first_commit_time(h)) is not None]
        committed = [h for h, _ in firsts]
        times = [t for _, t in firsts]  # a height commits after the one below it: ascending
        counts: Counter[str] = Counter()
        for tx, height in height_of.items():
            at = answered_at.get(tx)
            if at is None:
                continue
            after = bisect.bisect_right(times, at)  # the first height committed after the answer
            passed = bisect.bisect_left(committed, height, lo=after) - after
            counts["3+" if passed >= 3 else str(passed)] += 1
        total = sum(counts.values())
        return {k: round(100 * counts[k] / total, 1) for k in ("0", "1", "2", "3+")} if total else {}


def _machine_busy_s() -> float:
    """CPU seconds all cores of the machine have been busy (not idle, not waiting for I/O) since boot."""
    with contextlib.suppress(OSError, ValueError):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _reason(error: dict[str, Any]) -> str:
    data = error.get("data") or {}
    reason = data.get("reason") if isinstance(data, dict) else None
    return str(reason or error.get("message")).split(":")[0]


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _rule_rejections(path: Path, after: int, upto: int) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for match in re.finditer(r"committed height (\d+): \d+ txs \((\d+) rejected\)", path.read_text(errors="replace")):
            if after < int(match.group(1)) <= upto:
                total += int(match.group(2))
    return total


# --- one whole session: cluster up, set-up, runs, cluster down ------------------------------------


async def wait_connected(cluster: Cluster, rpc: Rpc, bound_s: float = 60) -> None:
    """Until every validator has a link to every other one (bench/wan.py too)."""
    deadline = time.monotonic() + bound_s
    while True:
        cluster.check_alive()
        try:
            statuses = [await rpc.call(cluster.url(v), "chain_status") for v in cluster.validators]
            if all(len(s["peers"]) >= len(cluster.validators) - 1 for s in statuses):
                return
        except (OSError, aiohttp.ClientError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not connect within {bound_s:.0f} s")
        await asyncio.sleep(0.2)


async def session(cluster: Cluster, args: argparse.Namespace, *, loads: list[float], saturation_only: bool,
                  load_only: float | None = None) -> tuple[list[RunResult], dict[str, float]]:
    connector = aiohttp.TCPConnector(limit=4 * args.clients + 16)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        rpc = Rpc(http)
        await wait_connected(cluster, rpc)
        watcher = Watcher(cluster)
        await watcher.start()
        bench = Bench(cluster, rpc, watcher, investors=args.investors, clients=args.clients)
        started = time.monotonic()
        await bench.setup()
        await bench.open()
        log(f"set-up done in {time.monotonic() - started:.1f} s: {args.investors} investors, token {TOKEN}")
        results = []
        if load_only is not None:  # a profiled fixed-load run: nothing else in the processes' lifetime
            log(f"load {load_only:.0f} tx/s for {args.seconds:.0f} s")
            result = await bench.load(load_only, args.seconds)
            results.append(result)
            log(_row(result))
        else:
            sat = await bench.saturation(args.seconds, args.window, args.presign_rate)
            results.append(sat)
            log(_row(sat))
        if load_only is None and not (saturation_only or args.saturation_only):
            half = round(sat.throughput / 2)
            rates = sorted({*loads, half} - {0})
            for rate in rates:
                if rate > 1.25 * max(sat.throughput, 1):
                    log(f"load {rate:.0f} tx/s: skipped, above 1.25 x saturation ({sat.throughput:.0f} tx/s)")
                    continue
                log(f"load {rate:.0f} tx/s for {args.seconds:.0f} s")
                result = await bench.load(rate, args.seconds)
                results.append(result)
                log(_row(result))
        peaks = cluster.peak_memory_mb()
        rss = cluster.peak_memory_mb("VmRSS")
        anon, mapped = cluster.peak_memory_mb("RssAnon"), cluster.peak_memory_mb("RssFile")
        cluster.rss_end = {k: f"{v:.0f} ({anon.get(k, math.nan):.0f} anonymous + {mapped.get(k, math.nan):.0f} "
                              "file-backed, LMDB's map included)" for k, v in rss.items()}
        log("resident at the end (VmRSS, MiB): " + ", ".join(f"{k} {v}" for k, v in cluster.rss_end.items()))
        if watcher.drops:
            log(f"warning: {watcher.drops} blocks subscriptions were dropped and resubscribed")
        await bench.close()
        await watcher.stop()
        return results, peaks


# --- profile ------------------------------------------------------------------------------------------


#: Where a sample's time goes: its phase is the first of PHASES (in this order) with a frame anywhere
#: on the stack, its activity the first of ACTIVITIES likewise; so renames inside a phase do not
#: move time between phases, and an Ed25519 verify is one wherever it happens.
PHASES: tuple[tuple[str, str], ...] = (
    ("client tx admission (Node.submit)", r"^Node\.submit "),
    ("gossiped tx admission (GossipIngest)", r"^(GossipIngest\.|Node\._admit_gossiped )"),
    ("tx admission, other (Mempool.add)", r"^Mempool\.add "),
    ("mempool rebuild after a block (Mempool.update)", r"^Mempool\.update "),
    ("proposal's txs into the mempool (Mempool.note_proposed)", r"^Mempool\.note_proposed "),
    ("block validation (Ledger.validate_block)", r"^Ledger\.validate_block "),
    ("block apply (Ledger.apply_block)", r"^Ledger\.apply_block "),
    ("projection after the commit (Ledger.project)", r"^(Ledger\.project|Ledger\.catch_up|Projector\.) "),
    ("proposal (Mempool.reap, Ledger.build_block)", r"^(Mempool\.reap|Ledger\.build_block) "),
    ("double-sign guard (write + fsync before each vote)", r"^SignStateFile\."),
    ("peer links (encryption, framing)", r"^SecretConnection\."),
    ("peer wire messages (node/p2p/wire.py)", r"\(node/p2p/wire\.py\)$"),
    ("consensus core and driver", r"(\(consensus/|^ConsensusDriver\.)"),
    ("commit bookkeeping (Node._on_commit: watchers, subscribers)", r"^Node\._on_commit "),
    ("JSON-RPC server (aiohttp, dispatch, JSON)", r"(\(node/rpc/|\(aiohttp/|^RpcServer\.)"),
    ("peer links (other, node/p2p)", r"\(node/p2p/"),
    ("metrics and loop-stall probe (node/ops)", r"\(node/ops/"),
)
ACTIVITIES: tuple[tuple[str, str], ...] = (
    ("Ed25519 verify", r"^crypto_sign_open "),
    ("tx decode + canonical check", r"^(decode_transaction|Ledger\._decode_txs) "),
    ("LMDB write, receipts, state root", r"^(Ledger\._write_results|Store\.flush_state|Transaction\.commit) "),
    ("rules and state", r"\(ledger/(execution|state|layout|reasons|countries|compliance|holdings|transfers"
                        r"|permissions|context|handlers|identities|roles|governance|trail)\.py\)$"),
    ("fsync/file I/O", r"^(fsync|fdatasync|SignStateFile\.save) "),
    ("JSON", r"(\(json/|orjson|msgspec/.*json)"),
    ("msgpack", r"(msgpack|\(ledger/codec\.py\)$)"),
)


def categorize(frames: list[str]) -> str:
    phase = next((name for name, pattern in PHASES if any(re.search(pattern, f) for f in frames)),
                 "event loop, asyncio, logging, other")
    activity = next((name for name, pattern in ACTIVITIES if any(re.search(pattern, f) for f in frames)), "")
    return f"{phase}: {activity}" if activity else phase


#: Samples of the process starting (imports) are left out of every share.
START_UP = re.compile(r"^_find_and_load ")


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Shares of py-spy's raw (collapsed) stacks: by category, and self and inclusive by function and file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    files: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    total = start_up = 0
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if any(START_UP.match(f) for f in frames):
            start_up += count
            continue
        total += count
        category = categorize(frames)
        categories[category] += count
        phases[category.split(": ")[0]] += count
        own[frames[-1]] += count
        files[_file_of(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    skip = re.compile(r"^(<module>|run|main|start|Runner\.run|Handle\._run|_run_once|run_forever|run_until_complete|_run) \(")
    return {
        "samples": total,
        "start_up_samples": start_up,
        "phases": [(f, share(c)) for f, c in phases.most_common()],
        "categories": [(f, share(c)) for f, c in categories.most_common() if share(c) >= 0.3],
        "self": [(f, share(c)) for f, c in own.most_common(top)],
        "inclusive": [(f, share(c)) for f, c in inclusive.most_common(top * 3) if not skip.match(f)][:top],
        "files": [(f, share(c)) for f, c in files.most_common(top)],
    }


def _file_of(frame: str) -> str:
    match = re.search(r"\(([^()]*)\)$", frame)
    name = match.group(1) if match else frame
    return re.sub(r"^.*site-packages/", "", name)


# --- output --------------------------------------------------------------------------------------------


def _row(r: RunResult) -> str:
    refused = ", ".join(f"{k} {v}" for k, v in sorted(r.refused.items())) or "-"
    return (f"{r.mode:<10} offered {r.offered:7.0f}/s  committed {r.throughput:7.0f}/s  "
            f"p50 {r.p50_ms:7.0f}  p95 {r.p95_ms:7.0f}  p99 {r.p99_ms:7.0f} ms  "
            f"submitted {r.submitted}  committed {r.committed}  refused {refused}  rule-rejected {r.rule_rejected}  "
            f"blocks {r.blocks} x {r.block_txs_mean:.0f} txs every {r.block_interval_ms:.0f} ms  "
            f"observer lag p95 {r.observer_lag_ms:.0f} ms  cores: {_cores(r)}  "
            + "  ".join(f"{k} p50/p99 {a:.0f}/{b:.0f}" for k, (a, b) in r.stages_ms.items())
            + f"  blocks passed (% of txs) {_passed(r)}  {stalls.line(r.loop_stalls)}")


def _passed(r: RunResult) -> str:
    return " / ".join(f"{r.blocks_passed_pct[k]:.0f}" for k in ("0", "1", "2", "3+")) if r.blocks_passed_pct else "-"


def _stages(r: RunResult) -> str:
    """Where the latency goes: when the validator answered the submission, and when the first
    validator committed (the p50 / p99 columns are the last validator's commit)."""
    parts = [f"{r.stages_ms[k][0]:.0f} / {r.stages_ms[k][1]:.0f}" for k in ("admitted", "first commit")
             if k in r.stages_ms]
    return ", ".join(parts) or "-"


def _cores(r: RunResult) -> str:
    others = ("bench client", "other processes")
    nodes = sum(v for k, v in r.cores_used.items() if k not in others)
    return (f"nodes {nodes:.2f} (" + " ".join(f"{v:.2f}" for k, v in r.cores_used.items() if k not in others)
            + f"), client {r.cores_used.get('bench client', math.nan):.2f}, "
            + f"others {r.cores_used.get('other processes', math.nan):.2f}")


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = re.search(r"^MemTotal:\s+(\d+) kB", mem, re.M)
    return {"nproc": os.cpu_count(), "cpu": model.group(1).strip() if model else platform.processor(),
            "ram_gib": round(int(total.group(1)) / 1024 / 1024, 1) if total else None,
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}"}


def plot(results: list[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted((r for r in results if r.mode == "load"), key=lambda r: r.offered)
    sat = [r for r in results if r.mode == "saturation"]
    x = [r.offered for r in ordered]
    top = max([r.offered for r in results] or [1])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(x, [r.throughput for r in ordered], "o-", label="fixed load (open loop)")
    left.plot([r.offered for r in sat], [r.throughput for r in sat], "*", markersize=14, color="C3",
              label="saturation (closed loop)")
    left.plot([0, top], [0, top], ":", color="grey", label="offered")
    for r in sat:
        left.annotate(f"{r.throughput:.0f}/s", (r.offered, r.throughput), textcoords="offset points", xytext=(-40, 8))
    left.set_xlabel("offered load (tx/s)")
    left.set_ylabel("committed transfers per second")
    left.set_title("Throughput")
    left.legend()
    left.grid(alpha=0.3)
    right.plot(x, [r.p50_ms for r in ordered], "o-", label="p50")
    right.plot(x, [r.p95_ms for r in ordered], "s--", label="p95")
    right.plot(x, [r.p99_ms for r in ordered], "^-", label="p99")
    right.plot([r.offered for r in sat], [r.p99_ms for r in sat], "*", markersize=14, color="C3",
               label="p99 at saturation")
    right.axhline(1000, color="red", linestyle=":", label="p99 target (1 s)")
    right.set_xlabel("offered load (tx/s)")
    right.set_ylabel("commit latency on every validator (ms)")
    right.set_yscale("log")
    right.set_title("Latency")
    right.legend()
    right.grid(alpha=0.3, which="both")
    figure.suptitle("secledger cluster: 4 validators + 1 observer on one machine")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def section(report: dict[str, Any], png: Path) -> str:
    m, runs = report["machine"], [RunResult(**r) for r in report["runs"]]
    sat = next(r for r in runs if r.mode == "saturation")
    half = round(sat.throughput / 2)
    bound, ratio = report["bound_per_node_tx_s"], report["ratio"]
    rows = "\n".join(
        f"| {r.mode} | {r.offered:.0f} | {r.throughput:.0f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} | "
        f"{r.max_ms:.0f} | {r.committed} / {r.submitted} | "
        f"{', '.join(f'{k} {v}' for k, v in sorted(r.refused.items())) or '-'} | {r.blocks} x {r.block_txs_mean:.0f} | "
        f"{r.block_interval_ms:.0f} | {r.observer_lag_ms:.0f} | {_stages(r)} | {_passed(r)} | {_cores(r)} |"
        for r in sorted(runs, key=lambda r: (r.mode != "saturation", r.offered)))
    half_run = min((r for r in runs if r.mode == "load"), key=lambda r: abs(r.offered - half), default=None)
    memory = " | ".join(f"{n} {v:.0f} MiB" for n, v in report["peak_memory_mib"].items())
    rss = " | ".join(f"{n} {v} MiB" for n, v in report["rss_end_mib"].items())
    mem_max = max(report["peak_memory_mib"].values(), default=math.nan)
    targets = [
        f"- committed transfers per second: **{sat.throughput:.0f}** (target >= 2,000 on 2 cores): "
        f"{'met' if sat.throughput >= 2000 else 'missed'}",
        f"- p99 commit latency at half that load ({half_run.offered:.0f} tx/s): **{half_run.p99_ms:.0f} ms** "
        f"(target < 1 s): {'met' if half_run.p99_ms < 1000 else 'missed'}" if half_run else "- p99 at half load: not run",
        f"- peak memory per node: **{mem_max:.0f} MiB** at most (target < 300 MB = 286 MiB): "
        f"{'met' if mem_max < 286 else 'missed'}",
        f"- ratio to the bound: **{100 * ratio:.1f} %** (target about 30 %)",
    ]
    others = max((r.cores_used.get("other processes", 0.0) for r in runs), default=0.0)
    before, after = report["verify_before_after"]
    if others > 0.25 or abs(before - after) > 0.15 * max(before, after):
        targets.append(f"- **Caution**: this machine was not quiet: other processes used up to {others:.2f} cores "
                       f"during the runs, and the Ed25519 rate moved from {before:.0f} to {after:.0f}/s; "
                       "these figures understate the cluster and the bound alike. Rerun on a quiet machine.")
    overrides = "; ".join(f"[{s}] " + ", ".join(f"{k} = {v}" for k, v in vals.items())
                          for s, vals in CONFIG_OVERRIDES.items())
    profile = report.get("profile")
    if profile:
        prof_text = (
            f"\nWhere validator-0's time goes during a separate saturation run "
            f"(`{profile['command']}`; py-spy {profile['rate']} Hz, non-blocking, {profile['samples']} samples "
            f"of active CPU, idle excluded, and {profile['start_up_samples']} samples of start-up imports left out; that run committed {profile['throughput']:.0f} tx/s). "
            "Each sample is charged to a phase (the first of bench/cluster.py's PHASES on its stack) "
            "and an activity within it (Ed25519 verify, decode, rules and state, ...):\n\n"
            "| phase | % of samples |\n| --- | --- |\n"
            + "\n".join(f"| {name} | {pct} |" for name, pct in profile["phases"])
            + "\n\n| phase: activity (>= 0.3 %) | % of samples |\n| --- | --- |\n"
            + "\n".join(f"| {name} | {pct} |" for name, pct in profile["categories"])
            + "\n\nBy function:\n\n"
            "| self time (function, file) | % | | inclusive time (function, file) | % |\n| --- | --- | --- | --- | --- |\n"
            + "\n".join(f"| `{a[0]}` | {a[1]} | | `{b[0]}` | {b[1]} |"
                        for a, b in zip(profile["self"], profile["inclusive"], strict=False))
            + "\n\nSelf time by file:\n\n| file | % |\n| --- | --- |\n"
            + "\n".join(f"| `{f}` | {p} |" for f, p in profile["files"])
            + "\n\nRaw stacks (py-spy's collapsed format, for a flame graph): "
            "`docs/bench/cluster-profile-validator-0.txt.gz`.\n")
    else:
        prof_text = ("\nNo profile in this run (add `--profile`).\n" if not report.get("profile_requested")
                     else "\nThe profile was requested but py-spy wrote nothing (see the run's output).\n")
    return f"""{SECTION}

Command: `{report['command']}` ({report['date']}, {report['wall_s']:.0f} s wall).
Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, {m['system']};
load average before the run (other work on the machine): {report['loadavg_before']}.

Four validators and one observer, each a `secledger start` process on 127.0.0.1, generated by
`secledger testnet` with these changes to the configs: {overrides}. The benchmark's own process
(one asyncio loop: {report['clients']} clients, each owning its senders and pipelining JSON-RPC batches over its
own WebSocket to one validator, and a
`blocks` WebSocket subscription on every node) runs on the same cores. Workload: {report['investors']}
KYC'd investors (kyc + country claims) sending transfers of 1 unit of a token with rules
`{json.dumps(RULES)}`, all signed before the timed part. A transaction counts as committed when
its block has been committed on every validator (the time the last one announced it); latency is
that time minus the submission time (the scheduled time in the open-loop runs). Committed tx/s is
our committed transfers divided by the time from the first submission to the last commit (so the
drain after the last submission counts); CPU cores used is each process's CPU time over that span.

{chr(10).join(targets)}

| run | offered tx/s | committed tx/s | p50 ms | p95 ms | p99 ms | max ms | committed / submitted | refused by mempool | blocks x mean txs | ms between blocks | observer lag p95 ms | p50 / p99 ms from submission: answered, first validator committed | % of txs by blocks passed before theirs: 0 / 1 / 2 / 3+ | CPU cores used: nodes (v0 v1 v2 v3 obs), this client, other processes |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

Blocks passed: how many blocks committed after the validator answered a transaction and before
the block that holds it. One is the block already under way when it arrived; two or more means it
missed a proposal it could have been in, because it had not reached that height's proposer yet.

Event loop stalls during each run, from every node's `secledger_loop_stall_seconds` (metrics on, on
loopback, scraped before the run and after its drain; node/ops/loop_stalls.py): a stall is a
wakeup of a probe that should run every {_probe_ms()} ms, at least 1 ms late; its length is a lower
bound of the time the loop was held, at most one probe interval short. After the slash, the part
of the run the loop's thread was on the CPU during its stalls (executing Python); the rest of the
stalled time it waited in a system call (fsync) or for a CPU (the other processes on these cores).

{stalls.table(sorted(runs, key=lambda r: (r.mode != "saturation", r.offered)))}

The saturation run keeps at most {report['window']} transactions in flight (submitted, not yet
committed on validator-0); its latency is the queueing at that depth, not a target.

Peak memory (VmHWM) per node at the end of the run: {memory}.
Resident at the end (VmRSS), after the drain: {rss}. The file-backed part is mostly the pages of
the LMDB store mapped into the process: it grows with the chain and the kernel can reclaim it, so
the anonymous part (Python's heap: mempool, caches) is the one to watch against the 300 MB target.

Bound: Ed25519 verifications with pynacl on all {report['bound_workers']} cores: {report['verify_per_s']:.0f}/s
(the better of {report['verify_before_after'][0]:.0f} before and {report['verify_before_after'][1]:.0f} after the cluster runs);
every one of the {VALIDATORS + OBSERVERS} nodes verifies each transaction, so the bound is
{bound:.0f} tx/s, and the cluster's {sat.throughput:.0f} tx/s is **{100 * ratio:.1f} %** of it.

![throughput and latency against offered load]({png.relative_to(ROOT / 'docs').as_posix()})
{prof_text}"""


def _probe_ms() -> str:
    from node.ops.loop_stalls import ENVIRONMENT_VARIABLE, interval_from_environment

    interval = interval_from_environment() * 1000
    return f"{interval:g}" + (f" (`{ENVIRONMENT_VARIABLE}`)" if os.environ.get(ENVIRONMENT_VARIABLE) else "")


def write_section(text: str) -> Path:
    path = ROOT / "docs" / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = text.rstrip("\n") + "\n\n"
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    new = new.rstrip("\n") + "\n"
    path.write_text(new)
    return path


# --- main ------------------------------------------------------------------------------------------------


def run_cluster(args: argparse.Namespace, *, loads: list[float], saturation_only: bool,
                profile_to: dict[str, Path] | None = None, load_only: float | None = None) -> tuple[list[RunResult], dict[str, float], dict[str, str]]:
    directory = Path(tempfile.mkdtemp(prefix="secledger-cluster-"))
    cluster = None
    try:
        cluster = Cluster(directory / "net", profile_to=profile_to)
        cluster.start()
        log(f"cluster started in {directory}")
        try:
            import uvloop
        except ImportError:
            uvloop = None
        coroutine = session(cluster, args, loads=loads, saturation_only=saturation_only, load_only=load_only)
        results, peaks = uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)
        return results, peaks, cluster.rss_end
    finally:
        if cluster is not None:
            cluster.stop()
            log("every node stopped")
        if args.keep:
            log(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of each timed run (default 15)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent submitting clients (default 8)")
    parser.add_argument("--loads", default="200,500,1000,2000",
                        help="fixed offered loads in tx/s, comma-separated; half of saturation is added")
    parser.add_argument("--investors", type=int, default=200, help="KYC'd investors, all senders (default 200)")
    parser.add_argument("--window", type=int, default=5_000, help="most txs in flight at saturation (default 5000)")
    parser.add_argument("--presign-rate", type=int, default=6000, help="transfers signed per second of saturation (default 6000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the PNG and JSON go")
    parser.add_argument("--profile", action="store_true",
                        help="also profile validator-0 with py-spy in a separate saturation run")
    parser.add_argument("--profile-nodes", default="validator-0",
                        help="nodes --profile runs under py-spy, comma-separated (default validator-0)")
    parser.add_argument("--profile-load", type=float, metavar="TX_S",
                        help="the --profile run offers this fixed load instead of saturating")
    parser.add_argument("--saturation-only", action="store_true", help="skip the fixed-load runs")
    parser.add_argument("--no-write", action="store_true",
                        help="leave docs/ alone: the PNG and JSON go to a temporary directory unless --out is given")
    parser.add_argument("--summarize-profile", type=Path, metavar="RAW",
                        help="only print the summary of a py-spy raw profile (e.g. docs/bench/"
                             "cluster-profile-validator-0.txt.gz) and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary network directory")
    args = parser.parse_args()
    loads = [float(x) for x in args.loads.split(",") if x.strip()]
    if args.summarize_profile:
        print(json.dumps(summarize_profile(args.summarize_profile), indent=1))
        return 0
    command = " ".join([".venv/bin/python bench/cluster.py", *sys.argv[1:]])

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    wall = time.monotonic()
    loadavg_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    log("measuring the Ed25519 bound")
    verify_per_s, workers = ed25519_bound()
    bound = verify_per_s / (VALIDATORS + OBSERVERS)
    log(f"Ed25519: {verify_per_s:.0f} verifies/s on {workers} processes; bound {bound:.0f} tx/s per node")
    try:
        results, peaks, rss_end = run_cluster(args, loads=loads, saturation_only=False)
    except KeyboardInterrupt:
        log("interrupted; every node stopped")
        return 130
    profile = None
    profiles: dict[str, Any] = {}
    if args.profile:
        names = [n.strip() for n in args.profile_nodes.split(",") if n.strip()]
        raw_dir = Path(tempfile.mkdtemp(prefix="secledger-pyspy-"))
        raws = {name: raw_dir / f"{name}.txt" for name in names}
        try:
            prof_results, _, _ = run_cluster(args, loads=[], saturation_only=True, profile_to=raws,
                                             load_only=args.profile_load)
        except KeyboardInterrupt:
            log("interrupted; every node stopped")
            shutil.rmtree(raw_dir, ignore_errors=True)
            return 130
        prof = prof_results[0]
        for name, raw in raws.items():
            for _ in range(100):  # py-spy writes once the node has exited
                if raw.exists() and raw.stat().st_size:
                    break
                time.sleep(0.1)
            if not raw.exists():
                log(f"warning: py-spy wrote no profile of {name}")
                continue
            summary = summarize_profile(raw)
            # The node's CPU per committed transfer in that run, split by the profile's shares.
            cpu_us = prof.cores_used.get(name, math.nan) * prof.span_s / max(prof.committed, 1) * 1e6
            summary.update(rate=PROFILE_RATE_HZ, mode=prof.mode, offered=prof.offered, throughput=prof.throughput,
                           cpu_us_per_tx=cpu_us,
                           phases_us=[(f, round(pct * cpu_us / 100, 1)) for f, pct in summary["phases"]],
                           categories_us=[(f, round(pct * cpu_us / 100, 1)) for f, pct in summary["categories"]],
                           command=f"py-spy record --format raw --rate {PROFILE_RATE_HZ} --nonblocking -- secledger start ...")
            profiles[name] = summary
            args.out.mkdir(parents=True, exist_ok=True)
            with open(raw, "rb") as source, gzip.open(args.out / f"cluster-profile-{name}.txt.gz", "wb") as target:
                shutil.copyfileobj(source, target)
        profile = profiles.get("validator-0") or next(iter(profiles.values()), None)
        shutil.rmtree(raw_dir, ignore_errors=True)
    log("measuring the Ed25519 bound again")
    verify_after, _ = ed25519_bound()
    if abs(verify_after - verify_per_s) > 0.15 * max(verify_after, verify_per_s):
        log(f"warning: the bound moved from {verify_per_s:.0f} to {verify_after:.0f} verifies/s: "
            "other work on this machine; the figures are not reliable")
    verify_before, verify_per_s = verify_per_s, max(verify_per_s, verify_after)
    bound = verify_per_s / (VALIDATORS + OBSERVERS)
    sat = results[0]
    report = {
        "command": command, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "clients": args.clients, "investors": args.investors, "window": args.window, "seconds": args.seconds,
        "verify_per_s": verify_per_s, "verify_before_after": [verify_before, verify_after], "bound_workers": workers, "bound_per_node_tx_s": bound,
        "ratio": sat.throughput / bound, "peak_memory_mib": peaks, "rss_end_mib": rss_end, "runs": [vars(r) for r in results],
        "loadavg_before": " ".join(loadavg_before), "profile_requested": args.profile,
        "profile": profile, "profiles": profiles, "config_overrides": CONFIG_OVERRIDES, "wall_s": time.monotonic() - wall,
    }
    if args.no_write and args.out == DEFAULT_OUT:
        args.out = Path(tempfile.mkdtemp(prefix="secledger-bench-"))
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "cluster.png"
    plot(results, png)
    (args.out / "cluster.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nmachine: {report['machine']}")
    print(f"Ed25519 verifies/s on {workers} cores: {verify_per_s:.0f} (before {verify_before:.0f}, after "
          f"{verify_after:.0f}); bound {bound:.0f} tx/s; "
          f"saturation {sat.throughput:.0f} tx/s = {100 * report['ratio']:.1f} % of the bound")
    print("peak memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    for r in sorted(results, key=lambda r: (r.mode != "saturation", r.offered)):
        print(_row(r))
    for name, prof in profiles.items():
        print(f"\nprofile of {name} ({prof['samples']} samples; {prof['cpu_us_per_tx']:.0f} us of its CPU per "
              f"committed transfer at {prof['throughput']:.0f} tx/s), by phase:")
        for (phase, pct), (_, us) in zip(prof["phases"], prof["phases_us"], strict=True):
            print(f"  {pct:5.1f} %  {us:6.1f} us  {phase}")
        print("by phase and activity:")
        for (category, pct), (_, us) in zip(prof["categories"], prof["categories_us"], strict=True):
            print(f"  {pct:5.1f} %  {us:6.1f} us  {category}")
        print("self time:")
        for function, pct in prof["self"]:
            print(f"  {pct:5.1f} %  {function}")
        print("inclusive:")
        for function, pct in prof["inclusive"]:
            print(f"  {pct:5.1f} %  {function}")
    print(f"\nwrote {png} and {args.out / 'cluster.json'}")
    if not args.no_write:
        try:
            png_rel = png.resolve()
            png_rel.relative_to(ROOT / "docs")
        except ValueError:
            png_rel = ROOT / "docs" / "bench" / "cluster.png"
        print(f"wrote {write_section(section(report, png_rel))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
