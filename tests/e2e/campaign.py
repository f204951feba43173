"""The end-to-end fault campaign: real `secledger start` processes, a steady load of signed
transfers over JSON-RPC, and faults injected at seeded moments; then checkers over the public RPC.

One seed drives everything the harness chooses (which fault, which node or link, how long it lasts,
the quiet time between faults, who sends what to whom). Wall-clock timing is real, so a replay runs
the same schedule of choices, not the same interleaving of messages. See docs/FAULTS.md.

Phases, after the VOPR: (1) faults on, load on, liveness required after every heal; (2) everything
healed, load stopped, convergence required within a bound; (3) checkers: committed transactions,
blocks, state roots, certificates, evidence, logs. A failure raises `CampaignFailure` with its kind
(crash, liveness, safety) and the seed; the pytest entry prints the command that replays it.

Link cuts need no privileges: every validator-to-validator dial goes through a `LinkProxy` (an
asyncio TCP relay in this process, on a loopback port chosen at run time). Cutting a pair closes the
relayed connections both ways and refuses new ones until it is healed. Observers dial validators
directly: their faults are kill and restart.

Load: a few clients that submit a transfer and wait for it (a trickle, ~10 tx/s, exercising
`tx_wait`) and, with `CampaignConfig.rate`, an open-loop load at that many tx/s besides (`RateLoad`:
signed transfers sent in JSON-RPC batches as they fall due, whatever the answers). The report then
gives the commit latency of that load outside the fault windows, and every fault's heal-to-progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from consensus.certificate import CommitCertificate
from consensus.validators import Validator, ValidatorSet
from ledger.client import Action, Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.rpc.client import RpcClient, RpcError, RpcTransportError
from node.setup.config import load_config, render_config
from node.setup.keys import load_key
from node.validator.byzantine import ENVIRONMENT_VARIABLE as BYZANTINE_VARIABLE

from .conftest import SECLEDGER, ProcessNetwork

#: Environment variables of the campaign (read by the pytest entry, documented in docs/FAULTS.md).
SEED_VARIABLE = "SECLEDGER_CAMPAIGN_SEED"
SECONDS_VARIABLE = "SECLEDGER_CAMPAIGN_SECONDS"
SEEDS_VARIABLE = "SECLEDGER_CAMPAIGN_SEEDS"
#: The open-loop load in tx/s (0: only the trickle of the waiting clients).
RATE_VARIABLE = "SECLEDGER_CAMPAIGN_RATE"
#: The fewest faults a run injects, whatever its time (default: one of every kind).
FAULTS_VARIABLE = "SECLEDGER_CAMPAIGN_FAULTS"

#: Every up node must gain this many heights after a heal ...
PROGRESS_HEIGHTS: int = 2
#: ... within this bound (seconds), or the run is a liveness failure.
PROGRESS_BOUND_S: float = 30.0
#: A restarted node must fetch, verify and apply its backlog at least this fast: this many blocks a
#: second (on a loaded 2-core machine a wiped validator resyncs small blocks at about 50 a second) ...
RESYNC_BLOCKS_PER_S_MIN: float = 20.0
#: ... plus this many of their transactions a second (under a load of half the machine's saturation,
#: blocks carry hundreds of transactions, and a restarted node replays about 3,000 a second while
#: four other nodes use the rest of the two cores).
RESYNC_TXS_PER_S_MIN: float = 1_000.0
#: After the last heal, every node (observer included) must reach the same height within this.
CONVERGENCE_BOUND_S: float = 60.0
#: How long the network may take to start and the set-up transactions to commit.
START_BOUND_S: float = 60.0
#: A fault lasts a seeded time in this range (seconds) before it is healed.
HOLD_S: tuple[float, float] = (1.0, 2.5)
#: In runs of at least LONG_RUN_S, this share of faults is held much longer (past the peers' 20 s idle
#: timeout: a paused node's links drop; a dead node falls hundreds of blocks behind).
LONG_RUN_S: float = 120.0
LONG_HOLD_S: tuple[float, float] = (5.0, 25.0)
LONG_HOLD_SHARE: float = 0.2
#: Quiet time between a fault's progress check and the next fault (seconds).
QUIET_S: tuple[float, float] = (0.2, 1.0)
#: Load: how many client tasks submit transfers, and the investors they move tokens between.
CLIENTS: int = 4
INVESTORS: tuple[str, ...] = ("inv-0", "inv-1", "inv-2", "inv-3", "inv-4", "inv-5")
TOKEN = "CMPGN"
#: Each investor starts with this balance; transfers move 1..5 units, so nobody runs dry.
ISSUED: int = 1_000_000
#: A client waits this long for its transaction to commit before it resyncs its nonce.
TX_WAIT_MS: int = 10_000
#: `tx_wait` is called in slices this long, with a `tx_get` after each: a `tx_wait` can miss a commit
#: that lands while it starts waiting (tests/security/test_tx_wait_race.py).
WAIT_SLICE_MS: int = 2_000
#: The final check fetches the blocks of this many heights from every node at a time.
BLOCKS_PER_CHECK: int = 32
#: The open-loop load (`RateLoad`): this many client tasks, each with a home validator and its own
#: senders, sending what fell due every RATE_TICK_S in one JSON-RPC batch of at most RATE_BATCH_MAX
#: (the nodes' default batch_length_max); a request unanswered after RATE_REQUEST_S moves the client
#: to another validator.
RATE_CLIENTS: int = 4
RATE_TICK_S: float = 0.02
RATE_BATCH_MAX: int = 100
RATE_REQUEST_S: float = 5.0
#: Senders of the open-loop load: one per RATE_PER_SENDER tx/s (so a sender has few transfers in
#: flight), at least RATE_CLIENTS * 2 and at most RATE_SENDERS_MAX.
RATE_PER_SENDER: float = 5.0
RATE_SENDERS_MAX: int = 200
#: Of the open-loop transfers sent, at least this share must be committed by the end (kills lose
#: what a dead node had not gossiped yet; a much lower share means the network did not take the load).
RATE_COMMITTED_MIN: float = 0.5
#: How many of the open-loop transfers the final check looks up with `tx_get` on every node (a
#: seeded sample; all of them are checked through the identical blocks).
RATE_TX_GET_SAMPLE: int = 200
#: What `tx_get` says of a transaction in a block (besides "pending", and "replaced": another of
#: its signer and nonce is in a block, so it never will be).
IN_A_BLOCK: tuple[str, ...] = ("committed", "rejected")
#: Log lines that must never appear in any node's log (a node halted or met an unverifiable block).
FORBIDDEN_LOG_LINES = ("HALTED", "cannot verify", "reports state root", "Traceback")

FAULT_KINDS: tuple[str, ...] = ("kill", "pause", "cut_pair", "isolate", "wipe", "observer_kill", "power")
#: Every node takes a snapshot every this many blocks, so that a wiped validator can rejoin by state sync.
SNAPSHOT_INTERVAL: int = 20
#: A wiped validator rejoins by state sync, as an operator would restart it (`[statesync] enabled`,
#: with a trust root read from a healthy validator), in this share of wipes, and in every wipe of a
#: run whose open-loop load is at least WIPE_STATESYNC_RATE tx/s: replaying a whole chain of
#: full blocks from genesis while the load goes on takes longer than the chain takes to grow. The
#: other wipes replay every block by block sync. Before the first snapshot, every wipe replays.
WIPE_STATESYNC_SHARE: float = 0.5
WIPE_STATESYNC_RATE: float = 200.0
#: The `power` fault: the consortium raises a validator's power by a proposal, then lowers it back
#: (10 -> 13 moves less than a third of the set's 40; the set of every height changes twice).
POWER_RAISED: int = 13
#: In a Byzantine run the liar is the one faulty validator: faults touch only it and the observer.
BYZANTINE_FAULT_KINDS: tuple[str, ...] = ("kill", "pause", "isolate", "observer_kill")

CHAIN_ID = "secledger-local"
#: What honest validators must hold against a liar of each Byzantine mode (`evidence_list` kinds).
EVIDENCE_KIND = {"equivocate": "ConflictingProposalEvidence", "double_vote": "DuplicateVoteEvidence"}


class CampaignFailure(AssertionError):
    """A broken promise. `kind` is "crash", "liveness" or "safety" (the VOPR's three exit codes)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind} failure: {message}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    seed: int
    duration_s: float
    directory: Path
    #: Byzantine modes of the liar ("equivocate", "double_vote"): it starts in the first and takes the
    #: next one at each restart, so one run covers several. Empty: every validator is honest.
    byzantine: tuple[str, ...] = ()
    liar: str = "validator-3"
    #: The open-loop load, tx/s (0: none, only the waiting clients' trickle).
    rate: float = 0.0
    #: The fewest faults to inject (0: one round, every kind once), however long that takes.
    faults_min: int = 0


@dataclass(slots=True)
class FaultRecord:
    at_s: float  # when it was injected, seconds from the start of the run
    kind: str
    target: str
    hold_s: float
    progress_s: float | None = None  # time from heal to every up node gaining PROGRESS_HEIGHTS
    healed_s: float | None = None  # when it was healed, seconds from the start of the run

    def __str__(self) -> str:
        progress = "-" if self.progress_s is None else f"{self.progress_s:.1f}s"
        return (f"{self.at_s:7.1f}s  {self.kind:<13} {self.target:<28} held {self.hold_s:4.1f}s  "
                f"heal-to-progress {progress}")


@dataclass(slots=True)
class LoadReport:
    """The open-loop load of a run, and its commit latency (scheduled time to the first validator's
    announcement of the block) outside and inside the fault windows (injection to heal)."""

    rate: float
    senders: int = 0
    sent: int = 0
    admitted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    committed: int = 0  # found in a block at or below the checked height
    timed: int = 0  # of those, with a known commit time
    outside: int = 0  # of those, scheduled and committed outside every fault window
    p50_outside_ms: float = math.nan
    p99_outside_ms: float = math.nan
    max_outside_ms: float = math.nan
    p99_inside_ms: float = math.nan
    p99_all_ms: float = math.nan
    seconds: float = 0.0  # from the first scheduled transfer to the last
    switches: int = 0  # times a client moved to another validator

    def summary(self) -> str:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())) or "none"
        achieved = self.committed / self.seconds if self.seconds else 0.0
        return (f"load {self.rate:g} tx/s from {self.senders} senders: {self.sent} sent, {self.admitted} admitted, "
                f"{self.committed} committed ({achieved:.0f} tx/s over {self.seconds:.0f}s); refused: {refused}; "
                f"{self.switches} client moves; commit latency outside fault windows ({self.outside} txs): "
                f"p50 {self.p50_outside_ms:.0f} ms, p99 {self.p99_outside_ms:.0f} ms, max {self.max_outside_ms:.0f} ms; "
                f"p99 inside {self.p99_inside_ms:.0f} ms, p99 of all {self.p99_all_ms:.0f} ms")


@dataclass(slots=True)
class CampaignReport:
    seed: int
    faults: list[FaultRecord] = field(default_factory=list)
    submitted: int = 0
    committed: int = 0  # reported in a block to the client that sent it
    found_later: int = 0  # not reported (its node died, the wait timed out), found in a block at the end
    height: int = 0
    wall_s: float = 0.0
    started_s: float = 0.0  # when every validator had committed height 1
    set_up_s: float = 0.0  # when the token and its investors were committed
    evidence: list[dict[str, Any]] = field(default_factory=list)
    load: LoadReport | None = None  # the open-loop load, if the run had one
    loadavg: tuple[str, str] = ("?", "?")  # the machine's load average at the start and at the end

    def summary(self) -> str:
        kinds = sorted({f.kind for f in self.faults})
        progress = sorted(f.progress_s for f in self.faults if f.progress_s is not None)
        median = progress[len(progress) // 2] if progress else 0.0
        text = (f"seed {self.seed}: {len(self.faults)} faults ({', '.join(kinds)}), heal-to-progress median "
                f"{median:.1f}s, worst {max(progress, default=0.0):.1f}s, {self.committed}/{self.submitted} txs "
                f"reported in a block (+{self.found_later} found later; the rest superseded by a resubmission), "
                f"height {self.height}, {len(self.evidence)} evidence records; started {self.started_s:.1f}s, set up "
                f"{self.set_up_s:.1f}s, done {self.wall_s:.1f}s; load average {self.loadavg[0]} at the start, "
                f"{self.loadavg[1]} at the end")
        return text + (f"\n{self.load.summary()}" if self.load is not None else "")

    def heal_to_progress(self) -> dict[str, list[float]]:
        """Every fault's heal-to-progress time (seconds), by kind."""
        by_kind: dict[str, list[float]] = {}
        for fault in self.faults:
            if fault.progress_s is not None:
                by_kind.setdefault(fault.kind, []).append(fault.progress_s)
        return by_kind


def replay_command(seed: int, duration_s: float, test: str = "tests/e2e/test_campaign.py", *,
                   rate: float | None = None, faults_min: int = 0) -> str:
    extra = (f"{RATE_VARIABLE}={rate:g} " if rate is not None else "") + (
        f"{FAULTS_VARIABLE}={faults_min} " if faults_min else "")
    return (f"{SEED_VARIABLE}={seed} {SECONDS_VARIABLE}={duration_s:g} {extra}"
            f".venv/bin/python -m pytest {test} -x")


# --- links -------------------------------------------------------------------------------------------


class LinkProxy:
    """A TCP relay for the dials of one validator to another, which the harness can cut and heal."""

    def __init__(self, dialer: str, target: str, target_port: int) -> None:
        self.dialer = dialer
        self.target = target
        self.target_port = target_port
        self.port = 0
        self.is_cut = False
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        # Aborted transports end every relay task by themselves; cancel only a straggler.
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2)
            for task in pending:
                task.cancel()

    def cut(self) -> None:
        """Close every relayed connection at once (RST) and refuse new ones until `heal`."""
        self.is_cut = True
        for down, up in list(self._links):
            _abort(down)
            _abort(up)
        self._links.clear()

    def heal(self) -> None:
        self.is_cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.is_cut:
                self.refused += 1
                _abort(writer)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.target_port), 5)
            except (OSError, TimeoutError):
                _abort(writer)
                return
            if self.is_cut:  # cut while we were connecting
                _abort(writer)
                _abort(up_writer)
                return
            link = (writer, up_writer)
            self._links.add(link)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self._links.discard(link)
                _abort(writer)
                _abort(up_writer)
        finally:
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (OSError, ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        _abort(writer)


async def _wait_in_block(client: RpcClient, tx_hash: str, bound_ms: int) -> dict[str, Any] | None:
    """The transaction's receipt once it is in a block (committed or rejected), or how it was replaced
    (another of its nonce is in a block), or None after `bound_ms`."""
    deadline = time.monotonic() + bound_ms / 1000
    while time.monotonic() < deadline:
        try:
            return await client.call("tx_wait", hash=tx_hash, timeout_ms=WAIT_SLICE_MS)
        except RpcError as error:
            if error.code != -32003:  # anything but a timeout
                raise
        answer = await client.call("tx_get", hash=tx_hash)
        if answer.get("status") in (*IN_A_BLOCK, "replaced"):
            return answer
    return None


def _stale_sync_response(line: str) -> bool:
    """Block sync logs a response that consensus overtook (its first block is one we committed
    meanwhile) as "cannot verify ... expected height N, got M" with M < N: stale, not forged."""
    match = re.search(r"cannot verify: expected height (\d+), got (\d+)$", line)
    return match is not None and int(match.group(2)) < int(match.group(1))


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


# --- the open-loop load ------------------------------------------------------------------------------


def rate_senders(rate: float) -> int:
    """How many senders an open-loop load of `rate` tx/s uses."""
    return max(2 * RATE_CLIENTS, min(RATE_SENDERS_MAX, math.ceil(rate / RATE_PER_SENDER)))


class RateLoad:
    """Signed transfers at `rate` tx/s, open loop: RATE_CLIENTS tasks, each owning its senders (so
    their nonces stay sequential) and talking to one home validator, send every transfer as it falls
    due (in one JSON-RPC batch per RATE_TICK_S), whatever the answers: a slow answer delays the next
    batch, not the schedule, and a transfer's latency counts from its scheduled time. A refusal makes
    the client ask its node for that sender's next nonce before its next transfer; a failed or slow
    request (the node was killed, paused or cut off) moves the client to another up validator, which it
    asks for every one of its senders' nonces. Commits are not awaited: they are read from the blocks
    at the end (`Campaign._check`), their times from every validator's `blocks` subscription."""

    def __init__(self, campaign: Campaign, rate: float, signers: list[Signer], rng: random.Random) -> None:
        self.campaign = campaign
        self.rate = rate
        self.signers = signers
        self.rngs = [random.Random(rng.getrandbits(64)) for _ in range(RATE_CLIENTS)]
        self.scheduled: dict[str, float] = {}  # tx hash -> its scheduled time (time.monotonic())
        self.report = LoadReport(rate, senders=len(signers))

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=4 * RATE_CLIENTS)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self._client(c, session, stop) for c in range(RATE_CLIENTS)))

    async def _client(self, c: int, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        net, rng = self.campaign.net, self.rngs[c]
        owned = self.signers[c::RATE_CLIENTS]
        receivers = [s.address for s in self.signers]
        client_rate = self.rate / RATE_CLIENTS
        first = time.monotonic() + c / self.rate  # the clients staggered
        sent = 0
        node: str | None = None
        resync: set[int] = set()
        while not stop.is_set():
            up = net.up_nodes()
            if node is None or node not in up:
                candidates = [v for v in net.validators if v in up]
                if not candidates:
                    await asyncio.sleep(0.2)
                    continue
                if node is not None:
                    self.report.switches += 1
                node = rng.choice(candidates)
                resync = set(range(len(owned)))
            now = time.monotonic()
            due = math.floor((now - first) * client_rate) + 1 if now >= first else 0
            if due <= sent:
                await asyncio.sleep(max(RATE_TICK_S, first + sent / client_rate - now))
                continue
            url = net.url(node)
            batch: list[tuple[str, int, float, bytes]] = []
            try:
                if resync:
                    await self._resync(session, url, owned, resync)
                for k in range(sent, min(due, sent + RATE_BATCH_MAX)):
                    index = k % len(owned)
                    receiver = rng.choice([r for r in receivers if r != owned[index].address])
                    raw = owned[index].transfer(TOKEN, receiver, rng.randint(1, 5))
                    scheduled = first + k / client_rate
                    batch.append((hashlib.sha256(raw).hexdigest(), index, scheduled, raw))
                    self.scheduled[batch[-1][0]] = scheduled  # whatever the answer: it may commit
                sent += len(batch)
                self.report.sent += len(batch)
                answers = await _post_batch(session, url, [("tx_submit", {"tx": raw.hex()})
                                                           for _, _, _, raw in batch], RATE_REQUEST_S)
                for (_, index, _, _), answer in zip(batch, answers, strict=True):
                    if "error" in answer:
                        self.report.refused[_reason(answer["error"])] += 1
                        resync.add(index)
                    else:
                        self.report.admitted += 1
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError, RpcTransportError):
                node = None  # another validator; every sender's nonce asked again there
                await asyncio.sleep(0.1)

    @staticmethod
    async def _resync(session: aiohttp.ClientSession, url: str, owned: list[Signer], indexes: set[int]) -> None:
        order = sorted(indexes)
        answers = await _post_batch(session, url, [("account_nonce", {"address": owned[i].address.hex()})
                                                   for i in order], RATE_REQUEST_S)
        for i, answer in zip(order, answers, strict=True):
            owned[i].nonce = int(answer["result"]["next_nonce"])
        indexes.clear()

    def measure(self, in_block: dict[str, int], commit_times: dict[int, float],
                windows: list[tuple[float, float]]) -> None:
        """Latency of the committed transfers, split by whether their life (scheduled to committed)
        overlapped a fault window (injection to heal)."""
        report = self.report
        inside: list[float] = []
        outside: list[float] = []
        for tx_hash, scheduled in self.scheduled.items():
            height = in_block.get(tx_hash)
            if height is None:
                continue
            report.committed += 1
            committed_at = commit_times.get(height)
            if committed_at is None:
                continue
            report.timed += 1
            overlaps = any(scheduled < healed and committed_at > injected for injected, healed in windows)
            (inside if overlaps else outside).append(committed_at - scheduled)
        if self.scheduled:
            report.seconds = max(self.scheduled.values()) - min(self.scheduled.values())
        report.outside = len(outside)
        every = sorted(inside + outside)
        inside.sort()
        outside.sort()
        if outside:
            report.p50_outside_ms = 1000 * _percentile(outside, 50)
            report.p99_outside_ms = 1000 * _percentile(outside, 99)
            report.max_outside_ms = 1000 * outside[-1]
        if inside:
            report.p99_inside_ms = 1000 * _percentile(inside, 99)
        if every:
            report.p99_all_ms = 1000 * _percentile(every, 99)


async def _post_batch(session: aiohttp.ClientSession, url: str, calls: list[tuple[str, dict[str, Any]]],
                      timeout_s: float) -> list[dict[str, Any]]:
    """One JSON-RPC batch over HTTP; the answers in the order of `calls`."""
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])
    async with session.post(url, data=body, headers={"Content-Type": "application/json"},
                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as reply:
        answers = json.loads(await reply.read())
    if not isinstance(answers, list) or len(answers) != len(calls):
        raise RpcTransportError(f"{url}: not an answer to a batch of {len(calls)}: {str(answers)[:200]}")
    return sorted(answers, key=lambda a: a["id"])


def _reason(error: dict[str, Any]) -> str:
    data = error.get("data") or {}
    reason = data.get("reason") if isinstance(data, dict) else None
    return str(reason or error.get("message")).split(":")[0]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _block_tx_hashes(block: dict[str, Any]) -> list[str]:
    """The hashes of a `block_get` answer's transactions (as objects with a hash, or as raw hex)."""
    out = []
    for tx in block.get("txs", []):
        if isinstance(tx, dict):
            out.append(tx["hash"])
        else:
            out.append(hashlib.sha256(bytes.fromhex(tx)).hexdigest())
    return out


# --- processes ---------------------------------------------------------------------------------------


class CampaignNetwork(ProcessNetwork):
    """`ProcessNetwork` with its validator links rewritten through proxies, and per-node environment."""

    def __init__(self, directory: Path, byzantine: dict[str, tuple[str, ...]] | None = None) -> None:
        super().__init__(directory)
        self.byzantine = byzantine or {}
        self.byzantine_started: list[str] = []  # the modes the liar ran in, in order
        self.validators = sorted(n for n, v in self.nodes.items() if v["mode"] == "validator")
        self.observers = sorted(n for n, v in self.nodes.items() if v["mode"] == "observer")
        self.p2p_port: dict[str, int] = {}
        self.node_key: dict[str, str] = {}
        for name, node in self.nodes.items():
            config = tomllib.loads(Path(node["config"]).read_text())
            self.p2p_port[name] = int(config["p2p"]["listen"].rsplit(":", 1)[1])
        for name in self.nodes:
            self.node_key[name] = bytes(load_key(directory / "keys" / f"{name}.node.json").verify_key).hex()
            self.set_statesync(name, snapshot_interval=SNAPSHOT_INTERVAL)
        self.proxies: dict[tuple[str, str], LinkProxy] = {}
        self.paused: set[str] = set()
        self.down: set[str] = set()

    async def start_proxies(self) -> None:
        """One proxy per directed validator pair; rewrite each validator's peers to dial through them."""
        for dialer in self.validators:
            for target in self.validators:
                if dialer != target:
                    proxy = LinkProxy(dialer, target, self.p2p_port[target])
                    await proxy.start()
                    self.proxies[(dialer, target)] = proxy
        for dialer in self.validators:
            path = Path(self.nodes[dialer]["config"])
            text = path.read_text()
            for target in self.validators:
                if target == dialer:
                    continue
                old = f'"{self.node_key[target]}@127.0.0.1:{self.p2p_port[target]}"'
                new = f'"{self.node_key[target]}@127.0.0.1:{self.proxies[(dialer, target)].port}"'
                assert old in text, f"{path}: no peer line {old}"
                text = text.replace(old, new)
            path.write_text(text)

    async def stop_proxies(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()

    def start(self, name: str) -> None:
        log = open(self.directory / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        log.write(f"=== campaign: starting {name} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        env = dict(os.environ)
        env.pop(BYZANTINE_VARIABLE, None)
        if name in self.byzantine:
            modes = self.byzantine[name]
            mode = modes[len(self.byzantine_started) % len(modes)]
            self.byzantine_started.append(mode)
            env[BYZANTINE_VARIABLE] = mode
        self.processes[name] = subprocess.Popen([SECLEDGER, "start", "--config", self.nodes[name]["config"]],
                                                stdout=log, stderr=log, env=env)
        log.close()
        self.down.discard(name)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        if name in self.paused:
            process.send_signal(signal.SIGCONT)
            self.paused.discard(name)
        process.kill()
        process.wait(10)
        self.down.add(name)

    def pause(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGSTOP)
        self.paused.add(name)

    def resume(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGCONT)
        self.paused.discard(name)

    def wipe_store(self, name: str) -> None:
        """Delete the node's store and snapshots (not its double-sign record: see docs/FAULTS.md)."""
        shutil.rmtree(self.directory / "data" / name / "store", ignore_errors=True)
        shutil.rmtree(self.directory / "data" / name / "snapshots", ignore_errors=True)

    def set_statesync(self, name: str, **values: Any) -> None:
        """Rewrite the node's `[statesync]` section (read at its next start)."""
        path = Path(self.nodes[name]["config"])
        config = load_config(path)
        config = dataclasses.replace(config, statesync=dataclasses.replace(config.statesync, **values))
        path.write_text(render_config(config, relative_to=path.parent))

    def cut(self, a: str, b: str) -> None:
        self.proxies[(a, b)].cut()
        self.proxies[(b, a)].cut()

    def heal(self, a: str, b: str) -> None:
        self.proxies[(a, b)].heal()
        self.proxies[(b, a)].heal()

    def heal_everything(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()
        for name in list(self.paused):
            self.resume(name)
        for name in list(self.down):
            self.start(name)

    def up_nodes(self) -> list[str]:
        return [n for n in self.nodes if n not in self.down and n not in self.paused]

    def crashed(self) -> list[str]:
        """Nodes that exited although the harness did not kill them."""
        return [n for n, p in self.processes.items() if n not in self.down and p.poll() is not None]

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of the node's log, without the RPC access lines (the harness's own calls)."""
        return "\n".join([line for line in self.log(name).splitlines() if "aiohttp.access" not in line][-lines:])


# --- the campaign ------------------------------------------------------------------------------------


class Campaign:
    def __init__(self, config: CampaignConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        # Separate streams, each drawn from the seed: the schedule does not shift with the load.
        self.schedule_rng = random.Random(self.rng.getrandbits(64))
        self.load_rngs = [random.Random(self.rng.getrandbits(64)) for _ in range(CLIENTS)]
        byzantine = {config.liar: config.byzantine} if config.byzantine else {}
        self.net = CampaignNetwork(config.directory, byzantine)
        self.report = CampaignReport(config.seed)
        self.clients: dict[str, RpcClient] = {}
        self.committed: dict[str, tuple[int, str]] = {}  # tx hash -> (height, node that reported it)
        self.submitted: set[str] = set()
        self._stop_load = asyncio.Event()
        self._started = 0.0
        # Drawn after the streams above, so a seed's schedule and trickle are the same with or without it.
        self.rate_rng = random.Random(self.rng.getrandbits(64))
        self.rate_load: RateLoad | None = None
        self.commit_times: dict[int, float] = {}  # height -> when a validator first announced it
        self.block_txs: dict[int, int] = {}  # height -> how many transactions its block holds
        self.windows: list[tuple[float, float]] = []  # (injected, healed) of every fault, time.monotonic()

    @property
    def honest(self) -> list[str]:
        return [v for v in self.net.validators if not (self.config.byzantine and v == self.config.liar)]

    async def run(self) -> CampaignReport:
        self._started = time.monotonic()
        self.report.loadavg = (_loadavg(), "?")
        net = self.net
        watchers: list[asyncio.Task[None]] = []
        try:
            await net.start_proxies()
            net.start_all()
            self.clients = {n: RpcClient(net.url(n), timeout_ms=WAIT_SLICE_MS + 5_000) for n in net.nodes}
            await self._wait_heights(net.validators, 1, START_BOUND_S, "the network to start")
            self.report.started_s = time.monotonic() - self._started
            signers = await self._set_up()
            self.report.set_up_s = time.monotonic() - self._started
            watchers = [asyncio.create_task(self._watch_commits(v), name=f"commits-{v}") for v in net.validators]
            load = [asyncio.create_task(self._client(i, signers[INVESTORS[i]], signers), name=f"load-{i}")
                    for i in range(CLIENTS)]
            if self.rate_load is not None:
                load.append(asyncio.create_task(self.rate_load.run(self._stop_load), name="rate-load"))
            try:
                await self._faults()
            finally:
                self._stop_load.set()
                net.heal_everything()
                for task in load:
                    task.cancel()
                for task in load:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await self._converge()
            await self._check()
            self.report.wall_s = time.monotonic() - self._started
            self.report.loadavg = (self.report.loadavg[0], _loadavg())
            return self.report
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for client in self.clients.values():
                await client.close()
            net.stop_all()
            await net.stop_proxies()

    # --- set-up -------------------------------------------------------------------------------------

    async def _set_up(self) -> dict[str, Signer]:
        """The consortium's single member (`secledger testnet`'s default, holding keys/admin.json)
        appoints a KYC provider and an issuer by a proposal it decides alone; investors with claims;
        a token; balances."""
        client = self.clients[self.net.validators[0]]
        member = Signer(load_key(self.net.directory / "keys" / "admin.json"), CHAIN_ID)
        kyc, issuer, agent = (Signer(key_for(f"campaign-{n}"), CHAIN_ID) for n in ("kyc", "issuer", "agent"))
        signers = {name: Signer(key_for(f"campaign-{name}"), CHAIN_ID) for name in INVESTORS}
        # the open-loop load's senders, if any: investors of their own
        senders = [f"load-{i}" for i in range(rate_senders(self.config.rate))] if self.config.rate > 0 else []
        everyone = {**signers, **{name: Signer(key_for(f"campaign-{name}"), CHAIN_ID) for name in senders}}
        top = (await client.call("chain_status"))["height"]
        batches: list[list[bytes]] = [
            [member.propose([Action.grant_role("claim_issuer", kyc.address),
                             Action.grant_role("token_issuer", issuer.address)], expires_at_height=top + 1000)],
            [raw for name in everyone for raw in (
                kyc.register_identity(name, [everyone[name].address]),
                kyc.grant_claim(name, "kyc", FAR_FUTURE_S),
                kyc.grant_claim(name, "country", FAR_FUTURE_S, "US"))],
            [issuer.create_token(TOKEN, "Campaign shares", rules={"required_claims": ["kyc"]},
                                 agents={agent.address: ["supply"]})],
            [agent.issue(TOKEN, everyone[name].address, ISSUED) for name in everyone],
        ]
        if senders:
            self.rate_load = RateLoad(self, self.config.rate, [everyone[n] for n in senders], self.rate_rng)
            self.report.load = self.rate_load.report
        for batch in batches:
            hashes = [(await client.call("tx_submit", tx=raw.hex()))["hash"] for raw in batch]
            for tx_hash in hashes:
                result = await _wait_in_block(client, tx_hash, 30_000)
                if result is None or result["status"] != "committed":
                    raise CampaignFailure("crash", f"set-up transaction {tx_hash} was {result}")
        return signers

    # --- load ---------------------------------------------------------------------------------------

    async def _client(self, index: int, signer: Signer, signers: dict[str, Signer]) -> None:
        """Submit a transfer, wait for it, repeat; after any doubt, ask a node for the next nonce."""
        rng = self.load_rngs[index]
        others = [n for n in INVESTORS if signers[n] is not signer]
        resync = False
        while not self._stop_load.is_set():
            candidates = [n for n in self.net.validators if n in self.net.up_nodes()]
            if not candidates:
                await asyncio.sleep(0.2)
                continue
            node = rng.choice(candidates)
            client = self.clients[node]
            try:
                if resync:
                    answer = await client.call("account_nonce", address=signer.address.hex())
                    signer.nonce = int(answer["next_nonce"])
                    resync = False
                raw = signer.transfer(TOKEN, signers[rng.choice(others)].address, rng.randint(1, 5))
                tx_hash = (await client.call("tx_submit", tx=raw.hex()))["hash"]
                self.submitted.add(tx_hash)
                self.report.submitted += 1
                result = await _wait_in_block(client, tx_hash, TX_WAIT_MS)
                if result is None:
                    raise RpcTransportError(f"{tx_hash} not in a block after {TX_WAIT_MS} ms")
                self._record(tx_hash, result, node)
            except (RpcError, RpcTransportError):
                resync = True
                await asyncio.sleep(0.2)

    def _record(self, tx_hash: str, result: dict[str, Any], node: str) -> None:
        if result.get("status") in IN_A_BLOCK and tx_hash not in self.committed:
            self.committed[tx_hash] = (result["height"], node)

    async def _watch_commits(self, name: str) -> None:
        """When each height was first announced by a validator (its `blocks` subscription, resumed
        after every restart of the node): the commit times of the load's latency."""
        client = RpcClient(self.net.url(name), timeout_ms=24 * 3_600_000)  # the socket stays open
        try:
            while True:
                try:
                    async with client.subscribe("blocks") as subscription:
                        async for block in subscription:
                            self.commit_times.setdefault(int(block["height"]), time.monotonic())
                            self.block_txs.setdefault(int(block["height"]), int(block["txs"]))
                except Exception:  # the node was killed, paused or restarted: subscribe again
                    pass
                await asyncio.sleep(0.3)
        finally:
            await client.close()

    # --- faults -------------------------------------------------------------------------------------

    async def _faults(self) -> None:
        kinds = BYZANTINE_FAULT_KINDS if self.config.byzantine else FAULT_KINDS
        rng = self.schedule_rng
        round_: list[str] = []
        done = 0
        while (time.monotonic() - self._started < self.config.duration_s or done < len(kinds)
               or done < self.config.faults_min):
            if not round_:  # every kind once per round, in a seeded order
                round_ = list(kinds)
                rng.shuffle(round_)
            kind = round_.pop()
            await asyncio.sleep(rng.uniform(*QUIET_S))
            self._check_crashes()
            await self._one_fault(kind, rng)
            done += 1

    async def _one_fault(self, kind: str, rng: random.Random) -> None:
        net = self.net
        byz = self.config.byzantine
        victim = self.config.liar if byz else rng.choice(net.validators)
        long_hold = rng.random() < LONG_HOLD_SHARE
        hold_s = rng.uniform(*(LONG_HOLD_S if long_hold and self.config.duration_s >= LONG_RUN_S else HOLD_S))
        injected = time.monotonic()
        record = FaultRecord(round(injected - self._started, 1), kind, victim, round(hold_s, 1))
        if kind == "kill":
            net.kill(victim)
            await asyncio.sleep(hold_s)
            net.start(victim)
        elif kind == "wipe":
            coin = rng.random()  # drawn whatever the outcome, so the seed's schedule does not depend on timing
            trust = await self._trust_root(exclude=victim)
            by_state_sync = trust is not None and (coin < WIPE_STATESYNC_SHARE or self.config.rate >= WIPE_STATESYNC_RATE)
            net.kill(victim)
            net.wipe_store(victim)
            if by_state_sync:
                assert trust is not None
                record.target = f"{victim} (state sync)"
                net.set_statesync(victim, enabled=True, trust_height=trust[0], trust_hash=trust[1])
            else:
                net.set_statesync(victim, enabled=False, trust_height=0, trust_hash="")
            await asyncio.sleep(hold_s)
            net.start(victim)
        elif kind == "pause":
            net.pause(victim)
            await asyncio.sleep(hold_s)
            net.resume(victim)
        elif kind == "cut_pair":
            other = rng.choice([v for v in net.validators if v != victim])
            record.target = f"{victim}<->{other}"
            net.cut(victim, other)
            await asyncio.sleep(hold_s)
            net.heal(victim, other)
        elif kind == "isolate":
            others = [v for v in net.validators if v != victim]
            for other in others:
                net.cut(victim, other)
            await asyncio.sleep(hold_s)
            for other in others:
                net.heal(victim, other)
        elif kind == "power":
            key = load_key(net.directory / "keys" / f"{victim}.validator.json").verify_key
            base = next(v["power"] for v in await self._any_client().call("validators_list")
                        if v["validator_key"] == bytes(key).hex())
            await self._set_power(bytes(key), POWER_RAISED)
            await asyncio.sleep(hold_s)
            await self._set_power(bytes(key), base)
        elif kind == "observer_kill":
            victim = rng.choice(net.observers)
            record.target = victim
            net.kill(victim)
            await asyncio.sleep(hold_s)
            net.start(victim)
        else:
            raise AssertionError(f"unknown fault {kind}")
        self.report.faults.append(record)
        healed = time.monotonic()
        record.healed_s = round(healed - self._started, 1)
        self.windows.append((injected, healed))
        restarted = victim if kind in ("kill", "wipe", "observer_kill") else None
        await self._require_progress(f"after healing {kind} of {record.target}", restarted)
        record.progress_s = round(time.monotonic() - healed, 1)

    async def _trust_root(self, *, exclude: str) -> tuple[int, str] | None:
        """A trust root for state sync as an operator reads it, the height and block hash of a healthy
        validator's tip; None before the first snapshot's next block (nothing to sync from yet)."""
        for name in self.net.validators:
            if name == exclude or name in self.net.down or name in self.net.paused:
                continue
            try:
                status = await asyncio.wait_for(self.clients[name].call("chain_status"), 5)
            except (RpcError, RpcTransportError, TimeoutError):
                continue
            if status["height"] < SNAPSHOT_INTERVAL + 1:
                return None
            return status["height"], status["block_hash"]
        return None

    def _any_client(self) -> RpcClient:
        return self.clients[next(n for n in self.net.validators if n in self.net.up_nodes())]

    async def _set_power(self, validator_key: bytes, power: int) -> None:
        """A membership change, as the consortium's single member decides it: in one block."""
        client = self._any_client()
        member = Signer(load_key(self.net.directory / "keys" / "admin.json"), CHAIN_ID)
        member.nonce = int((await client.call("account_nonce", address=member.address.hex()))["next_nonce"])
        top = (await client.call("chain_status"))["height"]
        raw = member.propose([Action.set_validator_power(validator_key, power)], expires_at_height=top + 1000)
        tx_hash = (await client.call("tx_submit", tx=raw.hex()))["hash"]
        result = await _wait_in_block(client, tx_hash, 30_000)
        if result is None or result["status"] != "committed":
            raise CampaignFailure("liveness", f"the power change {tx_hash} was {result}")

    async def _require_progress(self, what: str, restarted: str | None) -> None:
        """Every up node reaches (the highest height now) + PROGRESS_HEIGHTS within the bound; a
        restarted node, which may have a whole chain to fetch, within the bound plus the time its
        backlog takes at RESYNC_BLOCKS_PER_S_MIN and RESYNC_TXS_PER_S_MIN."""
        up = self.net.up_nodes()
        heights = await self._heights(up)
        target = max(heights.values()) + PROGRESS_HEIGHTS
        await self._wait_heights([n for n in up if n != restarted], target, PROGRESS_BOUND_S,
                                 f"progress to height {target} {what}", kind="liveness")
        if restarted is not None:
            backlog = target - max(heights[restarted], 0)
            backlog_txs = self._txs_between(max(heights[restarted], 0), target)
            bound_s = PROGRESS_BOUND_S + backlog / RESYNC_BLOCKS_PER_S_MIN + backlog_txs / RESYNC_TXS_PER_S_MIN
            await self._wait_heights([restarted], target, bound_s,
                                     f"{restarted} to catch up {backlog} blocks ({backlog_txs} transactions) "
                                     f"to height {target} {what}", kind="liveness")

    def _txs_between(self, low: int, high: int) -> int:
        """Transactions in the blocks low + 1 .. high, as the validators announced them (a height
        nobody announced, such as one still to come, counts as the mean of those announced)."""
        known = [self.block_txs[h] for h in range(low + 1, high + 1) if h in self.block_txs]
        mean = sum(self.block_txs.values()) / len(self.block_txs) if self.block_txs else 0.0
        return round(sum(known) + mean * (high - low - len(known)))

    def _check_crashes(self) -> None:
        """A node that exited although the harness did not kill it fails the run at once."""
        crashed = self.net.crashed()
        if crashed:
            raise CampaignFailure("crash", f"{crashed} exited by themselves:\n"
                                  + "\n".join(self.net.log_tail(n) for n in crashed))

    # --- convergence and checks ------------------------------------------------------------------------

    async def _converge(self) -> None:
        self._check_crashes()
        names = list(self.net.nodes)
        target = max((await self._heights(names)).values()) + PROGRESS_HEIGHTS
        await self._wait_heights(names, target, CONVERGENCE_BOUND_S, f"every node to reach height {target}",
                                 kind="liveness")

    async def _check(self) -> None:
        net = self.net
        names = list(net.nodes)
        statuses = {n: await self.clients[n].call("chain_status") for n in names}
        for name, status in statuses.items():
            if status["halted"]:
                raise CampaignFailure("safety", f"{name} halted: {status['halted']}")
        top = min(s["height"] for s in statuses.values())
        self.report.height = top
        # A validator that rejoined by state sync holds the blocks from its snapshot on (history_from);
        # each height is compared across the nodes that hold it. The observer is never wiped.
        first = {n: int(s.get("history_from", 1)) for n, s in statuses.items()}
        full = min(names, key=lambda n: first[n])
        if first[full] != 1:
            raise CampaignFailure("safety", f"no node holds the chain from height 1: {first}")
        # the set of each height, as a node with the whole chain says (the others hold the same blocks)
        sets: dict[int, ValidatorSet] = {}
        for h in range(1, top + 1):
            listed = await self.clients[full].call("validators_list", height=h)
            sets[h] = ValidatorSet(Validator(bytes.fromhex(v["validator_key"]), v["power"]) for v in listed)

        # identical blocks, previous state roots and state roots at every height, certificates valid
        semaphore = asyncio.Semaphore(16)

        async def block(name: str, h: int) -> dict[str, Any]:
            async with semaphore:
                return await self.clients[name].call("block_get", height=h)

        # (a window of heights at a time: a loaded run's blocks are too many to hold at once)
        in_block: dict[str, int] = {}  # the open-loop load's transactions -> their height
        ours = self.rate_load.scheduled if self.rate_load is not None else {}
        for low in range(1, top + 1, BLOCKS_PER_CHECK):
            heights = range(low, min(top, low + BLOCKS_PER_CHECK - 1) + 1)
            asked = [(n, h) for h in heights for n in names if first[n] <= h]
            every = dict(zip(asked, await asyncio.gather(*(block(n, h) for n, h in asked)), strict=True))
            for h in heights:
                blocks = {n: every[n, h] for n in names if first[n] <= h}
                reference = blocks[full]
                for name, b in blocks.items():
                    for key in ("hash", "previous_state_root", "state_root", "previous_block_hash"):
                        if b[key] != reference[key]:
                            raise CampaignFailure("safety", f"height {h}: {name} has {key} {b[key]}, "
                                                  f"{full} has {reference[key]}")
                    try:
                        CommitCertificate.decode(bytes.fromhex(b["certificate"]["encoded"])).verify(
                            CHAIN_ID, sets[h], height=h, block_id=bytes.fromhex(b["hash"]))
                    except Exception as exc:
                        raise CampaignFailure("safety", f"height {h}: {name}'s certificate: {exc}") from None
                if ours:
                    in_block.update((t, h) for t in _block_tx_hashes(reference) if t in ours)

        # every transaction any node reported in a block is in the same block on every node
        self.report.committed = len(self.committed)
        hashes = sorted(self.committed)

        async def tx(name: str, tx_hash: str) -> dict[str, Any] | None:
            async with semaphore:
                try:
                    return await self.clients[name].call("tx_get", hash=tx_hash)
                except RpcError:
                    return None

        answers_of = dict(zip(names, await asyncio.gather(
            *(asyncio.gather(*(tx(name, t) for t in hashes)) for name in names)), strict=True))
        for name in names:
            for tx_hash, answer in zip(hashes, answers_of[name], strict=True):
                height, reporter = self.committed[tx_hash]
                if height < first[name]:
                    continue  # below the snapshot this node joined from: not in its history
                if answer is None or answer.get("height") != height:
                    raise CampaignFailure("safety", f"tx {tx_hash}: {reporter} reported it at height {height}, "
                                          f"{name} answers {answer}")
        # the submitted ones nobody saw committed: if any node has one at or below the checked top,
        # every node has it at that same height
        unknown = sorted(self.submitted - set(self.committed))
        seen: dict[str, dict[str, int | None]] = {t: {} for t in unknown}
        for name in names:
            answers = await asyncio.gather(*(tx(name, t) for t in unknown))
            for tx_hash, answer in zip(unknown, answers, strict=True):
                # in a block, or not: a node that admitted it may answer "replaced" (by the resubmission
                # with its nonce, at that one's height), one that never saw it "not found"; both are None
                seen[tx_hash][name] = answer.get("height") if answer and answer.get("status") in IN_A_BLOCK else None
        self.report.found_later = sum(1 for by_node in seen.values() if set(by_node.values()) != {None})
        for tx_hash, by_node in seen.items():
            found = {h for h in by_node.values() if h is not None}
            if len(found) > 1:
                raise CampaignFailure("safety", f"tx {tx_hash} is at heights {by_node} across nodes")
            if found and (height := found.pop()) <= top:
                # every node whose history holds that height has it there (one state-synced above it cannot)
                if any(by_node[n] is None for n in names if first[n] <= height):
                    raise CampaignFailure("safety", f"tx {tx_hash} is at heights {by_node} across nodes")

        # the open-loop load: in identical blocks everywhere (above); a seeded sample also through
        # every node's transaction index; its latency; and most of it committed
        if self.rate_load is not None:
            sample = sorted(in_block)
            sample = random.Random(self.config.seed).sample(sample, min(RATE_TX_GET_SAMPLE, len(sample)))
            for name in names:
                answers = await asyncio.gather(*(tx(name, t) for t in sample))
                for tx_hash, answer in zip(sample, answers, strict=True):
                    if in_block[tx_hash] < first[name]:
                        continue  # below the snapshot this node joined from
                    if answer is None or answer.get("height") != in_block[tx_hash]:
                        raise CampaignFailure("safety", f"tx {tx_hash} is in block {in_block[tx_hash]}, but "
                                              f"{name}'s tx_get answers {answer}")
            load = self.rate_load.report
            self.rate_load.measure(in_block, self.commit_times, self.windows)
            if load.committed < RATE_COMMITTED_MIN * load.sent:
                raise CampaignFailure("liveness", f"of {load.sent} transfers of the load, only {load.committed} "
                                      f"were committed (refused: {dict(load.refused)})")

        # no honest validator double-signed; in a Byzantine run, the liar was caught
        liar_key = None
        if self.config.byzantine:
            liar_key = bytes(load_key(net.directory / "keys" / f"{self.config.liar}.validator.json")
                             .verify_key).hex()
        evidence: list[dict[str, Any]] = []
        for name in names:
            for item in await self.clients[name].call("evidence_list"):
                evidence.append({**item, "reported_by": name})
                if item["validator"] != liar_key:
                    raise CampaignFailure("safety", f"{name} holds evidence against honest validator "
                                          f"{item['validator']}: {item}")
        self.report.evidence = evidence
        honest_kinds = {e["kind"] for e in evidence if e["reported_by"] in self.honest}
        for mode in set(net.byzantine_started):
            if EVIDENCE_KIND[mode] not in honest_kinds:
                raise CampaignFailure("safety", f"no honest validator holds {EVIDENCE_KIND[mode]} against the "
                                      f"liar of mode {mode} (evidence kinds held: {sorted(honest_kinds)})")

        # nobody halted or met a block it could not verify; the observer verified every certificate
        for name in names:
            text = net.log(name)
            for line in text.splitlines():
                if any(bad in line for bad in FORBIDDEN_LOG_LINES) and not _stale_sync_response(line):
                    raise CampaignFailure("safety", f"{name}'s log: {line}")
        for observer in net.observers:
            if not re.search(r"observer \S+ started", net.log(observer)):
                raise CampaignFailure("crash", f"{observer} never started")

    # --- helpers ------------------------------------------------------------------------------------

    async def _heights(self, names: list[str]) -> dict[str, int]:
        async def one(name: str) -> int:
            try:
                return (await asyncio.wait_for(self.clients[name].call("chain_status"), 5))["height"]
            except (RpcError, RpcTransportError, TimeoutError):
                return -1

        return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))

    async def _wait_heights(self, names: list[str], target: int, bound_s: float, what: str,
                            kind: str = "liveness") -> None:
        deadline = time.monotonic() + bound_s
        heights: dict[str, int] = {}
        while time.monotonic() < deadline:
            self._check_crashes()
            heights = await self._heights(names)
            if all(h >= target for h in heights.values()):
                return
            await asyncio.sleep(0.25)
        tails = "\n".join(f"--- {n}\n{self.net.log_tail(n, 15)}" for n in names if heights.get(n, -1) < target)
        raise CampaignFailure(kind, f"timed out after {bound_s:.0f}s waiting for {what}; heights {heights}\n{tails}")
