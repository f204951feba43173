"""Benchmark (not a test): cheaper bytes (issue 15, item 2), the code before against the code after,
in interleaved pairs, CPU time (`time.process_time`) per item.

Modes:

- `codec`: decode and check N transactions without their signatures (`decode_transaction(...,
  verify_signature=False)`): the general path alone (the code before: `codec.decode`, canonical
  check, `check_body`) against the typed msgspec path with it behind (the code after). Workloads:
  transfers alone, and a mix of kinds (some of which have no typed path). Beside it, what the
  comparison leaves out: Ed25519 verification per transaction, and whole mempool admission
  (`Mempool.add`: decode, signature, nonce, the rules' dry run) before and after.
- `json`: the JSON-RPC layer's parse and write of realistic documents: `json` alone (before)
  against msgspec/orjson with `json` behind (after).
- `submit`: the server's CPU per submitted transaction, from WebSocket message to answer, for
  batches of tx_submit (hex in JSON, before and after the `json` change) and for a binary
  submission path (a msgpack frame of raw transactions, prototyped here, not in the node); with
  the mempool's admission, and without it (a stub that returns the decoded transaction) to show
  the protocol's own part.

Each pair runs both sides over the same items, in alternating order (before first in even pairs),
after one untimed warm-up of each; a side's figure is its CPU time over all items divided by their
number. The ratio is after / before, per pair; the summary is the median of the pairs and their
range.

    .venv/bin/python bench/codec.py [--mode codec,json,submit] [--pairs 6] [--n 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import msgpack  # noqa: E402
import msgspec  # noqa: E402
import orjson  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

from ledger import Block, queries, tx  # noqa: E402
from ledger.client import Signer  # noqa: E402
from ledger.testing import CHAIN_ID, FAR_FUTURE_S, LedgerHarness, address_of, key_for  # noqa: E402
from ledger.tx import TX_BYTES_MAX, _payload_of, decode_transaction  # noqa: E402

CLOCK = time.process_time


# --- machine and pairs ---------------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {"cores": os.cpu_count(), "cpu": model.group(1) if model else platform.processor(),
            "python": platform.python_version(), "msgspec": msgspec.__version__, "orjson": orjson.__version__,
            "msgpack": ".".join(map(str, msgpack.version)), "loadavg_start": loadavg()}


def timed(run: Callable[[], Any], items: int) -> float:
    """CPU microseconds per item of one call of `run` (which handles `items` items)."""
    gc.collect()
    started = CLOCK()
    run()
    return (CLOCK() - started) / items * 1e6


def pairs(name: str, before: Callable[[], Any], after: Callable[[], Any], items: int, count: int,
          results: list[dict[str, Any]]) -> dict[str, Any]:
    """`count` interleaved pairs of `before` and `after`, each handling `items` items."""
    before()
    after()  # warm-up, untimed
    rows = []
    for pair in range(count):
        load = loadavg()
        if pair % 2 == 0:
            b, a = timed(before, items), timed(after, items)
        else:
            a, b = timed(after, items), timed(before, items)
        rows.append({"pair": pair + 1, "before_us": round(b, 3), "after_us": round(a, 3), "ratio": round(a / b, 3),
                     "loadavg": load})
    ratios = [r["ratio"] for r in rows]
    summary = {"name": name, "items": items, "pairs": rows, "median_before_us": round(statistics.median(r["before_us"] for r in rows), 3),
               "median_after_us": round(statistics.median(r["after_us"] for r in rows), 3),
               "median_ratio": round(statistics.median(ratios), 3), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    results.append(summary)
    print(f"{name}: before {summary['median_before_us']} us, after {summary['median_after_us']} us per item; "
          f"after/before median {summary['median_ratio']} (pairs {min(ratios)}..{max(ratios)})", flush=True)
    for r in rows:
        print(f"    pair {r['pair']}: before {r['before_us']} after {r['after_us']} ratio {r['ratio']} "
              f"(load {r['loadavg']})", flush=True)
    return summary


def single(name: str, run: Callable[[], Any], items: int, count: int, results: list[dict[str, Any]]) -> None:
    run()
    figures = [round(timed(run, items), 3) for _ in range(count)]
    results.append({"name": name, "items": items, "runs_us": figures, "median_us": statistics.median(figures)})
    print(f"{name}: {statistics.median(figures)} us per item (runs {min(figures)}..{max(figures)})", flush=True)


def repeat(function: Callable[..., Any], argument: Any, reps: int, **keywords: Any) -> Callable[[], None]:
    """`function(argument)` `reps` times, keeping no result (a list of them would make the timing
    one of memory: each new result on fresh pages)."""
    def run() -> None:
        for _ in range(reps):
            function(argument, **keywords)
    return run


def general_path_only() -> Any:
    """The code before the typed path: `decode_transaction` with the typed path switched off (one
    call of a lambda more per transaction, about 0.05 us, counted against before)."""
    return mock.patch.object(tx, "_decode_typed", lambda raw: None)


# --- workloads ------------------------------------------------------------------------------------------


def transfers(n: int, signers: int = 50) -> list[bytes]:
    keys = [Signer(key_for(f"bench-{i}"), CHAIN_ID) for i in range(signers)]
    return [keys[i % signers].transfer("ACME", address_of(f"to-{i % 97}"), 1 + i * 7919 % 10**9) for i in range(n)]


def mix(n: int) -> list[bytes]:
    """Transfers 70 %, issues 10 %, settlement affirmations 5 % (typed kinds); claims 10 % and
    identity registrations 5 % (general path only)."""
    signer = Signer(key_for("bench-mix"), CHAIN_ID)
    out = []
    for i in range(n):
        slot = i % 20
        if slot < 14:
            out.append(signer.transfer("ACME", address_of(f"to-{i % 97}"), 1 + i))
        elif slot < 16:
            out.append(signer.issue("ACME", address_of(f"to-{i % 97}"), 10**6 + i))
        elif slot < 17:
            out.append(signer.affirm_instruction(1 + i))
        elif slot < 19:
            out.append(signer.grant_claim(f"inv-{i}", "country", FAR_FUTURE_S, "FR"))
        else:
            out.append(signer.register_identity(f"inv-{i}", sorted(address_of(f"w-{i}-{j}") for j in range(2))))
    return out


def decode_all(raws: list[bytes], verify: bool = False) -> Callable[[], None]:
    def run() -> None:
        for raw in raws:
            decode_transaction(raw, chain_id=CHAIN_ID, verify_signature=verify)
    return run


def before(run: Callable[[], Any]) -> Callable[[], Any]:
    def wrapped() -> Any:
        with general_path_only():
            return run()
    return wrapped


class World:
    """A ledger with investors holding a KYC'd token, for admission and for realistic RPC documents."""

    def __init__(self, investors: int, block_txs: int) -> None:
        self.directory = tempfile.TemporaryDirectory()
        h = self.harness = LedgerHarness(str(Path(self.directory.name) / "store"))
        h.standard_setup()
        self.names = [f"inv-{i}" for i in range(investors)]
        for start in range(0, investors, 50):
            kyc = h.signer("kyc")
            txs = []
            for name in self.names[start:start + 50]:
                txs += [kyc.register_identity(name, [address_of(name)]), kyc.grant_claim(name, "kyc", FAR_FUTURE_S),
                        kyc.grant_claim(name, "country", FAR_FUTURE_S, "DE")]
            h.commit(*txs)
        h.token("ACME", rules={"required_claims": ["kyc"], "country_block": ["IR", "KP", "SY"], "check_sender": True})
        agent = h.signer("agent")
        for start in range(0, investors, 200):
            h.commit(*[agent.issue("ACME", address_of(n), 10**9) for n in self.names[start:start + 200]])
        self.block_height = 0
        for _ in range(2):
            txs = [h.signer(n).transfer("ACME", address_of(self.names[(i + 1) % investors]), 1 + i)
                   for i, n in enumerate(self.names[:block_txs])]
            h.commit(*txs)
            self.block_height = h.ledger.tip.height

    def pending_transfers(self, per_signer: int) -> list[bytes]:
        """Transfers valid at the tip, `per_signer` consecutive nonces each, in admission order."""
        base = {n: self.harness.ledger.next_nonce(address_of(n)) for n in self.names}
        out = []
        for k in range(per_signer):
            for i, n in enumerate(self.names):
                s = Signer(key_for(n), CHAIN_ID, base[n] + k)
                out.append(s.transfer("ACME", address_of(self.names[(i + 1 + k) % len(self.names)]), 1))
        return out

    def close(self) -> None:
        self.harness.close()
        self.directory.cleanup()


def admit_all(world: World, raws: list[bytes]) -> Callable[[], None]:
    from node.mempool.pool import Mempool

    def run() -> None:
        pool = Mempool(world.harness.ledger, txs_max=len(raws) + 1)
        try:
            for raw in raws:
                pool.add(raw)
        finally:
            pool.close()
    return run


# --- mode: codec ----------------------------------------------------------------------------------------


def mode_codec(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\n## codec: decode and check, no signature ({args.n} transactions a side)", flush=True)
    for name, raws in (("token.transfer", transfers(args.n)), ("mix", mix(args.n))):
        reps = max(1, 20_000 // len(raws))
        run = decode_all(raws)
        pairs(f"decode+check {name}", before(repeat(lambda _, run=run: run(), None, reps)),
              repeat(lambda _, run=run: run(), None, reps),
              len(raws) * reps, args.pairs, results)
    raws = transfers(min(args.n, 2000))
    values = [msgpack.unpackb(r, raw=False) for r in raws]

    def verify() -> None:
        for raw, value in zip(raws, values, strict=True):
            VerifyKey(value[1]).verify(_payload_of(raw), value[5])
    single("Ed25519 verification (pynacl), transfer", verify, len(raws), args.pairs, results)
    print("\n## admission: Mempool.add of transfers (decode, signature, nonce, dry run of the rules)", flush=True)
    world = World(investors=200, block_txs=200)
    try:
        raws = world.pending_transfers(per_signer=max(1, args.n // 200))
        pairs("Mempool.add, transfer", before(admit_all(world, raws)), admit_all(world, raws), len(raws), args.pairs,
              results)
    finally:
        world.close()


# --- mode: json -----------------------------------------------------------------------------------------


def rpc_documents(world: World) -> dict[str, Any]:
    from node.rpc.api import jsonable
    from node.service import Node

    ledger = world.harness.ledger
    txhex = world.pending_transfers(1)[0].hex()
    address = address_of(world.names[0]).hex()
    stub = SimpleNamespace(ledger=ledger, chain_id=CHAIN_ID)
    # Node.describe_block's document; the harness's blocks carry no real commit certificate, so
    # the certificate is one of four precommits of the usual sizes.
    raw, _ = queries.block(ledger, world.block_height)
    decoded = Block.decode(raw)
    header = decoded.header
    precommits = [{"validator": address_of(f"validator-{i}"), "signature": bytes([i]) * 64} for i in range(4)]
    block = jsonable({
        "height": header.height, "hash": decoded.hash, "chain_id": header.chain_id, "time_ms": header.time_ms,
        "previous_block_hash": header.previous_block_hash, "previous_state_root": header.previous_state_root,
        "txs_hash": header.txs_hash, "proposer": header.proposer, "validators_hash": header.validators_hash,
        "next_validators_hash": header.next_validators_hash,
        "txs": [Node._describe_tx(stub, i, t) for i, t in enumerate(decoded.txs)], "txs_raw": list(decoded.txs),
        "state_root": queries.state_root_at(ledger, world.block_height),
        "certificate": {"height": header.height, "round": 0, "block_id": decoded.hash, "precommits": precommits,
                        "encoded": b"\x00" * 420}})
    page = jsonable(queries.events(ledger, token="ACME", limit=100))
    balance = jsonable(queries.balance(ledger, "ACME", address_of(world.names[0])))

    def request(i: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": i, "method": method, "params": params}

    def response(i: int, result: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "result": result, "id": i}

    submit = request(1, "tx_submit", {"tx": txhex})
    return {
        "requests": {
            "tx_submit": json.dumps(submit).encode(),
            "tx_submit batch of 100": json.dumps([{**submit, "id": i} for i in range(100)]).encode(),
            "token_balance": json.dumps(request(2, "token_balance", {"token": "ACME", "address": address})).encode(),
            "events_query": json.dumps(request(3, "events_query", {"token": "ACME", "limit": 100,
                                                                   "after": page["next"]})).encode(),
            "block_get": json.dumps(request(4, "block_get", {"height": world.block_height})).encode(),
        },
        "responses": {
            "tx_submit": response(1, {"hash": "ab" * 32, "status": "pending"}),
            "token_balance": response(2, balance),
            f"events_query page ({len(page['events'])} events)": response(3, page),
            f"block_get ({len(block['txs'])} decoded txs)": response(4, block),
        },
    }


def mode_json(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    from node.rpc.protocol import decode_json, encode

    print("\n## json: the RPC layer's parse and write (json before, msgspec/orjson after)", flush=True)
    world = World(investors=200, block_txs=200)
    try:
        documents = rpc_documents(world)
    finally:
        world.close()
    for name, body in documents["requests"].items():
        reps = max(1, 2_000_000 // len(body))
        pairs(f"parse {name} ({len(body)} bytes)", repeat(decode_json, body, reps, fast=False),
              repeat(decode_json, body, reps), reps, args.pairs, results)
    for name, document in documents["responses"].items():
        size = len(encode(document, fast=False))
        reps = max(1, 4_000_000 // size)
        pairs(f"write {name} ({size} bytes)", repeat(encode, document, reps, fast=False), repeat(encode, document, reps),
              reps, args.pairs, results)


# --- mode: submit ---------------------------------------------------------------------------------------


class StubNode:
    """What `build_registry` needs of a node to answer tx_submit: `submit` is the mempool's `add`
    (the node's `submit` also notes the hash and queues the gossip: the same for every path)."""

    def __init__(self, ledger: Any, admit: Callable[[bytes], Any]) -> None:
        self.ledger = ledger
        self.mempool = None
        self.evidence = None
        self._admit = admit
        self.admitted = 0

    async def submit(self, raw: bytes) -> Any:
        admitted = self._admit(raw)
        self.admitted += 1
        return admitted


async def binary_submit(frame: bytes, node: StubNode, batch_max: int) -> bytes:
    """The prototype binary path: a msgpack array of [id, tx bytes] pairs in, a msgpack array of
    [id, hash] or [id, error code, message] out; the same admission and errors as tx_submit."""
    from node.mempool.pool import MempoolRefusal

    try:
        entries = msgpack.unpackb(frame, raw=False, max_bin_len=TX_BYTES_MAX, max_str_len=256,
                                  max_array_len=batch_max, max_map_len=0, max_ext_len=0)
    except Exception:
        return msgpack.packb([None, -32700, "Parse error"])
    out = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], bytes):
            out.append([None, -32600, "Invalid Request"])
            continue
        request_id, raw = entry
        try:
            admitted = await node.submit(raw)
        except MempoolRefusal as refusal:
            if refusal.outcome is not None:
                out.append([request_id, -32000, f"transaction rejected: {refusal.outcome.reason}"])
            else:
                out.append([request_id, -32005, f"mempool refused the transaction: {refusal.reason}: {refusal}"])
            continue
        out.append([request_id, admitted.hash])
    return msgpack.packb(out, use_bin_type=True)


async def lean_json_submit(body: bytes, node: StubNode, batch_max: int) -> bytes:
    """tx_submit in JSON without the dispatcher's per-call machinery (method lookup, schema
    validation of the params, the call's timeout, the result encoder, metrics): the JSON and hex
    part of the cost alone, to set beside the binary path. Not a server: no checks worth the name."""
    from node.mempool.pool import MempoolRefusal
    from node.rpc.protocol import MempoolRefused, encode, error_response, parse_message, success_response

    answers = []
    for item in parse_message(body, batch_max).items:
        try:
            admitted = await node.submit(bytes.fromhex(item.params["tx"]))  # type: ignore[union-attr, index]
        except MempoolRefusal as refusal:
            answers.append(encode(error_response(item.id, MempoolRefused(str(refusal)))))
            continue
        answers.append(encode(success_response(item.id, {"hash": admitted.hash.hex(), "status": "pending"})))
    return b"[" + b",".join(answers) + b"]"


def mode_submit(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    from node.mempool.pool import Mempool
    from node.rpc import dispatch, protocol
    from node.rpc.api import build_registry
    from node.rpc.dispatch import Dispatcher

    batch = args.batch
    print(f"\n## submit: server CPU per submitted transaction, batches of {batch} over a WebSocket", flush=True)
    world = World(investors=200, block_txs=10)
    try:
        raws = world.pending_transfers(per_signer=max(1, args.n // 200))
        decoded = {raw: decode_transaction(raw, chain_id=CHAIN_ID) for raw in raws}
        text_frames = [json.dumps([{"jsonrpc": "2.0", "id": i + j, "method": "tx_submit", "params": {"tx": raw.hex()}}
                                   for j, raw in enumerate(raws[i:i + batch])]) for i in range(0, len(raws), batch)]
        binary_frames = [msgpack.packb([[i + j, raw] for j, raw in enumerate(raws[i:i + batch])], use_bin_type=True)
                         for i in range(0, len(raws), batch)]
        print(f"    frame sizes: hex in JSON {statistics.mean(map(len, text_frames)):.0f} bytes, "
              f"msgpack {statistics.mean(map(len, binary_frames)):.0f} bytes per batch", flush=True)

        def ws_text(frames: list[str], node: StubNode, fast: bool) -> Callable[[], None]:
            dispatcher = Dispatcher(build_registry(node), batch_length_max=max(batch, 100))  # type: ignore[arg-type]
            dispatcher.on_answer = lambda method, code: None

            async def serve() -> None:
                for frame in frames:
                    data = frame.encode()  # what arrived on the socket
                    body = data.decode("utf-8").encode()  # aiohttp's TEXT message, then the server's bytes
                    response = await dispatcher.handle(body)
                    assert response is not None
                    response.decode().encode()  # offer() queues text; send_str encodes it

            def run() -> None:
                patches = [] if fast else [
                    mock.patch.object(protocol, "decode_json", functools.partial(protocol.decode_json, fast=False)),
                    mock.patch.object(dispatch, "encode", functools.partial(protocol.encode, fast=False))]
                for p in patches:
                    p.start()
                try:
                    asyncio.run(serve())
                finally:
                    for p in patches:
                        p.stop()
            return run

        def ws_lean(frames: list[str], node: StubNode) -> Callable[[], None]:
            async def serve() -> None:
                for frame in frames:
                    body = frame.encode().decode("utf-8").encode()
                    (await lean_json_submit(body, node, max(batch, 100))).decode().encode()

            return lambda: asyncio.run(serve())

        def ws_binary(frames: list[bytes], node: StubNode) -> Callable[[], None]:
            async def serve() -> None:
                for frame in frames:
                    await binary_submit(frame, node, max(batch, 100))

            return lambda: asyncio.run(serve())

        def node_for(admission: bool) -> StubNode:
            if not admission:
                return StubNode(world.harness.ledger, decoded.__getitem__)
            pool = Mempool(world.harness.ledger, txs_max=len(raws) + 1)
            return StubNode(world.harness.ledger, pool.add)

        for admission in (False, True):
            def fresh(make: Callable[[StubNode], Callable[[], None]], admission: bool = admission) -> Callable[[], None]:
                def run() -> None:
                    node = node_for(admission)
                    try:
                        make(node)()
                    finally:
                        if admission:
                            node._admit.__self__.close()  # type: ignore[attr-defined]
                    assert node.admitted == len(raws), (node.admitted, len(raws))  # every one admitted
                return run

            label = "with admission" if admission else "protocol only (no admission)"
            old = fresh(lambda node: ws_text(text_frames, node, fast=False))
            new = fresh(lambda node: ws_text(text_frames, node, fast=True))
            lean = fresh(lambda node: ws_lean(text_frames, node))
            binary = fresh(lambda node: ws_binary(binary_frames, node))
            pairs(f"tx_submit hex in JSON, json -> msgspec/orjson, {label}", old, new, len(raws), args.pairs, results)
            pairs(f"hex in JSON (msgspec/orjson) -> msgpack frames, {label}", new, binary, len(raws), args.pairs, results)
            if not admission:
                pairs(f"hex in JSON: the dispatcher -> without its per-call machinery, {label}", new, lean, len(raws),
                      args.pairs, results)
                pairs(f"without the machinery: hex in JSON -> msgpack frames, {label}", lean, binary, len(raws),
                      args.pairs, results)
    finally:
        world.close()


# --- main -----------------------------------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="codec,json,submit")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--n", type=int, default=2000, help="transactions per side and pair")
    parser.add_argument("--batch", type=int, default=100, help="tx_submit per WebSocket message (submit mode)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(list(argv) if argv is not None else None)
    report: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                              "command": " ".join(sys.argv), "results": []}
    print(f"machine: {report['machine']}", flush=True)
    for mode in args.mode.split(","):
        {"codec": mode_codec, "json": mode_json, "submit": mode_submit}[mode](args, report["results"])
    report["loadavg_end"] = loadavg()
    print(f"\nload average at the start {report['machine']['loadavg_start']}, at the end {report['loadavg_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
