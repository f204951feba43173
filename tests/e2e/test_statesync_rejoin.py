"""A wiped validator rejoins a running network of real `secledger` processes by state sync.

Four validators take a snapshot every 3 blocks. The consortium (`secledger testnet`'s single member,
deciding alone) changes validator-0's power, so the set is no longer the genesis set, and transfers
commit. Validator-3 is stopped and its data directory wiped. Restarted with `[statesync] enabled`
and no trust root, it refuses every snapshot (`untrusted-set`); restarted with a trust root read
from validator-0 (`secledger query block H`, a height before the change took effect), it walks the
certified headers across the change, installs a snapshot, answers the documented error for history
before it, and follows the chain to the same state roots as the others.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

from ledger.client import Action, Signer
from ledger.testing import FAR_FUTURE_S, key_for
from node.setup.config import load_config, render_config
from node.setup.keys import load_key

from .conftest import SECLEDGER, ProcessNetwork, height, rpc, wait_until

SNAPSHOT_INTERVAL = 3
JOINER = "validator-3"


def configure(net: ProcessNetwork, name: str, **statesync: object) -> Path:
    path = Path(net.nodes[name]["config"])
    config = load_config(path)
    config = dataclasses.replace(
        config, statesync=dataclasses.replace(config.statesync, **statesync),
        consensus=dataclasses.replace(config.consensus, empty_block_interval_ms=300))
    path.write_text(render_config(config, relative_to=path.parent))
    return config.node.home


def submit_all(url: str, batch: list[bytes]) -> list[dict]:
    hashes = []
    for raw in batch:
        reply = rpc(url, "tx_submit", tx=raw.hex())
        assert "result" in reply, reply
        hashes.append(reply["result"]["hash"])
    receipts = []
    for tx_hash in hashes:
        done = rpc(url, "tx_wait", hash=tx_hash, timeout_ms=20_000)["result"]
        assert done["status"] == "committed" and done["code"] == "0x51", done
        receipts.append(done)
    return receipts


def stop(net: ProcessNetwork, name: str) -> None:
    net.signal(name, signal.SIGTERM)
    net.processes[name].wait(15)


def state_root(url: str, at: int) -> str:
    return rpc(url, "block_get", height=at)["result"]["state_root"]


def test_a_wiped_validator_rejoins_by_state_sync_across_a_validator_set_change(tmp_path):
    net = ProcessNetwork(tmp_path / "net", validators=4, observers=0)
    try:
        homes = {name: configure(net, name, snapshot_interval=SNAPSHOT_INTERVAL) for name in net.nodes}
        net.start_all()
        url = net.url("validator-0")
        wait_until(lambda: all(height(net.url(n)) >= 1 for n in net.nodes), 30, "the network to start")
        chain_id = rpc(url, "chain_status")["result"]["chain_id"]
        keys = net.directory / "keys"

        # the set changes (validator-0: power 10 -> 12) and transfers commit
        member = Signer(load_key(keys / "admin.json"), chain_id)
        kyc, issuer, alice, bob = (Signer(key_for(f"rejoin-{n}"), chain_id) for n in ("kyc", "issuer", "alice", "bob"))
        v0 = bytes(load_key(keys / "validator-0.validator.json").verify_key)
        top = height(url)
        decided = submit_all(url, [
            member.propose([Action.set_validator_power(v0, 12)], expires_at_height=top + 1000),
            member.propose([Action.grant_role("claim_issuer", kyc.address),
                            Action.grant_role("token_issuer", issuer.address)], expires_at_height=top + 1000)])
        changed_at = decided[0]["height"]  # the set of changed_at + 2 on is not the genesis set
        submit_all(url, [raw for who, signer in (("alice", alice), ("bob", bob)) for raw in (
            kyc.register_identity(who, [signer.address]), kyc.grant_claim(who, "kyc", FAR_FUTURE_S))])
        submit_all(url, [issuer.create_token("ACME", "Acme", rules={"required_claims": ["kyc"]},
                                             agents={issuer.address: ["supply"]}),
                         issuer.issue("ACME", alice.address, 1000)])
        submit_all(url, [alice.transfer("ACME", bob.address, amount) for amount in (1, 2, 3, 4, 5)])

        # validator-3 stops and loses its data; the others go on past a snapshot of the changed set
        stop(net, JOINER)
        shutil.rmtree(homes[JOINER])
        first_changed_snapshot = -(-(changed_at + 1) // SNAPSHOT_INTERVAL) * SNAPSHOT_INTERVAL  # its h + 1 >= +2
        wait_until(lambda: height(url) >= first_changed_snapshot + 2, 30, "a snapshot of the changed set")
        assert rpc(url, "validators_list")["result"] != rpc(url, "validators_list", height=1)["result"]

        # without a trust root: refused, as the genesis set no longer signs as it did
        configure(net, JOINER, enabled=True)
        net.start(JOINER)
        wait_until(lambda: "(untrusted-set)" in net.log(JOINER), 30, "the snapshot to be refused")
        stop(net, JOINER)
        assert height(url) > 0 and "installed snapshot" not in net.log(JOINER)

        # with a trust root read from validator-0 by the operator: before the change took effect
        trusted = json.loads(subprocess.run([SECLEDGER, "query", "block", str(changed_at), "--rpc", url],
                                            capture_output=True, text=True, check=True, timeout=30).stdout)
        configure(net, JOINER, enabled=True, trust_height=changed_at, trust_hash=trusted["hash"])
        net.start(JOINER)
        joiner = net.url(JOINER)
        wait_until(lambda: "installed snapshot" in net.log(JOINER), 30, "validator-3 to install a snapshot")
        log = net.log(JOINER)
        snapshot = int(re.search(r"installed snapshot at height (\d+)", log).group(1))
        assert snapshot >= first_changed_snapshot and snapshot % SNAPSHOT_INTERVAL == 0
        assert f"from the trusted height {changed_at}" in log  # the headers were walked forward across the change

        # history before the snapshot: the documented named error, not an answer
        error = rpc(joiner, "block_get", height=1)["error"]
        assert "before this node's history" in error["message"] and "state sync" in error["message"], error
        error = rpc(joiner, "block_get", height=snapshot)["error"]
        assert f"starts at height {snapshot + 1}" in error["message"], error

        # it follows the chain: its height climbs past the others' and its roots are theirs
        target = height(url) + 3
        wait_until(lambda: height(joiner) >= target, 30, "validator-3 to follow the chain")
        common = min(height(joiner), height(url)) - 1
        assert common > snapshot
        for at in (snapshot + 1, common):
            assert state_root(joiner, at) == state_root(url, at), at
        balance = {"token": "ACME", "address": bob.address.hex()}
        assert rpc(joiner, "token_balance", **balance)["result"] == rpc(url, "token_balance", **balance)["result"]
        assert net.processes[JOINER].poll() is None
    finally:
        net.stop_all()
