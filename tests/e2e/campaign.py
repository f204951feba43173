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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.certificate import CommitCertificate
from consensus.validators import Validator, ValidatorSet
from ledger.client import Action, Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.byzantine import ENVIRONMENT_VARIABLE as BYZANTINE_VARIABLE
from node.keys import load_key
from node.rpc.client import RpcClient, RpcError, RpcTransportError

from .conftest import SECLEDGER, ProcessNetwork

#: Environment variables of the campaign (read by the pytest entry, documented in docs/FAULTS.md).
SEED_VARIABLE = "SECLEDGER_CAMPAIGN_SEED"
SECONDS_VARIABLE = "SECLEDGER_CAMPAIGN_SECONDS"
SEEDS_VARIABLE = "SECLEDGER_CAMPAIGN_SEEDS"

#: Every up node must gain this many heights after a heal ...
PROGRESS_HEIGHTS: int = 2
#: ... within this bound (seconds), or the run is a liveness failure.
PROGRESS_BOUND_S: float = 30.0
#: A restarted node must fetch and verify at least this many blocks a second (on a loaded 2-core
#: machine a wiped validator resyncs at about 50).
RESYNC_BLOCKS_PER_S_MIN: float = 20.0
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
#: Log lines that must never appear in any node's log (a node halted or met an unverifiable block).
FORBIDDEN_LOG_LINES = ("HALTED", "cannot verify", "reports state root", "Traceback")

FAULT_KINDS: tuple[str, ...] = ("kill", "pause", "cut_pair", "isolate", "wipe", "observer_kill", "power")
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


@dataclass(slots=True)
class FaultRecord:
    at_s: float
    kind: str
    target: str
    hold_s: float
    progress_s: float | None = None  # time from heal to every up node gaining PROGRESS_HEIGHTS


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

    def summary(self) -> str:
        kinds = sorted({f.kind for f in self.faults})
        worst = max((f.progress_s or 0.0 for f in self.faults), default=0.0)
        return (f"seed {self.seed}: {len(self.faults)} faults ({', '.join(kinds)}), worst heal-to-progress "
                f"{worst:.1f}s, {self.committed}/{self.submitted} txs reported in a block (+{self.found_later} "
                f"found later; the rest superseded by a resubmission), height {self.height}, "
                f"{len(self.evidence)} evidence records; started {self.started_s:.1f}s, set up "
                f"{self.set_up_s:.1f}s, done {self.wall_s:.1f}s")


def replay_command(seed: int, duration_s: float, test: str = "tests/e2e/test_campaign.py") -> str:
    return (f"{SEED_VARIABLE}={seed} {SECONDS_VARIABLE}={duration_s:g} "
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
    """The transaction's receipt once it is in a block (committed or rejected), or None after `bound_ms`."""
    deadline = time.monotonic() + bound_ms / 1000
    while time.monotonic() < deadline:
        try:
            return await client.call("tx_wait", hash=tx_hash, timeout_ms=WAIT_SLICE_MS)
        except RpcError as error:
            if error.code != -32003:  # anything but a timeout
                raise
        answer = await client.call("tx_get", hash=tx_hash)
        if answer.get("status") in ("committed", "rejected"):
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
        """Delete the node's store (not its double-sign record: see docs/FAULTS.md)."""
        shutil.rmtree(self.directory / "data" / name / "store", ignore_errors=True)

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

    @property
    def honest(self) -> list[str]:
        return [v for v in self.net.validators if not (self.config.byzantine and v == self.config.liar)]

    async def run(self) -> CampaignReport:
        self._started = time.monotonic()
        net = self.net
        try:
            await net.start_proxies()
            net.start_all()
            self.clients = {n: RpcClient(net.url(n), timeout_ms=WAIT_SLICE_MS + 5_000) for n in net.nodes}
            await self._wait_heights(net.validators, 1, START_BOUND_S, "the network to start")
            self.report.started_s = time.monotonic() - self._started
            signers = await self._set_up()
            self.report.set_up_s = time.monotonic() - self._started
            load = [asyncio.create_task(self._client(i, signers[INVESTORS[i]], signers), name=f"load-{i}")
                    for i in range(CLIENTS)]
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
            return self.report
        finally:
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
        top = (await client.call("chain_status"))["height"]
        batches: list[list[bytes]] = [
            [member.propose([Action.grant_role("claim_issuer", kyc.address),
                             Action.grant_role("token_issuer", issuer.address)], expires_at_height=top + 1000)],
            [raw for name in INVESTORS for raw in (
                kyc.register_identity(name, [signers[name].address]),
                kyc.grant_claim(name, "kyc", FAR_FUTURE_S),
                kyc.grant_claim(name, "country", FAR_FUTURE_S, "US"))],
            [issuer.create_token(TOKEN, "Campaign shares", rules={"required_claims": ["kyc"]},
                                 agents={agent.address: ["supply"]})],
            [agent.issue(TOKEN, signers[name].address, ISSUED) for name in INVESTORS],
        ]
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
                    signer.nonce = answer["next_nonce"]
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
        if result.get("status") in ("committed", "rejected") and tx_hash not in self.committed:
            self.committed[tx_hash] = (result["height"], node)

    # --- faults -------------------------------------------------------------------------------------

    async def _faults(self) -> None:
        kinds = BYZANTINE_FAULT_KINDS if self.config.byzantine else FAULT_KINDS
        rng = self.schedule_rng
        round_: list[str] = []
        done = 0
        while time.monotonic() - self._started < self.config.duration_s or done < len(kinds):
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
        record = FaultRecord(round(time.monotonic() - self._started, 1), kind, victim, round(hold_s, 1))
        if kind == "kill":
            net.kill(victim)
            await asyncio.sleep(hold_s)
            net.start(victim)
        elif kind == "wipe":
            net.kill(victim)
            net.wipe_store(victim)
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
        restarted = victim if kind in ("kill", "wipe", "observer_kill") else None
        await self._require_progress(f"after healing {kind} of {record.target}", restarted)
        record.progress_s = round(time.monotonic() - healed, 1)

    def _any_client(self) -> RpcClient:
        return self.clients[next(n for n in self.net.validators if n in self.net.up_nodes())]

    async def _set_power(self, validator_key: bytes, power: int) -> None:
        """A membership change, as the consortium's single member decides it: in one block."""
        client = self._any_client()
        member = Signer(load_key(self.net.directory / "keys" / "admin.json"), CHAIN_ID)
        member.nonce = (await client.call("account_nonce", address=member.address.hex()))["next_nonce"]
        top = (await client.call("chain_status"))["height"]
        raw = member.propose([Action.set_validator_power(validator_key, power)], expires_at_height=top + 1000)
        tx_hash = (await client.call("tx_submit", tx=raw.hex()))["hash"]
        result = await _wait_in_block(client, tx_hash, 30_000)
        if result is None or result["status"] != "committed":
            raise CampaignFailure("liveness", f"the power change {tx_hash} was {result}")

    async def _require_progress(self, what: str, restarted: str | None) -> None:
        """Every up node reaches (the highest height now) + PROGRESS_HEIGHTS within the bound; a
        restarted node, which may have a whole chain to fetch, within the bound plus its backlog at
        RESYNC_BLOCKS_PER_S_MIN."""
        up = self.net.up_nodes()
        heights = await self._heights(up)
        target = max(heights.values()) + PROGRESS_HEIGHTS
        await self._wait_heights([n for n in up if n != restarted], target, PROGRESS_BOUND_S,
                                 f"progress to height {target} {what}", kind="liveness")
        if restarted is not None:
            backlog = target - max(heights[restarted], 0)
            await self._wait_heights([restarted], target, PROGRESS_BOUND_S + backlog / RESYNC_BLOCKS_PER_S_MIN,
                                     f"{restarted} to catch up {backlog} blocks to height {target} {what}",
                                     kind="liveness")

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
        # the set of each height, as the first node's chain says (the others hold the same blocks)
        sets: dict[int, ValidatorSet] = {}
        for h in range(1, top + 1):
            listed = await self.clients[names[0]].call("validators_list", height=h)
            sets[h] = ValidatorSet(Validator(bytes.fromhex(v["validator_key"]), v["power"]) for v in listed)

        # identical blocks, previous state roots and state roots at every height, certificates valid
        semaphore = asyncio.Semaphore(16)

        async def block(name: str, h: int) -> dict[str, Any]:
            async with semaphore:
                return await self.clients[name].call("block_get", height=h)

        every = await asyncio.gather(*(block(n, h) for h in range(1, top + 1) for n in names))
        for h in range(1, top + 1):
            blocks = dict(zip(names, every[(h - 1) * len(names): h * len(names)], strict=True))
            reference = blocks[names[0]]
            for name, b in blocks.items():
                for key in ("hash", "previous_state_root", "state_root", "previous_block_hash"):
                    if b[key] != reference[key]:
                        raise CampaignFailure("safety", f"height {h}: {name} has {key} {b[key]}, "
                                              f"{names[0]} has {reference[key]}")
                try:
                    CommitCertificate.decode(bytes.fromhex(b["certificate"]["encoded"])).verify(
                        CHAIN_ID, sets[h], height=h, block_id=bytes.fromhex(b["hash"]))
                except Exception as exc:
                    raise CampaignFailure("safety", f"height {h}: {name}'s certificate: {exc}") from None

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
                if answer is None or answer.get("height") != height:
                    raise CampaignFailure("safety", f"tx {tx_hash}: {reporter} reported it at height {height}, "
                                          f"{name} answers {answer}")
        # the submitted ones nobody saw committed: if any node has one at or below the checked top,
        # every node has it at that same height
        unknown = sorted(self.submitted - set(self.committed))
        seen: dict[str, set[int | None]] = {t: set() for t in unknown}
        for name in names:
            answers = await asyncio.gather(*(tx(name, t) for t in unknown))
            for tx_hash, answer in zip(unknown, answers, strict=True):
                seen[tx_hash].add(answer.get("height") if answer else None)
        self.report.found_later = sum(1 for heights in seen.values() if heights != {None})
        for tx_hash, heights in seen.items():
            if any(h is not None and h <= top for h in heights) and len(heights) > 1:
                raise CampaignFailure("safety", f"tx {tx_hash} is at heights {heights} across nodes")

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
