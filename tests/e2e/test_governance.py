"""The consortium changes its validator set on a running network of real processes, under load.

Four members decide by 2/3. A fifth node starts with only its keys and the genesis; three members
add it, and it votes from two blocks after the decision. Validator-0 is removed and keeps running
without voting; validator-1 rotates its consensus key. Meanwhile transfers flow. At the end every
node holds the same blocks and roots, nothing committed is lost, and the regulator's check holds:
each certificate verifies against the set of its height, derived from genesis and the decided
changes alone, trusting no node.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from pathlib import Path

from consensus.certificate import CommitCertificate
from consensus.validators import Validator, ValidatorSet
from ledger.client import Action, Signer
from ledger.testing import FAR_FUTURE_S
from node.setup.config import Address, Peer, load_config, render_config
from node.setup.keys import load_key, save_key
from node.testing import free_port_base

from .conftest import SECLEDGER, ProcessNetwork, height, rpc, wait_until


def cli(*args: str) -> dict:
    out = subprocess.run([SECLEDGER, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (args, out.stderr)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def key_hex(path: Path) -> str:
    return bytes(load_key(path).verify_key).hex()


def submit(url: str, raw: bytes, *, wait: bool = True) -> dict:
    reply = rpc(url, "tx_submit", tx=raw.hex())
    assert "result" in reply, reply
    if wait:
        done = rpc(url, "tx_wait", hash=reply["result"]["hash"], timeout_ms=20_000)
        assert done["result"]["status"] == "committed", done
        assert done["result"]["code"] == "0x51", done
    return reply["result"]


class Load(threading.Thread):
    """Transfers of one unit, alice to bob and back, as fast as the chain takes them."""

    def __init__(self, url: str, alice: Signer, bob: Signer) -> None:
        super().__init__(daemon=True)
        self.url, self.alice, self.bob = url, alice, bob
        self.accepted = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            raw = self.alice.transfer("ACME", self.bob.address, 1)
            try:
                submit(self.url, raw, wait=False)
                self.accepted += 1
            except (AssertionError, OSError):
                self.alice.nonce -= 1  # not taken: the next one reuses the nonce
            time.sleep(0.05)


def fifth_node(net: ProcessNetwork) -> tuple[str, Path]:
    """validator-4: its own keys and ports, the shared genesis, the others as peers."""
    keys = net.directory / "keys"
    for kind in ("validator", "node"):
        save_key(keys / f"validator-4.{kind}.json", load_key_new())
    template = load_config(net.nodes["validator-3"]["config"])
    base = free_port_base(2)
    v3_peer = Peer(key_hex(keys / "validator-3.node.json"), template.p2p.listen)
    config = dataclasses.replace(
        template,
        node=dataclasses.replace(template.node, moniker="validator-4", home=net.directory / "data" / "validator-4",
                                 node_key_file=keys / "validator-4.node.json",
                                 validator_key_file=keys / "validator-4.validator.json",
                                 next_validator_key_file=None),
        p2p=dataclasses.replace(template.p2p, listen=Address("127.0.0.1", base), peers=(*template.p2p.peers, v3_peer)),
        rpc=dataclasses.replace(template.rpc, listen=Address("127.0.0.1", base + 1)))
    path = net.directory / "validator-4.toml"
    path.write_text(render_config(config, relative_to=net.directory))
    net.nodes["validator-4"] = {"name": "validator-4", "mode": "validator", "config": str(path),
                                "rpc": f"http://127.0.0.1:{base + 1}/"}
    return f"127.0.0.1:{base}", path


def load_key_new():
    from ledger.client import new_key

    return new_key()


def allow_on_observer(net: ProcessNetwork, node_key: str) -> None:
    """The regulator keeps a link to validator-0's node whether it votes or not (a follower)."""
    path = Path(net.nodes["observer-0"]["config"])
    config = load_config(path)
    config = dataclasses.replace(config, p2p=dataclasses.replace(config.p2p, allowed_keys=(node_key,)))
    path.write_text(render_config(config, relative_to=path.parent))


def decided_height(url: str, proposal_id: int) -> int:
    proposal = rpc(url, "gov_proposal", id=proposal_id)["result"]
    assert proposal["status"] == "executed", proposal
    return proposal["closed_height"]


def certificate_signers(url: str, at: int) -> set[bytes]:
    block = rpc(url, "block_get", height=at)["result"]
    return {bytes.fromhex(p["validator"]) for p in block["certificate"]["precommits"]}


def test_members_add_remove_and_rotate_validators_under_load(tmp_path):
    net = ProcessNetwork(tmp_path / "net", members=4)
    keys = net.directory / "keys"
    members = [keys / f"member-{i}.json" for i in range(4)]
    v0_node_key = key_hex(keys / "validator-0.node.json")
    allow_on_observer(net, v0_node_key)
    address4, _ = fifth_node(net)
    try:
        for name in net.nodes:
            net.start(name)
        url = net.url("observer-0")
        v1url = net.url("validator-1")
        wait_until(lambda: height(v1url) >= 2, 60, "the network to start")
        chain_id = rpc(v1url, "chain_status")["result"]["chain_id"]

        def signer(name: str) -> Signer:
            key = load_key(keys / f"{name}.json") if (keys / f"{name}.json").exists() else load_key_new()
            nonce = rpc(v1url, "account_nonce", address=bytes(key.verify_key).hex())["result"]["next_nonce"]
            return Signer(key, chain_id, nonce)

        # Roles by governance: member-0 proposes, members 1 and 2 approve (3 of 4 >= 2/3).
        kyc, issuer, alice, bob = (signer(n) for n in ("kyc", "issuer", "alice", "bob"))
        top = height(v1url)
        m = [signer(f"member-{i}") for i in range(4)]
        submit(v1url, m[0].propose([Action.grant_role("claim_issuer", kyc.address),
                                    Action.grant_role("token_issuer", issuer.address)], expires_at_height=top + 500))
        roles = rpc(v1url, "gov_proposals", status="open")["result"]["proposals"][0]["id"]
        for i in (1, 2):
            submit(v1url, m[i].approve(roles))
        for name, who in (("alice", alice), ("bob", bob)):
            submit(v1url, kyc.register_identity(name, [who.address]))
            submit(v1url, kyc.grant_claim(name, "kyc", FAR_FUTURE_S))
        submit(v1url, issuer.create_token("ACME", "Acme", decimals=0, paused=False, rules={"required_claims": ["kyc"]},
                                          agents={issuer.address: ["supply"]}))
        submit(v1url, issuer.issue("ACME", alice.address, 1_000_000))
        load = Load(net.url("validator-2"), alice, bob)
        load.start()
        start_height = height(v1url)

        # 1. add validator-4 (already running: refused by every peer until the change is decided)
        added = cli("gov", "propose", "add-validator", "--consensus-key", str(keys / "validator-4.validator.json"),
                    "--node-key", str(keys / "validator-4.node.json"), "--power", "10", "--address", address4,
                    "--key", str(members[0]), "--rpc", v1url)["proposal"]
        for i in (1, 2):
            cli("gov", "approve", str(added), "--key", str(members[i]), "--rpc", v1url)
        h_add = decided_height(v1url, added)
        v4 = bytes(load_key(keys / "validator-4.validator.json").verify_key)
        wait_until(lambda: height(net.url("validator-4")) >= h_add + 2, 60, "validator-4 to sync")
        wait_until(lambda: any(v4 in certificate_signers(url, h) for h in range(h_add + 2, height(url) + 1)), 60,
                   "validator-4's precommits in certificates")

        # 2. remove validator-0: its process keeps running, without voting
        removed = cli("gov", "propose", "remove-validator", "--consensus-key", str(keys / "validator-0.validator.json"),
                      "--key", str(members[1]), "--rpc", v1url)["proposal"]
        for i in (2, 3):
            cli("gov", "approve", str(removed), "--key", str(members[i]), "--rpc", v1url)
        h_remove = decided_height(v1url, removed)

        # 3. rotate validator-1's consensus key (its node key stays)
        save_key(keys / "validator-1.next.validator.json", load_key_new())
        rotated = cli("gov", "propose", "rotate-key", "--consensus-key", str(keys / "validator-1.validator.json"),
                      "--new-consensus-key", str(keys / "validator-1.next.validator.json"),
                      "--new-node-key", str(keys / "validator-1.node.json"),
                      "--key", str(members[2]), "--rpc", v1url)["proposal"]
        for i in (3, 0):
            cli("gov", "approve", str(rotated), "--key", str(members[i]), "--rpc", v1url)
        h_rotate = decided_height(v1url, rotated)
        v1_new = bytes(load_key(keys / "validator-1.next.validator.json").verify_key)
        wait_until(lambda: height(url) >= h_rotate + 6, 60, "the chain to go on after the rotation")
        wait_until(lambda: any(v1_new in certificate_signers(url, h) for h in range(h_rotate + 2, height(url) + 1)),
                   60, "validator-1's new key in certificates")

        load.stop.set()
        load.join(10)
        # nothing the load had accepted is lost: every transfer commits, in nonce order
        wait_until(lambda: int(rpc(v1url, "account_nonce", address=alice.address.hex())["result"]["next_nonce"])
                   == alice.nonce, 60, "every accepted transfer to commit")
        assert load.accepted > 20

        # every node, validator-0 too, holds the same blocks and roots
        end = min(height(net.url(n)) for n in net.nodes) - 1
        assert end > h_rotate + 2
        for name in net.nodes:
            assert net.processes[name].poll() is None, name
            assert rpc(net.url(name), "block_get", height=end)["result"]["hash"] == \
                rpc(url, "block_get", height=end)["result"]["hash"], name
        assert "not in the validator set from height" in net.log("validator-0")

        # the regulator's check, from genesis: each certificate against the set of its height
        genesis = [(bytes(load_key(keys / f"validator-{i}.validator.json").verify_key), 10) for i in range(4)]
        v0, v1_old = genesis[0][0], genesis[1][0]
        previous_time = None
        for at in range(1, end + 1):
            members_now = dict(genesis)
            if at >= h_add + 2:
                members_now[v4] = 10
            if at >= h_remove + 2:
                members_now.pop(v0)
            if at >= h_rotate + 2:
                members_now[v1_new] = members_now.pop(v1_old)
            block = rpc(url, "block_get", height=at)["result"]
            cert = CommitCertificate.decode(bytes.fromhex(block["certificate"]["encoded"]))
            cert.verify(chain_id, ValidatorSet(Validator(k, p) for k, p in members_now.items()),
                        height=at, block_id=bytes.fromhex(block["hash"]))
            if at > start_height and previous_time is not None:
                assert block["time_ms"] - previous_time < 10_000, f"the chain stalled before height {at}"
            previous_time = block["time_ms"]
    finally:
        net.stop_all()


def test_governance_walk_through(process_network, tmp_path):
    """docs/GOVERNANCE.md's walk-through, command by command, on `make run`'s kind of network (one
    member holding keys/admin.json, deciding alone); only the ports are this run's."""
    import re

    net = process_network
    net.start_all()
    v0 = net.url("validator-0")
    wait_until(lambda: height(v0) >= 1, 60, "the network to start")
    keys = net.directory / "keys"
    cli("keys", "new", str(keys / "validator-4.validator.json"))
    cli("keys", "new", str(keys / "validator-4.node.json"))
    v3 = load_config(net.nodes["validator-3"]["config"])
    base = free_port_base(3)
    text = Path(net.nodes["validator-3"]["config"]).read_text().replace("validator-3", "validator-4")
    text = re.sub(f':{v3.p2p.listen.port}"', f':{base}"', text)
    text = re.sub(f':{v3.rpc.listen.port}"', f':{base + 1}"', text)
    text = re.sub(f':{v3.metrics.listen.port}"', f':{base + 2}"', text)
    (net.directory / "validator-4.toml").write_text(text)
    net.nodes["validator-4"] = {"name": "validator-4", "mode": "validator",
                                "config": str(net.directory / "validator-4.toml"), "rpc": f"http://127.0.0.1:{base + 1}/"}
    net.start("validator-4")

    result = cli("gov", "propose", "add-validator", "--consensus-key", str(keys / "validator-4.validator.json"),
                 "--node-key", str(keys / "validator-4.node.json"), "--power", "10",
                 "--address", f"127.0.0.1:{base}", "--key", str(keys / "admin.json"), "--rpc", v0)
    assert result["status"] == "committed" and result["proposal_status"] == "executed", result
    shown = cli("gov", "show", str(result["proposal"]), "--rpc", v0)
    h = shown["closed_height"]
    assert h == result["height"]
    validators = cli("query", "validators", "--height", str(h + 2), "--rpc", v0)
    new_key = key_hex(keys / "validator-4.validator.json")
    assert len(validators) == 5 and new_key in {v["validator_key"] for v in validators}
    assert new_key not in {v["validator_key"] for v in cli("query", "validators", "--height", str(h + 1), "--rpc", v0)}
    wait_until(lambda: height(net.url("validator-4")) >= h + 3, 60, "validator-4 to sync")
    status = cli("query", "status", "--rpc", net.url("validator-4"))
    assert status["height"] >= h + 3
    four = bytes.fromhex(new_key)
    wait_until(lambda: any(four in certificate_signers(v0, at) for at in range(h + 2, height(v0) + 1)), 60,
               "validator-4 to vote")
    assert all(four not in certificate_signers(v0, at) for at in range(1, h + 2))
