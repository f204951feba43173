"""An observer is read-only: every JSON-RPC method declared `write=True` answers the documented
read-only error (-32002, `{"method": name}`; docs/RPC.md) and changes nothing.

The node is a real `Node` built from a generated testnet's observer config (never started: the
dispatcher it serves is called directly), so the check covers the whole wiring from the config's
mode to the dispatcher, and it iterates over the node's own method registry: a write method added
later is covered without touching this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.client import Signer
from ledger.testing import address_of
from node.rpc.protocol import ErrorCode
from node.service import Node
from node.setup.config import load_config
from node.setup.keys import load_key
from node.setup.netgen import generate


def node_of(directory: Path, name: str) -> Node:
    return Node(load_config(directory / f"{name}.toml"))


def close(node: Node) -> None:
    node.mempool.close()
    node.ledger.close()


@pytest.fixture
def testnet(tmp_path: Path) -> Path:
    generate(tmp_path, validators=1, observers=1, members=0)  # the admin key grants roles itself
    return tmp_path


def signed_tx(directory: Path, node: Node) -> str:
    """A transaction a validator admits: the genesis administrator appoints a claim issuer."""
    admin = Signer(load_key(directory / "keys" / "admin.json"), node.chain_id)
    return admin.grant_role("claim_issuer", address_of("kyc")).hex()


async def call(node: Node, method: str, params: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 7}
    if params is not None:
        request["params"] = params
    answer = await node.rpc.dispatcher.handle(json.dumps(request).encode())
    assert answer is not None
    return json.loads(answer)


async def test_every_write_method_is_refused_on_an_observer(testnet: Path) -> None:
    observer = node_of(testnet, "observer-0")
    try:
        assert observer.observer
        write_methods = [m.name for m in observer.rpc.registry if m.write]
        assert "tx_submit" in write_methods  # at least one, so the loop below cannot pass vacuously
        tip = observer.ledger.tip
        for name in write_methods:
            # with params a validator would accept (tx_submit), with none, and with nonsense:
            # the read-only refusal comes first whatever the params
            params_tried: list[Any] = [None, {"no_such_param": 1}]
            if name == "tx_submit":
                params_tried.insert(0, {"tx": signed_tx(testnet, observer)})
            for params in params_tried:
                reply = await call(observer, name, params)
                assert "result" not in reply, f"observer answered {name}({params}): {reply}"
                assert reply["error"] == {"code": ErrorCode.READ_ONLY, "message": f"read-only node: {name} changes state",
                                          "data": {"method": name}}, name
        assert len(observer.mempool) == 0 and observer.ledger.tip == tip
        # reads still work
        assert "result" in await call(observer, "chain_status")
    finally:
        close(observer)


async def test_a_validator_admits_the_same_submission(testnet: Path) -> None:
    """The transaction the observer refused is one a validator admits: the refusal is read-only
    mode, not a bad transaction."""
    validator = node_of(testnet, "validator-0")
    try:
        assert not validator.observer
        reply = await call(validator, "tx_submit", {"tx": signed_tx(testnet, validator)})
        assert reply["result"]["status"] == "pending" and len(validator.mempool) == 1
    finally:
        close(validator)


async def test_the_observer_serves_the_same_methods_as_a_validator(testnet: Path) -> None:
    """Read-only mode refuses write methods; it does not hide them (nor their `write` flag)."""
    observer, validator = node_of(testnet, "observer-0"), None
    try:
        validator = node_of(testnet, "validator-0")
        declared = {m.name: m.write for m in validator.rpc.registry}
        assert {m.name: m.write for m in observer.rpc.registry} == declared
        assert validator.rpc.dispatcher.read_only is False and observer.rpc.dispatcher.read_only is True
    finally:
        close(observer)
        if validator is not None:
            close(validator)
