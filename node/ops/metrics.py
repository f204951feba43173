"""The node's Prometheus metrics: one `CollectorRegistry` per node (tests run several in one process).

Two kinds of figures:
- events, recorded as they happen through narrow hooks: each commit (`on_commit`), each timed step
  of the consensus driver (`observe_stage`: validate, apply, commit, the double-sign guard's save),
  each RPC request answered (`count_rpc`);
- state, read when Prometheus scrapes (`_NodeCollector`): heights, round and step, the mempool and
  its counters, peers by kind, voting power reached, sync lag, halted, readiness, WebSockets, the
  peer manager's counters, the event loop's lag. Reading at scrape time costs the node nothing
  between scrapes, and everything runs on the node's event loop, so no figure is read half-written.

Names follow Prometheus' guide: prefix `secledger_`, base units in the name (`_seconds`,
`_bytes`), counters end in `_total`, and labels only of low cardinality (a method name, a reason,
a kind of peer; never an address, a key or a hash). docs/OPERATIONS.md lists every metric.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger import Block, BlockResult

from . import readiness

if TYPE_CHECKING:
    from node.service import Node

    from .health import LoopMonitor
    from .loop_stalls import LoopStallMonitor

PREFIX: Final[str] = "secledger_"
#: Buckets (seconds) of the validate, apply and commit durations.
STEP_BUCKETS_S: Final[tuple[float, ...]] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                                            5.0, 10.0)
#: Buckets (seconds) of the double-sign guard's save: one fdatasync, 0.09 ms idle, ~6 ms under load.
SAVE_BUCKETS_S: Final[tuple[float, ...]] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1, 0.25, 1.0)
#: Buckets (seconds) of the time between two blocks, by their header times.
INTERVAL_BUCKETS_S: Final[tuple[float, ...]] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: Buckets of transactions per block (block_txs_max defaults to 5,000).
TXS_BUCKETS: Final[tuple[float, ...]] = (0, 1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000)
#: Buckets (bytes) of transaction bytes per block (block_bytes_max defaults to 4 MiB).
BYTES_BUCKETS: Final[tuple[float, ...]] = (0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
#: The stages the consensus driver times (`ConsensusDriver.on_timing`).
STAGES: Final[tuple[str, ...]] = ("validate", "apply", "commit", "sign_state_save")
#: Consensus steps, as the `step` label of secledger_consensus_step.
STEPS: Final[tuple[str, ...]] = ("propose", "prevote", "precommit", "commit")
#: `method` label of requests that were not valid JSON-RPC, and of methods the node does not have
#: (a client's typo must not create a time series).
INVALID_METHOD: Final[str] = "invalid"
UNKNOWN_METHOD: Final[str] = "unknown"


class NodeMetrics:
    """The metrics of one node; `registry` is what its /metrics endpoint serves."""

    def __init__(self, node: Node, monitor: LoopMonitor) -> None:
        self.node = node
        self.registry = CollectorRegistry()
        registry = self.registry
        self.block_interval = Histogram(
            f"{PREFIX}block_interval_seconds", "Time between consecutive committed blocks, by their header times.",
            buckets=INTERVAL_BUCKETS_S, registry=registry)
        self.block_transactions = Histogram(
            f"{PREFIX}block_transactions", "Transactions in each committed block.",
            buckets=TXS_BUCKETS, registry=registry)
        self.block_size = Histogram(
            f"{PREFIX}block_size_bytes", "Bytes of transactions in each committed block.",
            buckets=BYTES_BUCKETS, registry=registry)
        self.transactions = Counter(
            f"{PREFIX}transactions_committed_total",
            "Transactions in committed blocks, by outcome (rejected: recorded with a rule's reason code).",
            ["outcome"], registry=registry)
        self.stages = {
            "validate": Histogram(f"{PREFIX}block_validate_duration_seconds",
                                  "Time to judge a proposed block (signatures, nonces, header).",
                                  buckets=STEP_BUCKETS_S, registry=registry),
            "apply": Histogram(f"{PREFIX}block_apply_duration_seconds",
                               "Time to execute and store a decided block in one LMDB write transaction.",
                               buckets=STEP_BUCKETS_S, registry=registry),
            "commit": Histogram(f"{PREFIX}block_commit_duration_seconds",
                                "Time from applying a decided block to the end of the node's bookkeeping "
                                "(notifications, peers told, mempool updated).",
                                buckets=STEP_BUCKETS_S, registry=registry),
            "sign_state_save": Histogram(f"{PREFIX}sign_state_save_duration_seconds",
                                         "Time to save the double-sign guard's record (fdatasync) before a "
                                         "vote or proposal leaves.", buckets=SAVE_BUCKETS_S, registry=registry),
        }
        self.rpc_requests = Counter(
            f"{PREFIX}rpc_requests_total",
            "JSON-RPC requests answered, by method and code (0 for a result, else the JSON-RPC error code).",
            ["method", "code"], registry=registry)
        registry.register(_NodeCollector(node, monitor, self))
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        for shared in (PLATFORM_COLLECTOR, GC_COLLECTOR):  # python_info, python_gc_*: stateless, safe to share
            registry.register(shared)
        self.last_block_time_ms = node.ledger.tip.time_ms
        self.last_commit_unix_s: float | None = None

    # --- hooks ---------------------------------------------------------------------------------

    def on_commit(self, result: BlockResult, block: Block) -> None:
        time_ms = block.header.time_ms
        if result.height > 1:  # block 1 follows the genesis time, which may be long before
            self.block_interval.observe(max(0, time_ms - self.last_block_time_ms) / 1000)
        self.last_block_time_ms = time_ms
        self.last_commit_unix_s = time.time()
        self.block_transactions.observe(len(block.txs))
        self.block_size.observe(sum(len(tx) for tx in block.txs))
        rejected = sum(1 for receipt in result.receipts if not receipt.outcome.ok)
        if rejected:
            self.transactions.labels("rejected").inc(rejected)
        if len(result.receipts) > rejected:
            self.transactions.labels("accepted").inc(len(result.receipts) - rejected)

    def observe_stage(self, stage: str, seconds: float) -> None:
        histogram = self.stages.get(stage)
        if histogram is not None:
            histogram.observe(seconds)

    def count_rpc(self, method: str | None, code: int) -> None:
        if method is None:
            method = INVALID_METHOD
        elif method not in self.node.rpc.registry:
            method = UNKNOWN_METHOD
        self.rpc_requests.labels(method, str(code)).inc()

    # --- exposition ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text format of every metric of this node."""
        return generate_latest(self.registry)


class _NodeCollector(Collector):
    """The figures read from the node at each scrape."""

    def __init__(self, node: Node, monitor: LoopMonitor, metrics: NodeMetrics) -> None:
        self.node = node
        self.monitor = monitor
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        node = self.node
        tip = node.ledger.tip
        yield _gauge("chain_height", "Height of the last committed block.", tip.height)
        yield _gauge("last_block_time_seconds", "Header time of the last committed block (Unix seconds).",
                     tip.time_ms / 1000)
        if self.metrics.last_commit_unix_s is not None:
            yield _gauge("last_commit_timestamp_seconds",
                         "When this node last committed a block, by its own clock (Unix seconds).",
                         self.metrics.last_commit_unix_s)
        yield from self._consensus()
        yield _gauge("halted", "1 when this node halted (a certified block did not apply here), else 0.",
                     int(node.halted is not None))
        ready, _ = readiness.readiness(node)
        yield _gauge("ready", "1 when GET /ready answers 200, else 0.", int(ready))
        yield from self._mempool()
        yield from self._peers()
        yield _gauge("sync_lag_blocks", "Blocks between this node's height and the highest a connected peer reports.",
                     readiness.sync_lag(node))
        yield _counter("sync_blocks", "Blocks fetched from peers and applied by block sync.", node.sync.blocks_synced)
        yield _counter("sync_rejected_responses",
                       "Blocks from peers that did not verify (bad certificate, wrong height).",
                       node.sync.rejected_responses)
        yield _gauge("rpc_websockets", "Open JSON-RPC WebSocket connections.", node.rpc.websocket_count)
        subscriptions = GaugeMetricFamily(f"{PREFIX}rpc_subscriptions", "Live subscriptions, by topic.",
                                          labels=["topic"])
        for topic in node.rpc.registry.topics:
            subscriptions.add_metric([topic], node.rpc.subscription_count(topic))
        yield subscriptions
        yield _gauge("event_loop_lag_seconds", "How late the last tick of the node's event loop monitor fired.",
                     self.monitor.lag_s)
        yield from _loop_stalls(getattr(node, "loop_stalls", None))
        yield _gauge("process_max_resident_memory_bytes", "Peak resident memory of the process (getrusage).",
                     _max_rss_bytes())

    def _consensus(self) -> Iterator[Metric]:
        driver = self.node.driver
        if driver is None:
            return
        core = driver.core
        yield _gauge("consensus_height", "Height the consensus core is deciding.", core.height)
        yield _gauge("consensus_round", "Round of the height the consensus core is deciding.", core.round)
        step = GaugeMetricFamily(f"{PREFIX}consensus_step", "1 for the consensus core's current step, else 0.",
                                 labels=["step"])
        current = core.step.name.lower()
        for name in STEPS:
            step.add_metric([name], int(name == current))
        yield step
        yield _gauge("consensus_voting", "1 when this validator's key is in the set of the height being decided.",
                     int(core.voting))

    def _mempool(self) -> Iterator[Metric]:
        mempool = self.node.mempool
        yield _gauge("mempool_transactions", "Transactions waiting for a block.", len(mempool))
        yield _gauge("mempool_bytes", "Bytes of the transactions waiting for a block.", mempool.size_bytes)
        admissions = CounterMetricFamily(f"{PREFIX}mempool_admissions", "Transactions admitted, by source "
                                         "(client: over RPC; peer: gossiped).", labels=["source"])
        for source in ("client", "peer"):
            admissions.add_metric([source], mempool.admissions[source])
        yield admissions
        refusals = CounterMetricFamily(f"{PREFIX}mempool_refusals", "Transactions refused, by source and reason "
                                       "(node/mempool/pool.py REFUSAL_REASONS).", labels=["source", "reason"])
        for (source, reason), count in sorted(mempool.refusals.items()):
            refusals.add_metric([source, reason], count)
        yield refusals
        ignored = CounterMetricFamily(f"{PREFIX}gossip_ignored_transactions", "Gossiped transactions not "
                                      "admitted nor checked, by why (behind: this node is catching up; "
                                      "backlog_full: the admission queue was full).", labels=["reason"])
        for reason, count in sorted(self.node.gossip_ignored.items()):
            ignored.add_metric([reason], count)
        yield ignored

    def _peers(self) -> Iterator[Metric]:
        node = self.node
        connected = node.peers.connected_peers()
        validators = node.validator_sets.node_keys_at(node.ledger.tip.height + 1)
        kinds = {"validator": 0, "observer": 0, "other": 0}
        for key in connected:
            kinds["validator" if key in validators else "observer" if key in node.observer_keys else "other"] += 1
        peers = GaugeMetricFamily(f"{PREFIX}peers_connected", "Peers with a live link, by kind (validator: in "
                                  "the set of the next height; observer: listed as one; other).", labels=["kind"])
        for kind, count in kinds.items():
            peers.add_metric([kind], count)
        yield peers
        power = readiness.validator_power(node)
        yield _gauge("validator_power_total", "Voting power of the validator set of the next height.", power.total)
        yield _gauge("validator_power_quorum", "Least voting power that is more than two thirds of the total.",
                     power.quorum)
        yield _gauge("validator_power_connected", "Voting power of this node (if a validator of the set) and of "
                     "the validators it has a live link to.", power.connected)
        # The peer manager's own counters (dials, failures, refusals, ...), whatever fields it has.
        stats = node.peers.stats
        for stat in dataclasses.fields(stats):
            value = getattr(stats, stat.name)
            if isinstance(value, int) and not isinstance(value, bool):
                yield _counter(f"p2p_{stat.name}", f"Peer manager counter {stat.name} (node/p2p/peers.py PeerStats).",
                               value)
        refused = CounterMetricFamily(f"{PREFIX}p2p_inbound_refused", "Inbound connections the peer port refused, "
                                      "by reason (rate_limited, over_limit, unknown_key, ...).", labels=["reason"])
        for reason, count in sorted(stats.inbound_refused.items()):
            refused.add_metric([reason], count)
        yield refused


def _loop_stalls(monitor: LoopStallMonitor | None) -> Iterator[Metric]:
    """The event loop's stalls (node/ops/loop_stalls.py): a histogram, and the worst one."""
    if monitor is None:
        return
    snapshot = monitor.snapshot()
    buckets = [(_bound(le), count) for le, count in snapshot.buckets] + [("+Inf", snapshot.count)]
    yield HistogramMetricFamily(f"{PREFIX}loop_stall_seconds",
                                "How long the event loop was held by one piece of work: wakeups of a probe "
                                f"(every {snapshot.interval_s * 1000:g} ms) at least 1 ms late, by lateness "
                                "(a lower bound of the stall, at most one probe interval short).",
                                buckets=buckets, sum_value=snapshot.sum_s)
    yield _gauge("loop_stall_max_seconds", "The longest event loop stall since the node started.", snapshot.max_s)
    yield _counter("loop_stall_cpu_seconds", "CPU time the event loop's thread used during its stalls (the rest "
                   "of the stalled time it was blocked in a system call or waiting for a CPU).", snapshot.cpu_s)


def _bound(seconds: float) -> str:
    return f"{seconds:.6f}".rstrip("0")


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}{name}", documentation, value=value)


def _max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
