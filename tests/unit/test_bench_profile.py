"""The cluster benchmark's profile categories name code that exists, and sort stacks as documented.

`bench/cluster.py --profile` splits a node's py-spy samples into stages by the functions on each
stack (`PHASES`, `ACTIVITIES`), and `bench/profile_stages.py` turns those into docs/BENCHMARKS.md's
per-stage table. A renamed method would silently move its time into "other": every `Class.method`
a pattern names must exist, and a module path it names must be a file.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

cluster = pytest.importorskip("cluster")
profile_stages = pytest.importorskip("profile_stages")

#: Names outside this repository (libraries) the patterns may use.
LIBRARY_FUNCTIONS = {"crypto_sign_open", "fsync", "fdatasync", "Transaction.commit"}


#: Frames of library code the categories name, as py-spy writes them.
LIBRARY_FRAMES = ("crypto_sign_open (nacl/bindings/crypto_sign.py)", "fdatasync (os)",
                  "RequestHandler._handle_request (aiohttp/web_protocol.py)", "loads (json/__init__.py)",
                  "packb (msgpack/__init__.py)")


def _frames() -> list[str]:
    """A py-spy frame (`Class.method (path)` or `function (path)`) for every function in the packages."""
    frames: list[str] = []
    for package in ("ledger", "node", "consensus"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    frames += [f"{node.name}.{item.name} ({relative})" for item in node.body
                               if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)]
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    frames.append(f"{node.name} ({relative})")
    return frames


def _defined_names() -> set[str]:
    """Every `function` and `Class.method` defined in the packages."""
    return {frame.split(" ", 1)[0] for frame in _frames()}


def _named_in(pattern: str) -> tuple[list[str], list[str]]:
    """(functions, files) a pattern names: `^Class\\.method `, `^(a|b) ` alternatives, `\\(dir/file\\.py\\)`."""
    functions: list[str] = []
    for group in re.findall(r"\^\(?([A-Za-z_\\.|]+)\)? ", pattern):
        functions += [name.replace("\\.", ".") for name in group.split("|")]
    files = [f.replace("\\.", ".") for f in re.findall(r"\\\(([a-z_/]+\\\.py)\\\)", pattern)]
    return functions, files


@pytest.mark.parametrize("name, pattern", list(cluster.PHASES) + list(cluster.ACTIVITIES))
def test_every_profile_category_names_code_that_exists(name, pattern):
    defined = _defined_names()
    functions, files = _named_in(pattern)
    for function in functions:
        if function.endswith("."):  # a class prefix: any method of it
            assert any(d.startswith(function) for d in defined), f"{name}: no class {function[:-1]}"
        else:
            assert function in defined or function in LIBRARY_FUNCTIONS, f"{name}: {function} is defined nowhere"
    for file in files:
        assert (ROOT / file).is_file(), f"{name}: no file {file}"
    # and the pattern as a whole matches some frame of this code (or of the library it is about)
    assert any(re.search(pattern, frame) for frame in [*_frames(), *LIBRARY_FRAMES]), f"{name}: matches no code"


def _stack(*frames: str) -> list[str]:
    return ["<module> (secledger)", "run (node/main.py)", *frames]


def test_a_stack_is_sorted_by_its_phase_and_activity_into_one_stage():
    verify_on_submit = _stack("Node.submit (node/service.py)", "Mempool.add (node/mempool/pool.py)",
                              "decode_transaction (ledger/tx.py)", "crypto_sign_open (nacl/bindings/crypto_sign.py)")
    category = cluster.categorize(verify_on_submit)
    assert category == "client tx admission (Node.submit): Ed25519 verify"
    assert profile_stages.stage(category).startswith("Ed25519 verify")

    rules_in_apply = _stack("ConsensusDriver.commit (node/validator/driver.py)", "Ledger.apply_block (ledger/chain.py)",
                            "execute_transaction (ledger/execution.py)", "check_transfer (ledger/compliance.py)")
    assert profile_stages.stage(cluster.categorize(rules_in_apply)) == "block apply: rules and state"

    projecting = _stack("Node._projection_loop (node/service.py)", "Ledger.project (ledger/chain.py)",
                        "Projector.project (ledger/projections.py)", "index_event (ledger/projections.py)")
    assert profile_stages.stage(cluster.categorize(projecting)).startswith("projection")

    rebuild = _stack("Mempool.update (node/mempool/pool.py)", "execute_transaction (ledger/execution.py)",
                     "token_transfer (ledger/transfers.py)")
    assert profile_stages.stage(cluster.categorize(rebuild)).startswith("mempool rebuild")

    assert profile_stages.stage(cluster.categorize(_stack("select (selectors.py)"))).startswith("event loop")
