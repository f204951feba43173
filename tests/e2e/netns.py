"""Hosts of their own on one machine: Linux network namespaces, one veth pair each, on a bridge.

Shared by tests/e2e/test_multihost.py (a consortium set up by its members across hosts) and
bench/wan.py (the cluster benchmark with a delay on every validator-to-validator link). Pure
standard library, no pytest: bench/ imports it as `tests.e2e.netns`.

Each "host" is a namespace with one interface (`eth0`, one end of a veth pair) and an address in
`subnet`.0/24 that exists only inside these namespaces. The bridge lives in a namespace of its own
too (the hub), so nothing is added to the machine's own network. Every namespace is named after
the creating process's pid (`<prefix><pid>hub`, `<prefix><pid>h<i>`): `remove_stale` removes
those of a run whose process is gone (killed outright), and `Hosts.destroy` removes a run's own,
with every process still inside them. Needs root and `ip` (iproute2).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

#: setns(2)'s flag for a network namespace.
CLONE_NEWNET = 0x40000000


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


class Hosts:
    """`count` namespaces on one bridge; host i has address `subnet`.(11 + i). With `hub_address`,
    the bridge itself has `subnet`.1, so a process in the hub's namespace (`enter(hosts.hub)`)
    reaches every host, as a machine on the same switch would."""

    def __init__(self, count: int, *, prefix: str, subnet: str, hub_address: bool = False) -> None:
        tag = f"{prefix}{os.getpid()}"
        self.subnet = subnet
        self.hub = f"{tag}hub"
        self.names = [f"{tag}h{i}" for i in range(count)]
        self.hub_address = f"{subnet}.1" if hub_address else None
        self._made: list[str] = []

    def address(self, i: int) -> str:
        return f"{self.subnet}.{11 + i}"

    def create(self) -> None:
        """Make every namespace and link (on failure, what was made so far stays for `destroy`)."""
        for name in (self.hub, *self.names):
            ip("netns", "add", name)
            self._made.append(name)
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "link", "set", "br0", "up")
        ip("-n", self.hub, "link", "set", "lo", "up")
        if self.hub_address is not None:
            ip("-n", self.hub, "addr", "add", f"{self.hub_address}/24", "dev", "br0")
        for i, name in enumerate(self.names):
            ip("-n", self.hub, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", name)
            ip("-n", self.hub, "link", "set", f"v{i}", "master", "br0", "up")
            ip("-n", name, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            ip("-n", name, "link", "set", "lo", "up")

    def cut(self, i: int) -> None:
        """Unplug host i's cable at the bridge: its packets are dropped, nothing is refused."""
        ip("-n", self.hub, "link", "set", f"v{i}", "down")

    def heal(self, i: int) -> None:
        ip("-n", self.hub, "link", "set", f"v{i}", "master", "br0", "up")

    def command(self, i: int, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[i], *argv]

    def hub_command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.hub, *argv]

    def destroy(self) -> None:
        """Kill whatever runs in this run's namespaces and delete them (their veths go with them)."""
        for name in (*self.names, self.hub):
            remove_namespace(name)
        self._made.clear()

    def remaining(self) -> list[str]:
        """This run's namespaces that still exist (none after `destroy`)."""
        listed = {line.split()[0] for line in ip("netns", "list", check=False).stdout.splitlines() if line.split()}
        return [name for name in (self.hub, *self.names) if name in listed]


def die_with_parent() -> None:
    """In a child before exec: if the creating process is killed outright, the kernel kills this
    child too (`ip netns exec` execs its command, so the setting carries over)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def remove_namespace(name: str) -> None:
    """Kill whatever still runs inside the namespace, then delete it (its links go with it)."""
    pids = ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        if pid == str(os.getpid()):  # never this process (one that entered the namespace must leave it first)
            continue
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", name, check=False)


def remove_stale(prefix: str) -> list[str]:
    """Namespaces of an earlier run (named `prefix`<pid>...) whose process is gone: removed; their names."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{re.escape(prefix)}(\d+)(hub|h\d+)", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            remove_namespace(name)
            removed.append(name)
    return removed


def enter(name: str) -> int:
    """Move the calling thread (before it starts others: they inherit it) into namespace `name`.
    Sockets it opens from then on, and processes it starts, live there. Returns a descriptor of
    the namespace it was in, for `leave`."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _setns(f"/var/run/netns/{name}")
    except BaseException:
        os.close(here)
        raise
    return here


def leave(previous: int) -> None:
    """Back to the namespace `enter` returned (and close its descriptor)."""
    try:
        _setns(previous)
    finally:
        os.close(previous)


def _setns(target: str | int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(target, os.O_RDONLY) if isinstance(target, str) else target
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {target}: {os.strerror(errno)}")
    finally:
        if isinstance(target, str):
            os.close(fd)
