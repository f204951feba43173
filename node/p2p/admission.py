"""Who may start a handshake on the peer port, and how refusals are told: no I/O in here.

Anyone who can reach the peer port can reach the handshake, so before a connection costs us a
key exchange it passes the `InboundGate`, which the peer manager asks at accept time:

- New connections per source address are rate limited (a token bucket: `burst`, refilled at
  `per_s`); one over the rate is closed at once.
- Handshakes in flight per source address are capped; when a source is at its cap, its oldest
  handshake is evicted to make room for the new one. A connection that has authenticated is no
  longer counted: the caps bound strangers only.
- Handshakes in flight are capped for the whole node. Sources where a peer on the allow-list has
  authenticated before (and the literal addresses of persistent peers) are "known": they draw
  on a reserved pool that strangers cannot fill. When a pool is full, the oldest handshake of the
  source holding the most of it is evicted, so no one source or burst can shut the port.

A source is an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64). The table of
sources is bounded; idle entries are dropped first, and a new source is refused while the table
is full of busy ones.

The `RefusalLog` turns per-connection refusals into at most one log line per interval: the first
refusal after a quiet interval is told at once with its detail ("p2p inbound refused"), the rest
are counted and told in one summary at the end of the interval ("p2p inbound refusals", with a
count per reason, the busiest sources and the last detail as fields). Counters for metrics live
in the peer manager's stats.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

KNOWN_SOURCES_MAX: Final[int] = 1_024
"""Sources remembered as known (allow-listed peers authenticated from there); least recent go first."""

SOURCES_NAMED_MAX: Final[int] = 3
"""Busiest sources named in a refusal summary."""

REFUSAL_REASONS: Final[tuple[str, ...]] = (
    "rate_limited",
    "over_limit",
    "evicted",
    "timed_out",
    "failed",
    "unknown_key",
    "other_network",
    "self_connection",
    "off_the_list",
)
"""Why an inbound connection was refused, as counted and summarised (low cardinality: a metric label)."""


def source_of(host: str) -> str:
    """The source an address counts against: the IPv4 address, or the IPv6 /64 it is in."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # Not an IP address (a Unix socket in tests): counted as it is.
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


@dataclass(eq=False, slots=True)
class Ticket:
    """One inbound handshake in flight; `handle` is the manager's (its task), to cut on eviction."""

    source: str
    reserved: bool
    started_s: float
    handle: object = None
    active: bool = True


@dataclass(slots=True)
class _Source:
    tokens: float
    refilled_s: float
    handshakes: collections.deque[Ticket] = field(default_factory=collections.deque)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer for one new connection: a ticket, or the reason it is refused."""

    ticket: Ticket | None
    refused: str | None
    evicted: tuple[Ticket, ...] = ()


class InboundGate:
    """Decides at accept time which inbound connections may start a handshake; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        handshakes_max: int,
        handshakes_reserved_max: int,
        handshakes_per_source_max: int,
        connections_per_s: float,
        connections_burst: int,
        sources_max: int,
    ) -> None:
        self._clock = clock
        self._handshakes_max = handshakes_max
        self._reserved_max = handshakes_reserved_max
        self._per_source_max = handshakes_per_source_max
        self._per_s = connections_per_s
        self._burst = connections_burst
        self._sources_max = sources_max
        self._sources: dict[str, _Source] = {}
        self._known: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Per pool (False: strangers, True: known), the tickets in flight by source.
        self._pools: dict[bool, dict[str, int]] = {False: {}, True: {}}

    # -- public ---------------------------------------------------------------------------------

    def admit(self, host: str) -> Verdict:
        """A connection from `host` was accepted: give it a ticket (maybe evicting others), or refuse it."""
        now = self._clock()
        source = source_of(host)
        state = self._sources.get(source)
        if state is None:
            if len(self._sources) >= self._sources_max and not self._prune(now):
                return Verdict(None, "rate_limited")
            state = self._sources[source] = _Source(tokens=self._burst, refilled_s=now)
        state.tokens = min(self._burst, state.tokens + (now - state.refilled_s) * self._per_s)
        state.refilled_s = now
        if state.tokens < 1:
            return Verdict(None, "rate_limited")
        state.tokens -= 1
        evicted: list[Ticket] = []
        if len(state.handshakes) >= self._per_source_max:
            evicted.append(state.handshakes[0])
            self.done(state.handshakes[0])
        reserved = source in self._known
        pool = self._pools[reserved]
        if sum(pool.values()) >= (self._reserved_max if reserved else self._handshakes_max):
            busiest = max(pool, key=pool.__getitem__)
            victim = next(t for t in self._sources[busiest].handshakes if t.reserved is reserved)
            evicted.append(victim)
            self.done(victim)
        ticket = Ticket(source=source, reserved=reserved, started_s=now)
        state.handshakes.append(ticket)
        pool[source] = pool.get(source, 0) + 1
        return Verdict(ticket, None, tuple(evicted))

    def done(self, ticket: Ticket) -> None:
        """The handshake of `ticket` ended (any way, or evicted); safe to call twice."""
        if not ticket.active:
            return
        ticket.active = False
        state = self._sources.get(ticket.source)
        if state is not None:
            state.handshakes.remove(ticket)
        pool = self._pools[ticket.reserved]
        left = pool.get(ticket.source, 0) - 1
        if left > 0:
            pool[ticket.source] = left
        else:
            pool.pop(ticket.source, None)

    def remember(self, host: str) -> None:
        """A peer on the allow-list authenticated from `host`: its source draws on the reserved pool."""
        source = source_of(host)
        self._known[source] = None
        self._known.move_to_end(source)
        while len(self._known) > KNOWN_SOURCES_MAX:
            self._known.popitem(last=False)

    def is_known(self, host: str) -> bool:
        return source_of(host) in self._known

    def in_flight(self) -> int:
        """Handshakes holding a ticket now, in both pools."""
        return sum(sum(pool.values()) for pool in self._pools.values())

    # -- private --------------------------------------------------------------------------------

    def _prune(self, now: float) -> bool:
        """Drop the sources with nothing in flight and a full bucket again; True if any went."""
        idle = [
            source
            for source, state in self._sources.items()
            if not state.handshakes and state.tokens + (now - state.refilled_s) * self._per_s >= self._burst
        ]
        for source in idle:
            del self._sources[source]
        return bool(idle)


class RefusalLog:
    """At most one line per interval about refused inbound connections; see the module docstring.

    `emit(message, fields)` writes a line (a constant phrase; the variables in `fields`);
    `schedule(delay_s, callback)` arranges a later call and returns something with `cancel()` (the
    event loop's `call_later`). Counting is the caller's (stats).
    """

    def __init__(
        self,
        *,
        interval_s: float,
        clock: Callable[[], float],
        emit: Callable[[str, dict[str, object]], None],
        schedule: Callable[[float, Callable[[], None]], object],
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._emit = emit
        self._schedule = schedule
        self._last_line_s: float | None = None
        self._counts: collections.Counter[str] = collections.Counter()
        self._sources: collections.Counter[str] = collections.Counter()
        self._last_detail = ""
        self._flush_handle: object = None
        self.lines = 0

    def note(self, reason: str, source: str, detail: str) -> None:
        """One inbound connection was refused for `reason` (one of REFUSAL_REASONS)."""
        now = self._clock()
        due = self._last_line_s is None or now - self._last_line_s >= self._interval_s
        if due and not self._counts:
            self._last_line_s = now
            self._line("p2p inbound refused", {"reason": reason, "source": source, "detail": detail})
            return
        self._counts[reason] += 1
        self._sources[source] += 1
        self._last_detail = detail
        if due:
            # The summary is due and its timer has not run yet: write it now, with this one in it.
            handle, self._flush_handle = self._flush_handle, None
            if handle is not None:
                handle.cancel()  # type: ignore[attr-defined]
            self.flush()
            return
        if self._flush_handle is None:
            self._flush_handle = self._schedule(self._last_line_s + self._interval_s - now, self.flush)

    def flush(self) -> None:
        """Write the summary of what was counted since the last line, if anything was."""
        self._flush_handle = None
        total = sum(self._counts.values())
        if total == 0:
            return
        busiest = ",".join(
            f"{source}:{count}" for source, count in self._sources.most_common(SOURCES_NAMED_MAX)
        )
        span_s = self._clock() - (self._last_line_s or 0.0)
        self._last_line_s = self._clock()
        fields: dict[str, object] = {"refused": total, "span_s": round(span_s)}
        fields.update((reason, self._counts[reason]) for reason in REFUSAL_REASONS if self._counts[reason])
        fields.update(busiest=busiest, last=self._last_detail)
        self._line("p2p inbound refusals", fields)
        self._counts.clear()
        self._sources.clear()
        self._last_detail = ""

    def close(self) -> None:
        """Write what is pending now and cancel the scheduled summary (the manager is stopping)."""
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()  # type: ignore[attr-defined]
            self.flush()

    def _line(self, message: str, fields: dict[str, object]) -> None:
        self.lines += 1
        self._emit(message, fields)
