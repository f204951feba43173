"""docs/CLIENT.md's example script, run as a user would: its own process, against a network of
`secledger start` processes on 127.0.0.1 with ports chosen at run time. Its output is checked line
by line, and its offline builders against every transaction kind the ledger knows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ledger.kinds import KINDS

from .conftest import ProcessNetwork, height, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "client_example.py"
CLIENT_DOC = ROOT / "docs" / "CLIENT.md"
BIG = str(2**60 + 1)


def test_the_client_example_runs_against_a_network_of_processes(tmp_path):
    # `secledger testnet`'s default: one consortium member holding the admin key, so the example
    # grants its roles by a proposal (the governance family), which executes at once.
    net = ProcessNetwork(tmp_path / "net", validators=4, observers=0)
    try:
        net.start_all()
        url = net.url("validator-1")
        wait_until(lambda: height(url) >= 2, 60, "the network to commit")
        done = subprocess.run([sys.executable, str(EXAMPLE), url, str(tmp_path / "net" / "keys" / "admin.json"),
                               str(tmp_path / "keys")], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        net.stop_all()
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    expected = [
        r"chain secledger-local at height \d+",
        r"roles granted by proposal 1: executed",
        r"identities registered: alice, bob",
        rf"issued {BIG} ACME to alice at height \d+",
        rf"balance of alice: {BIG} \(exact: True\)",
        r"transfer committed at height \d+, nonce 0",
        r"refused: -32000 0x[0-9a-f]{2} receiver_not_registered",
        r"mempool refused: -32005 stale_nonce",
        r'invalid params: -32602 amount: amount must be a decimal string, e\.g\. "1000", got integer',
        r"compliance check: True 0x51 \w+",
        r"replayed: 250 at height \d+",
        r"live: 100 at height \d+",
        rf"holders: alice={int(BIG) - 350}, bob=350",
        r"events of ACME: \d+ in \d+ pages",
        r"block \d+: token\.transfer amount 250 receipt 0x51",
        rf"signed one transaction of each of {len(KINDS)} kinds",
        r"done",
    ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    replayed, live = (int(re.search(r"height (\d+)", lines[i]).group(1)) for i in (10, 11))
    transferred = int(re.search(r"height (\d+)", lines[5]).group(1))
    assert replayed == transferred and live > replayed  # the replay started at the first transfer


def test_the_example_and_the_guide_cover_every_transaction_kind():
    source = EXAMPLE.read_text()
    guide = CLIENT_DOC.read_text()
    for kind in KINDS:
        assert f'"{kind}"' in source, f"docs/examples/client_example.py builds no {kind}"
        assert f"`{kind}`" in guide, f"docs/CLIENT.md does not list {kind}"
