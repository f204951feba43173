"""The network as operators run it: one `secledger start` process per node, faults by signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from .conftest import SECLEDGER, height, rpc, wait_until


def state_root(url: str, at: int) -> str:
    return rpc(url, "block_get", height=at + 1)["result"]["previous_state_root"]


def test_kill_9_validator_others_go_on_and_it_catches_up(process_network):
    net = process_network
    net.start_all()
    validators = [f"validator-{i}" for i in range(4)]
    wait_until(lambda: all(height(net.url(v)) >= 2 for v in validators), 60, "the network to start")
    net.signal("validator-2", signal.SIGKILL)
    before = height(net.url("validator-0"))
    wait_until(lambda: min(height(net.url(v)) for v in ("validator-0", "validator-1", "validator-3")) >= before + 3,
               60, "three validators to commit without the fourth")
    net.start("validator-2")
    target = height(net.url("validator-0"))
    wait_until(lambda: height(net.url("validator-2")) >= target + 1, 60, "the restarted validator to catch up")
    assert state_root(net.url("validator-2"), target) == state_root(net.url("validator-0"), target)
    wait_until(lambda: height(net.url("observer-0")) >= target, 60, "the observer to follow")
    assert state_root(net.url("observer-0"), target - 1) == state_root(net.url("validator-0"), target - 1)


def test_paused_validator_resyncs_without_restart(process_network):
    net = process_network
    net.start_all()
    wait_until(lambda: height(net.url("validator-1")) >= 2, 60, "the network to start")
    net.signal("validator-1", signal.SIGSTOP)
    paused_at = height(net.url("validator-0"))
    wait_until(lambda: height(net.url("validator-0")) >= paused_at + 8, 60, "the others to move on")
    net.signal("validator-1", signal.SIGCONT)
    target = height(net.url("validator-0"))
    wait_until(lambda: height(net.url("validator-1")) >= target + 2, 60, "the paused validator to catch up")
    assert net.processes["validator-1"].poll() is None  # same process: no restart was needed


def test_secledger_up_runs_a_network_and_stops_on_ctrl_c(tmp_path):
    from node.testing import free_port_base

    base = free_port_base(10)
    process = subprocess.Popen([SECLEDGER, "up", "--dir", str(tmp_path / "net"), "--port-base", str(base)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{base + 1}/"
        wait_until(lambda: height(url) >= 2, 60, "secledger up to commit blocks")
        observer_url = f"http://127.0.0.1:{base + 9}/"
        wait_until(lambda: height(observer_url) >= 2, 60, "the observer to follow")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "rpc http://127.0.0.1:" in output and "network stopped" in output
    time.sleep(0.2)
    assert height(f"http://127.0.0.1:{base + 1}/") == -1  # every node is gone


def run(*args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([SECLEDGER, *args], capture_output=True, text=True, timeout=60)
    if expect_ok:
        assert result.returncode == 0, result.stderr
    return result


def test_readme_first_five_minutes(process_network, tmp_path):
    """The walk-through the README gives a newcomer, command by command."""
    import json

    net = process_network
    net.start_all()
    wait_until(lambda: height(net.url("observer-0")) >= 1, 60, "the network to start")
    rpc_url = net.url("validator-0")
    keys = tmp_path / "keys"
    admin = str(net.directory / "keys" / "admin.json")
    for name in ("kyc", "issuer", "agent", "alice", "bob"):
        run("keys", "new", str(keys / f"{name}.json"))
    k = {name: str(keys / f"{name}.json") for name in ("kyc", "issuer", "agent", "alice", "bob")}
    run("tx", "grant-role", "--role", "claim_issuer", "--account", k["kyc"], "--key", admin, "--rpc", rpc_url)
    run("tx", "grant-role", "--role", "token_issuer", "--account", k["issuer"], "--key", admin, "--rpc", rpc_url)
    for investor, country in (("alice", "US"), ("bob", "KP")):
        run("tx", "register-identity", "--identity", investor, "--wallet", k[investor], "--key", k["kyc"],
            "--rpc", rpc_url)
        run("tx", "grant-claim", "--identity", investor, "--topic", "kyc", "--expires-at", "4102444800",
            "--key", k["kyc"], "--rpc", rpc_url)
        run("tx", "grant-claim", "--identity", investor, "--topic", "country", "--value", country,
            "--expires-at", "4102444800", "--key", k["kyc"], "--rpc", rpc_url)
    run("tx", "create-token", "--symbol", "ACME", "--name", "Acme Corp common", "--rules",
        '{"required_claims": ["kyc"], "country_block": ["KP"]}', "--agent", f"{k['agent']}=supply,freeze",
        "--key", k["issuer"], "--rpc", rpc_url)
    run("tx", "issue", "--token", "ACME", "--to", k["alice"], "--amount", "1000", "--key", k["agent"],
        "--rpc", rpc_url)
    refused = run("tx", "transfer", "--token", "ACME", "--to", k["bob"], "--amount", "10", "--key", k["alice"],
                  "--rpc", rpc_url, expect_ok=False)
    assert refused.returncode != 0 and "receiver_country_blocked:KP" in refused.stderr
    check = json.loads(run("query", "compliance", "ACME", k["alice"], k["bob"], "10", "--rpc", rpc_url).stdout)
    assert check == {"ok": False, "code": "0x57", "reason": "receiver_country_blocked:KP"}
    top = height(rpc_url)
    wait_until(lambda: height(net.url("observer-0")) >= top, 30, "the observer to catch up")
    holders = json.loads(run("query", "holders", "ACME", "--rpc", net.url("observer-0")).stdout)
    assert holders["holders"] == [{"identity": "alice", "balance": "1000"}]


def test_start_with_a_bad_config_names_file_and_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[node]\nmoniker = "x"\nmode = "validator"\nhome = "d"\ngenesis_file = "g.toml"\n'
                      'node_key_file = "k.json"\n[p2p]\nlisten_addr = "127.0.0.1:1"\n')
    result = subprocess.run([sys.executable, "-m", "cli.main", "start", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "bad.toml" in result.stderr and "listen_addr" in result.stderr


def test_a_node_refuses_a_store_of_another_chain(process_network, tmp_path):
    """Pointing a node at another chain's data directory is a clear error, not a silent fork."""
    import shutil

    net = process_network
    net.start("validator-0")
    wait_until(lambda: height(net.url("validator-0")) >= 0, 30, "validator-0 to start")
    net.signal("validator-0", signal.SIGTERM)
    net.processes["validator-0"].wait(10)
    other = tmp_path / "other"
    subprocess.run([SECLEDGER, "testnet", "--validators", "1", "--observers", "0", "--out", str(other),
                    "--chain-id", "another-chain", "--port-base", "1"], check=True, capture_output=True)
    (other / "data").mkdir(exist_ok=True)
    shutil.copytree(net.directory / "data" / "validator-0", other / "data" / "validator-0")
    result = subprocess.run([SECLEDGER, "start", "--config", str(other / "validator-0.toml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "another genesis" in result.stderr


def test_a_validator_killed_between_saving_a_signature_and_sending_it_signs_nothing_conflicting(process_network):
    """The double-sign guard saved what validator-2 signed; the process dies before the message
    leaves. Restarted, it must not sign anything else for that height, round and step (no honest
    node may hold evidence against it), and it must take part again."""
    net = process_network
    for name in net.nodes:
        net.start(name, environment={"SECLEDGER_TEST_FAULT": "kill_before_send:12"} if name == "validator-2" else None)
    wait_until(lambda: net.processes["validator-2"].poll() is not None, 60, "validator-2 to reach its fault point")
    assert net.processes["validator-2"].returncode == -signal.SIGKILL
    net.start("validator-2")
    target = height(net.url("validator-0")) + 4
    validators = [f"validator-{i}" for i in range(4)]
    wait_until(lambda: all(height(net.url(v)) >= target for v in validators), 60,
               "the restarted validator and the others to commit four more heights")
    for name in [*validators, "observer-0"]:
        assert rpc(net.url(name), "evidence_list")["result"] == [], name
    assert state_root(net.url("validator-2"), target - 1) == state_root(net.url("validator-0"), target - 1)
