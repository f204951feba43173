"""Event loop stalls of a benchmark's nodes, from their Prometheus /metrics (not a benchmark itself).

Every node measures how long its event loop was held (node/ops/loop_stalls.py) and serves it as the
histogram `secledger_loop_stall_seconds` and the gauge `secledger_loop_stall_max_seconds`. A
benchmark scrapes every node before a run and after its drain; the difference is that run's stalls.
bench/cluster.py and bench/wan.py print them beside their latency tables.

A recorded stall is the lateness of a probe's wakeup: at most one probe interval (2 ms by default)
shorter than the time the loop was really held, never longer. The worst stall of a run is known to
its bucket: "32-64" means the longest stall recorded in that run lay between 32 and 64 ms.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

FAMILY = "secledger_loop_stall_seconds"
#: The report's columns: stalls grouped by bucket bounds, in milliseconds (the node's buckets are
#: 1, 2, 4, ... 1024 ms; two at a time keeps a table narrow).
COLUMNS_MS: tuple[tuple[float, float], ...] = ((1, 4), (4, 16), (16, 64), (64, 256), (256, 1024), (1024, math.inf))


@dataclass
class Histogram:
    """One node's stall histogram at one moment: cumulative counts by upper bound (seconds)."""

    cumulative: dict[float, float]
    count: float
    sum_s: float
    max_s: float
    cpu_s: float  # CPU the loop's thread used during the stalls


async def scrape(session: aiohttp.ClientSession, urls: dict[str, str], timeout_s: float = 10.0
                 ) -> dict[str, Histogram]:
    """Every node's histogram now (a node that does not answer is left out)."""

    async def one(url: str) -> Histogram | None:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as reply:
                text = await reply.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        return parse(text)

    answers = await asyncio.gather(*(one(url) for url in urls.values()))
    return {name: h for name, h in zip(urls, answers, strict=True) if h is not None}


def parse(text: str) -> Histogram | None:
    cumulative: dict[float, float] = {}
    count = sum_s = max_s = cpu_s = math.nan
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{FAMILY}_bucket":
                cumulative[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{FAMILY}_count":
                count = sample.value
            elif sample.name == f"{FAMILY}_sum":
                sum_s = sample.value
            elif sample.name == "secledger_loop_stall_max_seconds":
                max_s = sample.value
            elif sample.name == "secledger_loop_stall_cpu_seconds_total":
                cpu_s = sample.value
    if not cumulative:
        return None
    return Histogram(cumulative, count, sum_s, max_s, cpu_s)


def delta(before: dict[str, Histogram], after: dict[str, Histogram], span_s: float) -> dict[str, dict[str, Any]]:
    """Per node, the stalls between two scrapes: counts per bucket ([low, high, count], ms, high
    None for the last), how many, the share of `span_s` the loop was stalled (%), and the worst
    one's bucket ("32-64")."""
    out: dict[str, dict[str, Any]] = {}
    for name, end in after.items():
        start = before.get(name)
        if start is None:
            continue
        buckets: list[list[float]] = []
        low, below = 0.0, 0.0
        worst = "-"
        for bound in sorted(end.cumulative):
            upto = end.cumulative[bound] - start.cumulative.get(bound, 0.0)
            n = int(round(upto - below))
            buckets.append([low * 1000, None if math.isinf(bound) else bound * 1000, n])
            if n:
                worst = f"{low * 1000:g}-{bound * 1000:g}" if not math.isinf(bound) else f">{low * 1000:g}"
            low, below = bound, upto
        stalled, on_cpu = end.sum_s - start.sum_s, end.cpu_s - start.cpu_s
        out[name] = {"buckets_ms": buckets, "count": int(round(end.count - start.count)),
                     "stalled_s": round(stalled, 3), "stalled_cpu_s": round(on_cpu, 3),
                     "stalled_pct": round(100 * stalled / span_s, 2) if span_s > 0 else None,
                     "stalled_cpu_pct": round(100 * on_cpu / span_s, 2) if span_s > 0 else None,
                     "worst_ms": worst, "max_since_start_s": end.max_s}
    return out


def columns(stalls: dict[str, dict[str, Any]], names: list[str]) -> list[int]:
    """Stalls of `names` together, in the report's COLUMNS_MS (a bucket goes where its low end falls)."""
    totals = [0] * len(COLUMNS_MS)
    for name in names:
        for low, _, n in stalls.get(name, {}).get("buckets_ms", []):
            for i, (a, b) in enumerate(COLUMNS_MS):
                if a <= max(low, 1) < b:
                    totals[i] += int(n)
                    break
    return totals


def header() -> str:
    return " / ".join(f"{a:g}-{b:g}" if not math.isinf(b) else f">{a:g}" for a, b in COLUMNS_MS)


def summary(stalls: dict[str, dict[str, Any]], names: list[str]) -> tuple[str, str, str]:
    """Three table cells: stall counts by column (the named nodes together), % of the run each node's
    loop was stalled and, after the slash, on the CPU meanwhile, and each node's worst stall (its bucket, ms)."""
    if not stalls:
        return "-", "-", "-"
    counts = " / ".join(str(n) for n in columns(stalls, names))
    pct = " ".join(_pct(stalls.get(n, {})) for n in names)
    worst = " ".join(stalls[n]["worst_ms"] if n in stalls else "-" for n in names)
    return counts, pct, worst


def _names(runs_stalls: list[dict[str, dict[str, Any]]]) -> tuple[list[str], list[str]]:
    """Every node named in the runs (validators first), and the validators."""
    names = sorted({n for stalls in runs_stalls for n in stalls}, key=lambda n: (not n.startswith("validator"), n))
    return names, [n for n in names if n.startswith("validator")]


def table(runs: list[Any]) -> str:
    """A markdown table of the runs' stalls (objects with mode, offered, p99_ms and loop_stalls)."""
    nodes, validators = _names([r.loop_stalls for r in runs])
    rows = []
    for r in runs:
        counts = summary(r.loop_stalls, validators)[0]
        _, pct, worst = summary(r.loop_stalls, nodes)
        rows.append(f"| {r.mode} | {r.offered:.0f} | {r.p99_ms:.0f} | {counts} | {pct} | {worst} |")
    who = " ".join(short(n) for n in nodes)
    return (f"| run | offered tx/s | p99 ms | stalls of the {len(validators)} validators together, by length in ms: "
            f"{header()} | % of the run each loop was stalled / on the CPU meanwhile ({who}) | worst stall, ms ({who}) |\n"
            "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows))


def line(stalls_of_run: dict[str, dict[str, Any]]) -> str:
    """One line for a run's log: the same figures as `table`."""
    if not stalls_of_run:
        return "loop stalls: not scraped"
    nodes, validators = _names([stalls_of_run])
    counts = summary(stalls_of_run, validators)[0]
    _, pct, worst = summary(stalls_of_run, nodes)
    return (f"loop stalls of the validators by ms ({header()}): {counts}; % stalled/on CPU "
            f"({' '.join(short(n) for n in nodes)}) {pct}; worst ms {worst}")


def _pct(node: dict[str, Any]) -> str:
    if node.get("stalled_pct") is None:
        return "-"
    cpu = node.get("stalled_cpu_pct")
    return f"{node['stalled_pct']:.1f}/{cpu:.1f}" if cpu is not None and not math.isnan(cpu) else f"{node['stalled_pct']:.1f}"


def short(name: str) -> str:
    """validator-0 -> v0, observer-0 -> obs0."""
    kind, _, index = name.rpartition("-")
    return ("v" if kind == "validator" else "obs" if kind == "observer" else kind) + index
