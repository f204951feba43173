"""Process-level fixtures: a network generated and run through the real `secledger` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from node.rpc.client import RpcClient
from node.testing import free_port_base

SECLEDGER = str(Path(sys.executable).parent / "secledger")


def rpc(url: str, method: str, **params: object) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def all_pages(client: RpcClient, method: str, key: str, *, page: int = 1000, **params: object) -> list[dict]:
    """Every item of a paged query (`limit`, `after`, `next`), page by page."""
    out, after = [], None
    while True:
        answer = client.call_sync(method, **params, limit=page, **({"after": after} if after else {}))
        out += answer[key]
        after = answer["next"]
        if after is None:
            return out


def height(url: str) -> int:
    try:
        return rpc(url, "chain_status")["result"]["height"]
    except OSError:
        return -1


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class ProcessNetwork:
    """Nodes as separate `secledger start` processes; every one is killed when the test ends."""

    def __init__(self, directory: Path, validators: int = 4, observers: int = 1, members: int | None = None) -> None:
        self.directory = directory
        base = free_port_base(2 * (validators + observers))
        out = subprocess.run([SECLEDGER, "testnet", "--validators", str(validators), "--observers", str(observers),
                              "--out", str(directory), "--port-base", str(base),
                              *(["--members", str(members)] if members is not None else [])],
                             check=True, capture_output=True, text=True)
        self.nodes = {n["name"]: n for n in json.loads(out.stdout)["nodes"]}
        self.processes: dict[str, subprocess.Popen] = {}
        (directory / "logs").mkdir(exist_ok=True)

    def url(self, name: str) -> str:
        return self.nodes[name]["rpc"]

    def start(self, name: str, *, environment: dict[str, str] | None = None) -> None:
        log = open(self.directory / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        self.processes[name] = subprocess.Popen([SECLEDGER, "start", "--config", self.nodes[name]["config"]],
                                                stdout=log, stderr=log, env={**os.environ, **(environment or {})})

    def start_all(self) -> None:
        for name in self.nodes:
            self.start(name)

    def signal(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)
        if sig == signal.SIGKILL:
            self.processes[name].wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def log(self, name: str) -> str:
        return (self.directory / "logs" / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def process_network(tmp_path):
    net = ProcessNetwork(tmp_path / "net")
    try:
        yield net
    finally:
        net.stop_all()
