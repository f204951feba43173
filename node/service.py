"""A secledger node: the ledger, consensus, mempool, peer links, block sync and JSON-RPC, wired
together on one asyncio loop.

Start-up is a stack (ledger, mempool, peers, consensus or observer, RPC) and shutdown runs it in
reverse: stop accepting RPC, stop consensus and sync, close peer links, close the store. Every
commit goes through `_on_commit`, which updates the mempool, wakes `tx_wait` callers, publishes to
subscribers, tells peers our new height, and wakes the projector.

The projector (`ledger.projections`) brings the read side (tx index, event indexes, wallet history)
up to the tip every few blocks (`PROJECTION_EVERY_BLOCKS`, or `PROJECTION_IDLE_S` after an
unprojected commit), in a task of its own on the same loop, one bounded slice at a time with a
turn of the loop between slices. Each slice, like each block's apply, is one LMDB write
transaction begun and committed within one synchronous call: no write transaction is ever open
across an `await`, so the two never hold LMDB's single writer at once (docs/NODE.md, "The read side").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from consensus.certificate import CommitCertificate
from consensus.core import TendermintCore
from consensus.signing import Signer as ConsensusSigner
from consensus.timeouts import TimeoutConfig
from ledger import Block, BlockResult, Ledger, Transaction, decode_transaction, queries
from ledger.store import event_key

from . import fault_points
from .console import mount as mount_console
from .mempool.gossip_ingest import GossipIngest
from .mempool.pool import Mempool, MempoolRefusal
from .mempool.seen_txs import SeenTransactions
from .ops import Operations
from .ops.loop_stalls import LoopStallMonitor
from .p2p import PeerAddress, PeerConfig, PeerManager, wire
from .rpc import RpcServer
from .rpc.api import build_registry, event_matches, jsonable
from .setup.config import NodeConfig, parse_address
from .setup.genesis_file import load_genesis
from .setup.keys import KeyFileError, load_key
from .sync.blocksync import BlockSync
from .sync.statesync.fetch import StateSyncer
from .sync.statesync.serve import SnapshotServer
from .sync.statesync.verify import TrustRoot
from .validator.byzantine import Byzantine, mode_from_environment
from .validator.consensus_wal import ConsensusWal
from .validator.driver import BlockLimits, ConsensusDriver, ConsensusParams
from .validator.evidence_pool import EvidencePool
from .validator.sign_guard import SignStateFile
from .validator.validator_sets import ValidatorSets

log = logging.getLogger("secledger.node")

#: How often a node tells its peers its height, and re-sends its own votes of a stuck height.
STATUS_INTERVAL_S: float = 1.0
#: How often admitted transactions are gossiped to peers, in one batch.
GOSSIP_INTERVAL_S: float = 0.02
#: Most time a proposer spends admitting queued gossip before it reaps its block (see GossipIngest.drain).
PROPOSE_DRAIN_S: float = 0.025
#: Most time a round-0 proposer waits for every validator peer to report the last commit, so
#: that their clients' transactions (gossiped before that report) are in its block.
PROPOSE_WAIT_MS: int = 40
#: RPC calls may take this long (tx_wait waits up to a minute).
RPC_CALL_TIMEOUT_MS: int = 70_000
#: Most blocks the read side may trail the tip by after a commit. Queries read what the projector
#: has not reached from the write side, at a cost that grows with the gap; past this many blocks
#: the commit projects at once, without yielding (block sync applying blocks back to back).
PROJECTION_LAG_BLOCKS_MAX: int = 8
#: The projector runs once the read side trails by this many blocks, or PROJECTION_IDLE_S after the
#: last commit it has not projected: it then stays out of the milliseconds right after most commits,
#: when the next height's proposal and votes arrive (docs/BENCHMARKS.md, Pass 8: the same CPU, a
#: lower p99 at half load). Queries answer the same at any position of the projector.
PROJECTION_EVERY_BLOCKS: int = 4
PROJECTION_IDLE_S: float = 0.5
#: A node at least this many heights behind its peers ignores gossiped transactions until block
#: sync brings it closer: against a state that old they would only be refused (nonce gaps), after
#: their signature checks took the CPU the catch-up needs. Their origins keep and propose them.
#: (CometBFT's mempool likewise ignores transactions while its node block-syncs.) "Its peers": the
#: second highest height they announce, so one peer announcing a false height cannot silence gossip.
GOSSIP_IGNORED_BEHIND_HEIGHTS: int = 4
#: A full gossip backlog is reported at most this often, with the count since the last report.
GOSSIP_DROP_LOG_INTERVAL_S: float = 10.0


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis = load_genesis(config.node.genesis_file)
        self.chain_id = self.genesis.chain_id
        self.observer = config.node.mode == "observer"
        self.node_key = load_key(config.node.node_key_file)
        self.validator_key = None if self.observer else load_key(config.node.validator_key_file)
        self._next_validator_key: SigningKey | None = None  # loaded once its file exists
        self._params: tuple[dict[str, int], ConsensusParams] | None = None  # (voted, derived)
        self.observer_keys = frozenset(o.node_key for o in self.genesis.observers) | frozenset(
            bytes.fromhex(k) for k in config.p2p.allowed_keys)
        home = Path(config.node.home)
        home.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger.open(str(home / "store"), self.genesis)
        self.validator_sets = ValidatorSets(self.ledger)
        if self.validator_key is not None:
            # After a rotation took effect, a restarted node signs with the key the chain holds.
            upcoming = self.validator_sets.at(self.ledger.tip.height + 1)
            self.validator_key = next((k for k in self.signing_keys() if bytes(k.verify_key) in upcoming),
                                      self.validator_key)
        self.mempool = Mempool(self.ledger, txs_max=config.mempool.txs_max, bytes_max=config.mempool.bytes_max)
        self.evidence = EvidencePool(home / "evidence.log")
        self.halted: str | None = None
        self._gossip: list[bytes] = []
        self._ingest = GossipIngest(self._admit_gossiped, self._wake_driver)
        #: Gossiped transactions not admitted, by why (metrics): "behind" (see GOSSIP_IGNORED_BEHIND_HEIGHTS),
        #: "backlog_full" (GossipIngest's queue was full). They only go up.
        self.gossip_ignored: dict[str, int] = {"behind": 0, "backlog_full": 0}
        self._gossip_drops_reported = (0, -math.inf)  # (count, time.monotonic()) of the last report
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self.seen = SeenTransactions()  # admitted transactions, to tell a client its tx was replaced
        self._tasks: list[asyncio.Task[None]] = []
        self._last_status_height = -1
        block_bytes_max = config.consensus.block_bytes_max
        message_bytes_max = max(config.p2p.frame_bytes_max, block_bytes_max + (1 << 20))
        self._admitted = self._admitted_keys()
        self.peers = PeerManager(
            self.node_key,
            allowed_keys=self._admitted,
            on_message=self._on_peer_message,
            persistent_peers=[PeerAddress(bytes.fromhex(p.node_key), p.address.host, p.address.port)
                              for p in config.p2p.peers],
            on_peer_up=self._on_peer_up,
            on_peer_down=self._on_peer_down,
            config=PeerConfig(message_bytes_max=message_bytes_max,
                              send_queue_bytes_max=max(32 << 20, 2 * message_bytes_max),
                              dial_backoff_max_ms=config.p2p.dial_backoff_max_ms),
            network_id=self.genesis.hash,  # a key reused on another chain fails at the handshake
        )
        self.sync = BlockSync(ledger=self.ledger, validators_at=self.validator_sets.at, send=self.peers.send,
                              apply=self._apply_synced, on_caught_up=self._on_caught_up,
                              response_bytes_max=message_bytes_max - (64 << 10))
        self.driver: ConsensusDriver | None = None
        self._home = home
        # State sync (node/sync/statesync/): snapshots taken and served; and, for an empty store with
        # [statesync] enabled, joining from one. Until it installs, consensus and block sync wait.
        self.snapshots = SnapshotServer(self.ledger, home / "snapshots", interval=config.statesync.snapshot_interval,
                                        kept=config.statesync.snapshots_kept)
        self.statesync: StateSyncer | None = None
        if config.statesync.enabled and self.ledger.tip.height == 0:
            trust = config.statesync.trust_height
            self.statesync = StateSyncer(ledger=self.ledger, send=self.peers.send,
                                         on_installed=self._on_snapshot_installed,
                                         trust=TrustRoot(trust, bytes.fromhex(config.statesync.trust_hash))
                                         if trust else None)
        if not self.observer and self.statesync is None:
            self.driver = self._build_driver(home)
            mode = mode_from_environment()
            if mode is not None:
                assert self.validator_key is not None
                self.driver.byzantine = Byzantine(mode, self.validator_key, self.chain_id, self.ledger,
                                                  self._broadcast_to_validators)
        self.rpc = RpcServer(build_registry(self), host=config.rpc.listen.host, port=config.rpc.listen.port,
                             request_bytes_max=config.rpc.request_bytes_max,
                             batch_length_max=config.rpc.batch_length_max, read_only=self.observer,
                             call_timeout_ms=RPC_CALL_TIMEOUT_MS)
        if config.rpc.console:
            mount_console(self.rpc)  # the regulator's read-only web console at /console/ (docs/CONSOLE.md)
        self._projection_wanted = asyncio.Event()
        self.ledger.fault = fault_points.ledger_hook()  # None unless a test arms SECLEDGER_TEST_FAULT
        self.ops = Operations(self)  # metrics, /health and /ready, the periodic summary (node/ops/)
        self.loop_stalls = LoopStallMonitor()  # the event loop's stalls, for the metrics (node/ops/loop_stalls.py)

    def _build_driver(self, home: Path) -> ConsensusDriver:
        assert self.validator_key is not None
        sign_state_file = SignStateFile(home / "sign_state.bin")
        signer = ConsensusSigner(self.validator_key, self.chain_id, sign_state_file.load())
        params = self.consensus_params()
        height = self.ledger.tip.height + 1
        core = TendermintCore(self.chain_id, self.validator_sets.at(height), signer, height, params.timeouts)
        return ConsensusDriver(
            core=core, ledger=self.ledger, mempool=self.mempool, validators_at=self.validator_sets.at,
            proposer_key=bytes(self.validator_key.verify_key), sign_state_file=sign_state_file,
            evidence=self.evidence, broadcast=self._broadcast_to_validators, on_commit=self._on_commit,
            on_halt=self.halt, request_missing_block=lambda _height: self.sync.kick(),
            limits=params.limits, timeout_commit_ms=params.commit_ms,
            empty_block_interval_ms=self.config.consensus.empty_block_interval_ms, wal=ConsensusWal(home / "consensus_wal"),
            before_propose=lambda: self._ingest.drain(PROPOSE_DRAIN_S),
            peers_committed=self._peers_committed, propose_wait_ms=PROPOSE_WAIT_MS,
            signing_keys=self.signing_keys, consensus_params=self.consensus_params)

    def consensus_params(self) -> ConsensusParams:
        """This height's block limits and timeouts: the chain's block limits (a node proposes no
        more than its config allows either), and the chain's timeouts where the members voted one,
        else this node's config (docs/GOVERNANCE.md, section 7)."""
        voted = queries.voted_params(self.ledger)
        if self._params is not None and self._params[0] == voted:
            return self._params[1]
        chain = queries.chain_params(self.ledger)
        c = self.config.consensus
        propose, prevote, precommit, commit = (
            voted.get(f"timeout_{name}_ms", getattr(c, f"timeout_{name}_ms"))
            for name in ("propose", "prevote", "precommit", "commit"))
        params = ConsensusParams(
            limits=BlockLimits(min(c.block_txs_max, chain["block_txs_max"]),
                               min(c.block_bytes_max, chain["block_bytes_max"])),
            timeouts=TimeoutConfig(propose_ms=propose, propose_delta_ms=c.timeout_propose_delta_ms,
                                   prevote_ms=prevote, prevote_delta_ms=c.timeout_prevote_delta_ms,
                                   precommit_ms=precommit, precommit_delta_ms=c.timeout_precommit_delta_ms,
                                   cap_ms=max(c.timeout_round_max_ms, propose, prevote, precommit)),
            commit_ms=commit)
        self._params = (voted, params)
        return params

    def signing_keys(self) -> list[SigningKey]:
        """The consensus keys this validator holds: its key and, once its file exists, the key the
        chain may rotate it to (node.next_validator_key_file)."""
        keys = [] if self.validator_key is None else [self.validator_key]
        path = self.config.node.next_validator_key_file
        if self._next_validator_key is None and path is not None and path.is_file():
            try:
                self._next_validator_key = load_key(path)
            except KeyFileError as exc:
                log.error("node.next_validator_key_file: %s", exc)
        if self._next_validator_key is not None and self._next_validator_key not in keys:
            keys.append(self._next_validator_key)
        return keys

    def _admitted_keys(self) -> frozenset[bytes]:
        """Who may hold a peer link: the validators of the next two heights, as this node's chain
        says (a validator added by governance is let in as soon as its change is decided, so it can
        sync before its first height; a removed one is cut once it is in neither set), and the
        non-voting peers the genesis and the config name (observers, followers). Notes the
        validators' keys in `validator_peers` too: consensus goes to and comes from them alone."""
        tip = self.ledger.tip.height
        self.validator_peers = self.validator_sets.node_keys_at(tip + 1) | self.validator_sets.node_keys_at(tip + 2)
        return self.validator_peers | self.observer_keys

    def _follow_validator_set(self) -> None:
        """After a commit: admit and dial the validators the chain added, cut those it removed."""
        admitted = self._admitted_keys()
        if admitted == self._admitted:
            return
        self._admitted = admitted
        self.peers.set_allowed_keys(admitted)
        for entry in queries.validators_at(self.ledger, self.ledger.tip.height + 2):
            address = parse_address(entry["address"]) if entry["address"] else None
            if address is not None and entry["node_key"] != self.peers.node_key:
                self.peers.add_persistent_peer(PeerAddress(entry["node_key"], address.host, address.port))

    # --- start / stop ----------------------------------------------------------------------------------

    async def start(self) -> None:
        # The consensus core starts before any peer can reach it: a peer that dials in first would
        # otherwise hand it votes it cannot take yet. What it signs meanwhile waits in its own
        # messages, which go to each peer as it comes up (`_on_peer_up`).
        if self.driver is not None:
            self.driver.start()
        await self.peers.start()
        await self.peers.listen(self.config.p2p.listen.host, self.config.p2p.listen.port)
        await self.rpc.start()
        await self.ops.start()
        self.loop_stalls.start()
        if self.statesync is not None:
            self.statesync.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._status_loop(), name="status"),
                       loop.create_task(self._gossip_loop(), name="gossip"),
                       loop.create_task(self._ingest.run(), name="ingest"),
                       loop.create_task(self._projection_loop(), name="projection")]
        self._projection_wanted.set()  # after a crash between a commit and its projection: resume
        log.info("%s %s started at height %d: p2p %s:%d, rpc %s", self.config.node.mode,
                 self.config.node.moniker, self.ledger.tip.height, self.config.p2p.listen.host,
                 self.peers.listen_port, self.rpc.url)

    async def stop(self) -> None:
        self.loop_stalls.stop()
        await self.ops.stop()
        await self.rpc.stop()
        if self.driver is not None:
            self.driver.stop()
        self.sync.stop()
        if self.statesync is not None:
            self.statesync.stop()
        await self.snapshots.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.peers.stop()
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self.mempool.close()
        self.ledger.close()
        log.info("%s stopped at height %d", self.config.node.moniker, self.ledger.tip.height)

    def halt(self, reason: str) -> None:
        """Stop taking part: this node's state cannot be trusted to match the chain. Reads go on."""
        if self.halted is None:
            self.halted = reason
            log.critical("HALTED: %s", reason)
            if self.driver is not None:
                self.driver.stop()
            self.sync.stop()

    # --- for the RPC --------------------------------------------------------------------------------

    async def submit(self, raw: bytes) -> Transaction:
        """Admit a client's transaction: decode, signature, nonce, and the rules' dry run on the
        pending state, all at once (so concurrent requests are admitted in arrival order)."""
        tx = self.mempool.add(raw)
        self.seen.note(tx.hash, tx.signer, tx.nonce)
        self._gossip.append(raw)
        if self.driver is not None:
            self.driver.wake()
        return tx

    def _admit_gossiped(self, raw: bytes) -> None:
        if self.halted is None:
            with contextlib.suppress(MempoolRefusal):
                tx = self.mempool.add(raw, check_rules=False)
                self.seen.note(tx.hash, tx.signer, tx.nonce)

    def _wake_driver(self) -> None:
        if self.driver is not None:
            self.driver.wake()

    def watch_tx(self, tx_hash: bytes) -> asyncio.Future[None]:
        """A future resolved when `tx_hash` commits or is replaced (another transaction of its
        signer and nonce commits). Register it *before* looking in the ledger, so a commit between
        the look and the wait cannot be missed; `unwatch_tx` when done."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        return future

    def unwatch_tx(self, tx_hash: bytes, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(tx_hash, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._waiters.pop(tx_hash, None)

    def next_nonce(self, address: bytes) -> int:
        return self.mempool.pending_nonce(address)

    def replaced(self, tx_hash: bytes) -> dict[str, Any] | None:
        """How `tx_hash`, admitted here, was replaced: None if it was not (or is forgotten)."""
        replacement = self.seen.replaced(tx_hash)
        if replacement is None:
            return None
        return {"hash": replacement.tx_hash, "status": "replaced", "replaced_by": replacement.replaced_by,
                "height": replacement.height, "signer": replacement.signer, "nonce": replacement.nonce}

    def status(self) -> dict[str, Any]:
        core = self.driver.core if self.driver is not None else None
        return {**queries.chain_status(self.ledger), "moniker": self.config.node.moniker,
                "mode": self.config.node.mode, "halted": self.halted, "syncing": self.sync.syncing,
                "consensus": None if core is None else {"height": core.height, "round": core.round,
                                                        "step": core.step.name.lower()},
                "peers": sorted(k.hex() for k in self.peers.connected_peers()),
                "mempool": {"txs": len(self.mempool), "bytes": self.mempool.size_bytes},
                "peer_heights": {k.hex(): h for k, h in sorted(self.sync.peer_heights.items())}}

    def describe_block(self, height: int) -> dict[str, Any]:
        """The block at `height`: header, every transaction decoded with its receipt (and, under
        `txs_raw`, as the signed bytes), and its commit certificate."""
        raw, cert_raw = queries.block(self.ledger, height)
        block = Block.decode(raw)
        cert = CommitCertificate.decode(cert_raw)
        h = block.header
        return {"height": h.height, "hash": block.hash, "chain_id": h.chain_id, "time_ms": h.time_ms,
                "previous_block_hash": h.previous_block_hash, "previous_state_root": h.previous_state_root,
                "txs_hash": h.txs_hash, "proposer": h.proposer, "validators_hash": h.validators_hash,
                "next_validators_hash": h.next_validators_hash,
                "txs": [self._describe_tx(index, tx_raw) for index, tx_raw in enumerate(block.txs)],
                "txs_raw": list(block.txs),
                "state_root": queries.state_root_at(self.ledger, height),
                "certificate": {"height": cert.height, "round": cert.round, "block_id": cert.block_id,
                                "precommits": [{"validator": k, "signature": s} for k, s in cert.precommits],
                                "encoded": cert_raw}}

    def _describe_tx(self, index: int, raw: bytes) -> dict[str, Any]:
        # A committed block's transactions were checked when it was applied: no signature check.
        tx = decode_transaction(raw, chain_id=self.chain_id, verify_signature=False)
        receipt = queries.transaction(self.ledger, tx.hash)
        return {"index": index, "hash": tx.hash, "kind": tx.kind, "signer": tx.signer, "nonce": tx.nonce,
                "body": tx.body, "receipt": {"status": receipt["status"], "code": f"0x{receipt['code']:02x}",
                                             "reason": receipt["reason"]}}

    # --- commits ----------------------------------------------------------------------------------

    def _on_commit(self, result: BlockResult, block: Block) -> None:
        rejected = sum(1 for r in result.receipts if not r.outcome.ok)
        self.ops.on_commit(result, block)
        # An empty block at DEBUG: an idle chain commits one a second, and node/ops/summary.py
        # logs a summary a minute instead.
        log.log(logging.INFO if result.receipts else logging.DEBUG, "committed height %d: %d txs (%d rejected), "
                "state root %s", result.height, len(result.receipts), rejected, result.state_root.hex()[:16])
        for receipt in result.receipts:
            for waiter in self._waiters.pop(receipt.tx_hash, []):
                if not waiter.done():
                    waiter.set_result(None)
        for tx_hash in self.seen.on_commit(result.height, result.receipts):
            for waiter in self._waiters.pop(tx_hash, []):  # tx_wait answers "replaced" at once
                if not waiter.done():
                    waiter.set_result(None)
        self.rpc.publish("blocks", jsonable({
            "height": result.height, "hash": result.block_hash, "state_root": result.state_root,
            "time_ms": block.header.time_ms, "txs": len(result.receipts)}))
        if self.rpc.subscription_count("events"):
            for index, receipt in enumerate(result.receipts):
                for event_index, event in enumerate(receipt.events):
                    payload = jsonable({"kind": event.kind, "token": event.token, "addresses": event.addresses,
                                        "data": event.data, "tx": receipt.tx_hash, "height": result.height,
                                        "tx_index": index, "event_index": event_index,
                                        "cursor": event_key(result.height, index, event_index)})
                    self.rpc.publish("events", payload, event_matches)
        self._follow_validator_set()
        self.snapshots.on_commit(result.height)
        # Gossip first: a peer that hears of this commit then holds every transaction our clients
        # gave us before it (the proposer of the next height waits for that; see the driver).
        self._send_gossip()
        self._send_status()
        # Last: clients and peers hear of the commit first; rebuilding the pending state can wait.
        self.mempool.update(r.tx_hash for r in result.receipts)
        lag = self.ledger.tip.height - self.ledger.projected_height
        if lag >= PROJECTION_EVERY_BLOCKS:
            self._projection_wanted.set()
        if lag > PROJECTION_LAG_BLOCKS_MAX:
            self._project_now()

    def _project_now(self) -> None:
        """The projector task has fallen behind (blocks applied back to back): catch up to the
        bound before going on."""
        try:
            while self.ledger.tip.height - self.ledger.projected_height > PROJECTION_LAG_BLOCKS_MAX:
                self.ledger.project()
        except Exception:
            log.exception("projection failed at height %d", self.ledger.projected_height + 1)

    async def _projection_loop(self) -> None:
        """Project the read side up to the tip when woken (`PROJECTION_EVERY_BLOCKS`) or idle: one
        slice (one write transaction, `ledger.projections.SLICE_ITEMS_MAX` receipts and events at
        most) per turn of the loop, so a vote or a proposal waits for one slice at most. A failing
        slice (the disk, LMDB's map) is retried on the next wake-up, and logged once per height."""
        failed_at = -1
        while True:
            # Idle: project the last few blocks too. (`asyncio.timeout`, not `wait_for`: on 3.11 a
            # cancel that lands as the timeout fires comes out of `wait_for` as a TimeoutError, and
            # the loop would outlive `stop()`.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROJECTION_IDLE_S):
                    await self._projection_wanted.wait()
            self._projection_wanted.clear()
            try:
                while self.ledger.project():
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception:  # queries still answer from the write side meanwhile
                height = self.ledger.projected_height + 1
                if height != failed_at:  # the idle timer retries twice a second: one traceback per height
                    log.exception("projection failed at height %d; retrying every %.1f s", height, PROJECTION_IDLE_S)
                    failed_at = height

    def _apply_synced(self, block: Block, certificate: bytes) -> BlockResult | None:
        if self.driver is not None:
            return self.driver.commit(block, certificate)
        started = time.perf_counter()
        try:
            result = self.ledger.apply_block(block, certificate)
        except Exception as exc:
            self.halt(f"cannot apply certified block {block.height}: {type(exc).__name__}: {exc}")
            return None
        self.ops.observe_stage("apply", time.perf_counter() - started)
        self._on_commit(result, block)
        self.ops.observe_stage("commit", time.perf_counter() - started)
        return result

    def _on_snapshot_installed(self, statuses: dict[bytes, wire.Status]) -> None:
        """State sync installed a snapshot at h: admit the validators of h + 1 and h + 2, start
        consensus there (a validator), and let block sync fetch h + 1 onwards."""
        self._follow_validator_set()
        self.mempool.update(())
        if not self.observer and self.halted is None:
            self.driver = self._build_driver(self._home)
            self.driver.start()
        for peer, status in statuses.items():
            self.sync.on_status(peer, status)

    def _on_caught_up(self) -> None:
        if self.driver is not None:
            self.driver.catch_up()

    # --- peers ------------------------------------------------------------------------------------------

    def _broadcast_to_validators(self, message: bytes) -> None:
        self.peers.broadcast(message, only=self.validator_peers)

    def _send_status(self, peer: bytes | None = None) -> None:
        tip = self.ledger.tip
        message = wire.encode(wire.Status(tip.height, tip.block_hash, tip.state_root))
        if peer is None:
            self.peers.broadcast(message)
        else:
            self.peers.send(peer, message)

    def _on_peer_up(self, peer: bytes) -> None:
        self._send_status(peer)
        if self.driver is not None and peer in self.validator_peers:
            for message in self.driver.gossip_messages():
                self.peers.send(peer, message)

    def _on_peer_down(self, peer: bytes) -> None:
        self.sync.on_peer_down(peer)
        if self.statesync is not None:
            self.statesync.on_peer_down(peer)

    async def _on_peer_message(self, peer: bytes, data: bytes) -> None:
        try:
            message = wire.decode(data, bytes_max=self.peers.config.message_bytes_max)
        except wire.WireError as exc:
            log.warning("peer %s sent a malformed message: %s", peer.hex()[:12], exc)
            return
        match message:
            case wire.Status() if self.statesync is not None and self.statesync.active:
                self.statesync.on_status(peer, message)
            case wire.Status():
                self.sync.on_status(peer, message)
                if self.driver is not None:
                    self.driver.on_peer_committed()
            case wire.Txs(txs):
                if self.driver is not None and self.halted is None:
                    if self.behind_peers():
                        self.gossip_ignored["behind"] += len(txs)
                    elif not self._ingest.offer(txs):
                        # The origin keeps them and proposes them in its turn: nothing is lost.
                        self.gossip_ignored["backlog_full"] += len(txs)
                        self._report_gossip_drops(peer)
            case wire.ConsensusMessage(data):
                if self.driver is not None and peer in self.validator_peers:
                    self.driver.on_consensus_message(data)
            case wire.ProposalBlock(data):
                if self.driver is not None and peer in self.validator_peers:
                    self.driver.on_proposal_block(data)
            case wire.GetBlocks():
                self.peers.send(peer, wire.encode(self.sync.serve(message)))
            case wire.Blocks() | wire.Snapshots() | wire.SnapshotChunk() | wire.Headers() | wire.Validators() if (
                    self.statesync is not None and self.statesync.active):
                self.statesync.on_answer(peer, message)
            case wire.Blocks():
                self.sync.on_blocks(peer, message)
            case wire.GetSnapshots():
                self.peers.send(peer, wire.encode(self.snapshots.snapshots()))
            case wire.GetSnapshotChunk():
                self.peers.send(peer, wire.encode(self.snapshots.chunk(message)))
            case wire.GetHeaders():  # a joining node's trust chain (node/sync/statesync/verify.py)
                self.peers.send(peer, wire.encode(self.snapshots.headers(message)))
            case wire.GetValidators():
                self.peers.send(peer, wire.encode(self.snapshots.validators(message)))

    def behind_peers(self) -> bool:
        """At least GOSSIP_IGNORED_BEHIND_HEIGHTS behind its peers (catching up): behind the second
        highest height they announce (the only one's, with a single peer)."""
        heights = sorted(self.sync.peer_heights.values(), reverse=True)
        if not heights:
            return False
        reached = heights[1] if len(heights) > 1 else heights[0]
        return reached - self.ledger.tip.height >= GOSSIP_IGNORED_BEHIND_HEIGHTS

    def _report_gossip_drops(self, peer: bytes) -> None:
        # One line per interval, not one per batch: under load a full backlog drops dozens a second.
        count, when = self._gossip_drops_reported
        now = time.monotonic()
        if now - when >= GOSSIP_DROP_LOG_INTERVAL_S:
            dropped = self.gossip_ignored["backlog_full"]
            log.warning("gossip backlog full: dropped %d transactions since the last report (the latest from %s); "
                        "their origins keep them", dropped - count, peer.hex()[:12])
            self._gossip_drops_reported = (dropped, now)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self._send_status()
            height = self.ledger.tip.height
            if self.driver is not None and height == self._last_status_height:
                # The height is stuck: re-send what we hold for this round in case a cut link,
                # or a peer's restart, lost it (the core itself never retransmits).
                for message in self.driver.gossip_messages():
                    self._broadcast_to_validators(message)
            self._last_status_height = height

    async def _gossip_loop(self) -> None:
        while True:
            await asyncio.sleep(GOSSIP_INTERVAL_S)
            self._send_gossip()

    def _send_gossip(self) -> None:
        """Queue, in batches, what this node's clients gave it since the last time, to every
        validator peer (every GOSSIP_INTERVAL_S, and before each commit's status)."""
        pending, self._gossip = self._gossip, []
        for start in range(0, len(pending), wire.TX_BATCH_MAX):
            self._broadcast_to_validators(wire.encode(wire.Txs(tuple(pending[start:start + wire.TX_BATCH_MAX]))))

    def _peers_committed(self, height: int) -> bool:
        """Every connected validator peer has reported a commit at `height` or above."""
        heights = self.sync.peer_heights
        return all(heights.get(peer, 0) >= height
                   for peer in self.peers.connected_peers() if peer in self.validator_peers)
