"""A TCP relay that delays everything it carries by a fixed time each way, in order (not a benchmark).

bench/wan.py runs one of these in the bridge's namespace, with one route per dialling direction of
every validator pair: validator i dials `listen_host:port(i->j)`, and the relay connects on to
validator j. Each chunk read from either side is written to the other side `delay` after it was
read, in the order it was read, so a link through it has `delay` one way and `delay` back (a round
trip of twice the delay) and loses nothing; TCP's own flow control still applies (at most
QUEUE_BYTES_MAX wait in the relay per direction, then it stops reading that side). Bandwidth is not
limited: it emulates distance, not a thin pipe. Netem would do this in the kernel; it is not
available here.

    python bench/delay_proxy.py --listen-host 10.203.8.1 --delay-ms 25 \\
        --route 27001=10.203.8.12:26600 --route 27002=10.203.8.13:26600 ...

Prints one line of JSON when every route listens ({"ready": [ports]}). Then reads commands, one per
line, on stdin: `delay MS` (chunks read from then on get the new delay; none overtakes one read
before it), `stats` (prints one line of JSON: per route, connections, bytes and chunks each way, and
how late chunks left against their due time). Exits on end of input, SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field

#: Bytes a direction may hold back before the relay stops reading from its sender.
QUEUE_BYTES_MAX = 8 * 1_048_576
#: Chunks leaving more than this after their due time count as late in the stats (seconds).
LATE_S = 0.005


@dataclass
class RouteStats:
    connections: int = 0
    refused: int = 0
    bytes: dict[str, int] = field(default_factory=lambda: {"forward": 0, "back": 0})
    chunks: int = 0
    late_chunks: int = 0  # left more than LATE_S after their due time
    late_max_s: float = 0.0
    late_sum_s: float = 0.0


class Relay:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.stats: dict[int, RouteStats] = {}
        self._servers: list[asyncio.Server] = []
        self._links: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int, target: tuple[str, int]) -> None:
        stats = self.stats.setdefault(port, RouteStats())

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._links.add(task)
            try:
                await self._link(reader, writer, target, stats)
            except asyncio.CancelledError:  # closing: end quietly (asyncio would log a cancelled callback)
                pass
            finally:
                self._links.discard(task)

        self._servers.append(await asyncio.start_server(accept, host, port, reuse_address=True))

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int],
                    stats: RouteStats) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 10)
        except (OSError, TimeoutError):
            stats.refused += 1
            writer.transport.abort()
            return
        stats.connections += 1
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(self._direction(reader, up_writer, stats, "forward"),
                                 self._direction(up_reader, writer, stats, "back"))
        finally:
            writer.transport.abort()
            up_writer.transport.abort()

    async def _direction(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: RouteStats,
                         name: str) -> None:
        """Read chunks as they come; write each one `delay` after it was read, in order."""
        queue: deque[tuple[float, bytes | None]] = deque()
        queued = 0
        arrived = asyncio.Event()
        room = asyncio.Event()
        room.set()

        async def read() -> None:
            nonlocal queued
            last_due = 0.0
            try:
                while True:
                    data = await reader.read(1 << 16)
                    due = max(time.monotonic() + self.delay_s, last_due)  # never overtake an earlier chunk
                    last_due = due
                    queue.append((due, data or None))
                    arrived.set()
                    if not data:
                        return
                    queued += len(data)
                    stats.bytes[name] += len(data)
                    if queued > QUEUE_BYTES_MAX:
                        room.clear()
                        await room.wait()
            except (OSError, ConnectionError):
                queue.append((time.monotonic(), None))
                arrived.set()

        async def write() -> None:
            nonlocal queued
            while True:
                while not queue:
                    arrived.clear()
                    await arrived.wait()
                due, data = queue[0]
                while (wait := due - time.monotonic()) > 0.0002:  # uvloop's timers round to 1 ms: check again
                    await asyncio.sleep(wait)
                queue.popleft()
                if data is None:
                    with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: uvloop, already closed
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                late = time.monotonic() - due
                stats.chunks += 1
                stats.late_sum_s += max(0.0, late)
                stats.late_max_s = max(stats.late_max_s, late)
                if late > LATE_S:
                    stats.late_chunks += 1
                writer.write(data)
                queued -= len(data)
                if queued <= QUEUE_BYTES_MAX // 2:
                    room.set()
                if writer.transport.get_write_buffer_size() > QUEUE_BYTES_MAX:
                    await writer.drain()

        reading = asyncio.ensure_future(read())
        try:
            await write()
        except (OSError, ConnectionError):
            pass
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    def report(self) -> dict[str, object]:
        return {"delay_ms": self.delay_s * 1000,
                "routes": {str(port): {"connections": s.connections, "refused": s.refused, "bytes": s.bytes,
                                       "chunks": s.chunks, "late_chunks": s.late_chunks,
                                       "late_max_ms": round(1000 * s.late_max_s, 2),
                                       "late_mean_ms": round(1000 * s.late_sum_s / s.chunks, 3) if s.chunks else 0.0}
                           for port, s in self.stats.items()}}


async def main_async(args: argparse.Namespace) -> None:
    relay = Relay(args.delay_ms / 1000)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = []
    for route in args.route:
        port_text, _, target = route.partition("=")
        host, _, target_port = target.rpartition(":")
        await relay.listen(args.listen_host, int(port_text), (host, int(target_port)))
        ports.append(int(port_text))
    print(json.dumps({"ready": ports}), flush=True)

    async def commands() -> None:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            words = line.decode().split()
            if words[:1] == ["delay"] and len(words) == 2:
                relay.delay_s = float(words[1]) / 1000
                print(json.dumps({"delay_ms": float(words[1])}), flush=True)
            elif words[:1] == ["stats"]:
                print(json.dumps(relay.report()), flush=True)
        stop.set()

    reading = asyncio.ensure_future(commands())
    await stop.wait()
    reading.cancel()
    await relay.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen-host", required=True)
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--route", action="append", default=[], metavar="PORT=HOST:PORT")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
