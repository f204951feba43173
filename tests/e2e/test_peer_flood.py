"""A flood on a validator's peer port while another validator restarts and rejoins.

Real `secledger start` processes on 127.0.0.1 (ports chosen at run time); the flooder runs in a
thread of the test, from 127.0.0.2, as a client on another host would (all of 127/8 is local on
Linux). It holds SILENT_SOCKETS silent sockets on validator-0's peer port, reopening each as soon
as the node cuts it, and opens and drops connections besides, at most FLOOD_RATE_PER_S in all,
CONNECTIONS_MAX in all, for FLOOD_S_MAX at most: it stops by itself.

Meanwhile validator-1 is stopped and started again, and so is observer-0, which validator-0 never
dials: its link to validator-0 can only come back through an inbound handshake on the flooded
port. The chain keeps committing, both catch up and are linked to validator-0 again, and
validator-0's log says a bounded number of lines about the refusals (the review counted 9,710
WARNING lines in 2 s before).
"""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time

from node.setup.keys import load_key

from .conftest import height, rpc, wait_until

SILENT_SOCKETS = 128
FLOOD_RATE_PER_S = 1_500
CONNECTIONS_MAX = 40_000
FLOOD_S_MAX = 40.0
#: The flood goes on at least this long, so that validator-0 writes a summary of the refusals
#: (its interval is 10 s) while it lasts.
FLOOD_S_MIN = 12.0
FLOOD_SOURCE = "127.0.0.2"
#: The whole test, network start included.
TEST_S_MAX = 60.0


class Flooder(threading.Thread):
    """The attacking client: its own event loop in a thread, bounded in rate, count and time."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(name="peer-port-flooder", daemon=True)
        self.host = host
        self.port = port
        self.opened = 0
        self.closed_at_once = 0
        self.started_s = 0.0
        self.stopped_s = 0.0
        self._stop_requested = threading.Event()
        self._next_s = 0.0

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        self.started_s = time.monotonic()
        try:
            asyncio.run(self._main())
        finally:
            self.stopped_s = time.monotonic()

    def _over(self) -> bool:
        return (
            self._stop_requested.is_set()
            or self.opened >= CONNECTIONS_MAX
            or time.monotonic() - self.started_s >= FLOOD_S_MAX
        )

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._silent()) for _ in range(SILENT_SOCKETS)]
        tasks.append(asyncio.create_task(self._drop()))
        while not self._over():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pace(self) -> None:
        """At most FLOOD_RATE_PER_S connections a second, over all the tasks."""
        now = time.monotonic()
        self._next_s = max(self._next_s, now) + 1 / FLOOD_RATE_PER_S
        await asyncio.sleep(max(0.0, self._next_s - now - 1 / FLOOD_RATE_PER_S))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        await self._pace()
        try:
            connection = await asyncio.open_connection(self.host, self.port, local_addr=(FLOOD_SOURCE, 0))
        except OSError:
            await asyncio.sleep(0.01)
            return None
        self.opened += 1
        return connection

    async def _silent(self) -> None:
        while not self._over():
            connection = await self._connect()
            if connection is None:
                continue
            reader, writer = connection
            try:
                if not await reader.read():  # until cut; nothing at all: refused on accept
                    self.closed_at_once += 1
            except OSError:
                self.closed_at_once += 1
            finally:
                writer.close()

    async def _drop(self) -> None:
        while not self._over():
            connection = await self._connect()
            if connection is not None:
                connection[1].transport.abort()


def _after(line: str, wall_s: float) -> bool:
    """Whether a text log line (it starts with `YYYY-mm-dd HH:MM:SS,mmm`) was written after `wall_s`."""
    try:
        stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
    except ValueError:
        return False
    return stamp >= wall_s


def _node_key_hex(net, name: str) -> str:
    return bytes(load_key(net.directory / "keys" / f"{name}.node.json").verify_key).hex()


def _peers(url: str) -> list[str]:
    try:
        return rpc(url, "chain_status")["result"]["peers"]
    except OSError:
        return []


def test_a_flood_on_a_validators_peer_port_while_another_restarts_and_rejoins(process_network):
    net = process_network
    started = time.monotonic()
    net.start_all()
    validators = [f"validator-{i}" for i in range(4)]
    wait_until(lambda: all(height(net.url(v)) >= 2 for v in validators), 40, "the network to start")
    v0, v1 = net.url("validator-0"), net.url("validator-1")
    v1_key = _node_key_hex(net, "validator-1")
    observer_key = _node_key_hex(net, "observer-0")
    wait_until(lambda: observer_key in _peers(v0), 20, "the observer to link to validator-0")
    host, port = net.nodes["validator-0"]["p2p"].rsplit(":", 1)
    flooder = Flooder(host, int(port))
    flood_wall_s = time.time()
    flooder.start()
    try:
        wait_until(lambda: flooder.opened >= SILENT_SOCKETS, 10, "the flood to start")
        before = height(v0)
        for name in ("validator-1", "observer-0"):
            net.signal(name, signal.SIGTERM)
            net.processes[name].wait(15)
        wait_until(lambda: not {v1_key, observer_key} & set(_peers(v0)), 10, "validator-0 to see both go")
        net.start("validator-1")
        net.start("observer-0")
        wait_until(lambda: height(v0) >= before + 3, 30, "the chain to go on committing during the flood")
        target = height(v0)
        wait_until(lambda: height(v1) >= target, 30, "the restarted validator to catch up")
        wait_until(lambda: v1_key in _peers(v0), 15, "validator-0 and validator-1 to link again")
        wait_until(lambda: observer_key in _peers(v0), 15, "the observer to handshake in again")
        wait_until(lambda: height(net.url("observer-0")) >= target, 30, "the observer to catch up")
        rejoined_s = time.monotonic()
        assert flooder.is_alive(), "the flood ended before the validator rejoined: the test proved nothing"
        wait_until(lambda: height(v1) >= target + 2, 30, "the restarted validator to commit with the others")
        wait_until(
            lambda: time.monotonic() - flooder.started_s >= FLOOD_S_MIN, FLOOD_S_MIN, "the flood to go on"
        )
        assert height(v1) >= target + 3 and flooder.is_alive()  # still committing, still flooded
    finally:
        flooder.stop()
        flooder.join(15)
    assert not flooder.is_alive()
    flood_s = flooder.stopped_s - flooder.started_s
    log = net.log("validator-0")
    refusal_lines = [line for line in log.splitlines() if "p2p inbound refus" in line]
    peer_ups = [line for line in log.splitlines() if "p2p peer up" in line and v1_key in line]
    handshakes_under_flood = [
        line for line in log.splitlines() if "p2p peer up" in line and _after(line, flood_wall_s)
    ]
    inbound_under_flood = [line for line in handshakes_under_flood if "inbound" in line]
    print(
        f"\npeer flood: {flooder.opened} connections in {flood_s:.1f} s from {FLOOD_SOURCE} "
        f"({flooder.closed_at_once} closed on accept); validator-1 rejoined "
        f"{rejoined_s - flooder.started_s:.1f} s into the flood; validator-0 links to validator-1: "
        f"{len(peer_ups)} up; links up during the flood: {len(handshakes_under_flood)} "
        f"({len(inbound_under_flood)} inbound); "
        f"refusal log lines: {len(refusal_lines)}; heights: "
        f"{[height(net.url(v)) for v in validators]}"
    )
    for line in refusal_lines:
        print("   ", line[:300])
    assert len(peer_ups) >= 2  # before the restart, and after it under the flood
    # validator-0 completed inbound handshakes while flooded: the observer's at least.
    assert any(observer_key in line for line in inbound_under_flood)
    # At most one line per 10 s interval, plus one written as the node stops (it has not yet).
    assert 1 <= len(refusal_lines) <= 2 + int(flood_s / 10)
    summaries = [line for line in refusal_lines if "p2p inbound refusals" in line]
    assert summaries, "no summary of the refusals while the flood went on"
    counted = sum(int(re.search(r"refused=(\d+)", line).group(1)) for line in summaries)  # type: ignore[union-attr]
    assert counted >= flooder.opened // 4  # the summary counts what the lines no longer show one by one
    assert time.monotonic() - started < TEST_S_MAX
