"""`secledger init`, every `secledger genesis` subcommand and `secledger testnet --hosts`, in
process: what they write, and their one-line errors with the right exit code."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cli.main import main
from ledger import Genesis
from node.setup.config import Address, load_config
from node.setup.genesis_file import load_genesis
from node.setup.keys import load_key


def run(capsys, *argv: str) -> tuple[int, object, str]:
    """(exit code, parsed stdout or None, stderr) of one command; usage errors included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    try:
        parsed = json.loads(out) if out.strip() else None
    except ValueError:
        parsed = out
    return code, parsed, err


def fails(capsys, code: int, message: str, *argv: str) -> str:
    got, out, err = run(capsys, *argv)
    assert got == code, (argv, got, err)
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def public(path: Path) -> str:
    return bytes(load_key(path).verify_key).hex()


def init(capsys, home: Path, name: str, address: str = "10.0.0.1:26600", *extra: str) -> dict:
    code, out, err = run(capsys, "init", "--home", home, "--moniker", name, "--listen", "0.0.0.0:26600",
                         "--external-address", address, *extra)
    assert code == 0, err
    return out


# --- secledger init ----------------------------------------------------------------------------------------


def test_init_writes_keys_config_and_card_of_a_validator(tmp_path, capsys):
    home = tmp_path / "bank-a"
    out = init(capsys, home, "bank-a", "bank-a.example.com:26600")
    for key in ("node.json", "validator.json"):
        assert stat.S_IMODE((home / "keys" / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    config = load_config(home / "config.toml", check_files=False)
    assert config.node.moniker == "bank-a" and config.node.mode == "validator"
    assert config.node.home == home.resolve() / "data" and config.node.genesis_file == home.resolve() / "genesis.toml"
    assert config.p2p.listen == Address("0.0.0.0", 26600)
    assert config.p2p.external_address == Address("bank-a.example.com", 26600)
    assert config.rpc.listen == Address("127.0.0.1", 26601)  # loopback, where the CLI asks by default
    card = json.loads((home / "card.json").read_text())
    assert card == out["card"] == {"format": "secledger-card/1", "name": "bank-a", "mode": "validator",
                                   "consensus_key": public(home / "keys" / "validator.json"),
                                   "node_key": public(home / "keys" / "node.json"),
                                   "address": "bank-a.example.com:26600"}
    assert "seed" not in (home / "card.json").read_text()


def test_init_of_an_observer(tmp_path, capsys):
    home = tmp_path / "regulator"
    code, out, err = run(capsys, "init", "--home", home, "--moniker", "regulator", "--observer",
                         "--rpc-listen", "127.0.0.1:26609")
    assert code == 0, err
    assert not (home / "keys" / "validator.json").exists()
    config = load_config(home / "config.toml", check_files=False)
    assert config.node.mode == "observer" and config.node.validator_key_file is None
    assert config.p2p.listen.is_loopback and config.rpc.listen == Address("127.0.0.1", 26609)
    assert out["card"] == {"format": "secledger-card/1", "name": "regulator", "mode": "observer",
                           "node_key": public(home / "keys" / "node.json")}


@pytest.mark.parametrize("argv, code, message", [
    (["--moniker", "a b", "--listen", "0.0.0.0:1", "--external-address", "h:1"], 2, "--moniker: expected"),
    (["--moniker", "a", "--external-address", "h:1"], 2, "--listen: required for a validator"),
    (["--moniker", "a", "--listen", "0.0.0.0:1"], 2, "--external-address: required for a validator"),
    (["--moniker", "a", "--listen", "nope", "--external-address", "h:1"], 2, '--listen: expected "host:port"'),
    (["--moniker", "a", "--listen", "0.0.0.0:1", "--external-address", "0.0.0.0:1"], 2,
     "--external-address: 0.0.0.0:1 is no address another host can dial"),
    (["--moniker", "a", "--listen", "127.0.0.1:1", "--external-address", "10.1.1.1:1"], 2,
     "--listen: 127.0.0.1:1 is loopback"),
    (["--moniker", "a", "--listen", "127.0.0.1:26601", "--external-address", "127.0.0.1:26601"], 2,
     "--rpc-listen: same address as the peer listen address"),
    (["--moniker", "a", "--observer", "--rpc-listen", "h"], 2, '--rpc-listen: expected "host:port"'),
])
def test_init_refuses_bad_input_before_writing_anything(tmp_path, capsys, argv, code, message):
    fails(capsys, code, message, "init", "--home", tmp_path / "home", *argv)
    assert not (tmp_path / "home").exists()


def test_init_never_overwrites_a_node(tmp_path, capsys):
    home = tmp_path / "home"
    init(capsys, home, "a")
    before = (home / "keys" / "validator.json").read_text()
    fails(capsys, 1, "--home: ", "init", "--home", home, "--moniker", "b", "--observer")
    assert (home / "keys" / "validator.json").read_text() == before


# --- the ceremony ------------------------------------------------------------------------------------------


@pytest.fixture
def consortium(tmp_path, capsys):
    """Four members' homes (bank-0..3, validators), a regulator's observer, and each member's
    account key with its `keys show` output."""
    homes = {}
    for i in range(4):
        homes[f"bank-{i}"] = tmp_path / f"bank-{i}"
        init(capsys, homes[f"bank-{i}"], f"bank-{i}", f"10.0.0.{i + 1}:26600")
        key = tmp_path / "members" / f"m{i}.json"
        code, shown, _ = run(capsys, "keys", "new", key)
        (tmp_path / "members" / f"m{i}.pub.json").write_text(json.dumps(shown))
    homes["regulator"] = tmp_path / "regulator"
    assert run(capsys, "init", "--home", homes["regulator"], "--moniker", "regulator", "--observer")[0] == 0
    return homes


def ceremony(capsys, tmp_path, homes) -> Path:
    genesis = tmp_path / "genesis.toml"
    g = ["--genesis", genesis]
    assert run(capsys, "genesis", "new", *g, "--chain-id", "consortium-1", "--genesis-time-ms", "1700000000000")[0] == 0
    for i in range(4):
        key = tmp_path / "members" / f"m{i}.pub.json"
        code, out, err = run(capsys, "genesis", "add-member", *g, "--id", f"bank-{i}", "--name", f"Bank {i}", "--key",
                             key)
        assert code == 0, err
    assert run(capsys, "genesis", "set-thresholds", *g, "--all", "2/3", "--params", "1/2")[0] == 0
    for i in range(4):
        code, out, err = run(capsys, "genesis", "add-validator", *g, "--card", homes[f"bank-{i}"] / "card.json")
        assert code == 0, err
    code, out, err = run(capsys, "genesis", "add-observer", *g, "--card", homes["regulator"] / "card.json")
    assert code == 0 and out["complete"], err
    return genesis


def test_a_whole_ceremony_gives_the_genesis_the_node_loads(tmp_path, capsys, consortium):
    genesis_file = ceremony(capsys, tmp_path, consortium)
    genesis = load_genesis(genesis_file)
    assert genesis.chain_id == "consortium-1" and genesis.genesis_time_ms == 1_700_000_000_000
    assert [(v.name, v.power) for v in genesis.validators] == [(f"bank-{i}", 10) for i in range(4)]
    assert genesis.validators[2].validator_key.hex() == public(consortium["bank-2"] / "keys" / "validator.json")
    assert genesis.validators[2].node_key.hex() == public(consortium["bank-2"] / "keys" / "node.json")
    assert [o.name for o in genesis.observers] == ["regulator"]
    assert [m.keys[0].hex() for m in genesis.members] == [public(tmp_path / "members" / f"m{i}.json")
                                                          for i in range(4)]
    assert genesis.thresholds.roles == (2, 3) and genesis.thresholds.params == (1, 2) and genesis.admins == ()
    code, shown, _ = run(capsys, "genesis", "show", "--genesis", genesis_file)
    assert code == 0 and shown["genesis_hash"] == genesis.hash.hex()
    assert Genesis.from_dict({k: v for k, v in shown.items() if k not in ("genesis", "genesis_hash")}) == genesis
    code, valid, _ = run(capsys, "genesis", "validate", "--genesis", genesis_file)
    assert code == 0 and valid == {"genesis": str(genesis_file), "valid": True, "chain_id": "consortium-1",
                                   "genesis_hash": genesis.hash.hex()}


def test_a_draft_says_what_it_still_needs(tmp_path, capsys):
    genesis = tmp_path / "g.toml"
    code, out, _ = run(capsys, "genesis", "new", "--genesis", genesis, "--chain-id", "c1")
    assert code == 0 and not out["complete"] and len(out["missing"]) == 2
    fails(capsys, 1, "not complete: it still needs a validator", "genesis", "validate", "--genesis", genesis)
    fails(capsys, 1, "not complete", "genesis", "show", "--genesis", genesis)
    assert run(capsys, "genesis", "set-thresholds", "--genesis", genesis, "--all", "1/2")[1]["missing"] == [
        "a validator (genesis add-validator)", "a member for the thresholds (genesis add-member)"]
    code, out, _ = run(capsys, "genesis", "add-admin", "--genesis", genesis, "--key", "ab" * 32)
    assert code == 0 and out["admins"] == 1


def test_keys_may_be_given_as_hex_key_files_or_keys_show_output(tmp_path, capsys, consortium):
    genesis = tmp_path / "g.toml"
    run(capsys, "genesis", "new", "--genesis", genesis, "--chain-id", "c1")
    members = tmp_path / "members"
    code, _, err = run(capsys, "genesis", "add-member", "--genesis", genesis, "--id", "a", "--name", "A",
                       "--key", public(members / "m0.json"), members / "m1.json", members / "m2.pub.json")
    assert code == 0, err
    bank = consortium["bank-0"] / "keys"
    code, out, err = run(capsys, "genesis", "add-validator", "--genesis", genesis, "--name", "bank-0",
                         "--consensus-key", bank / "validator.json", "--node-key", public(bank / "node.json"),
                         "--power", "7")
    assert code == 0, err
    code, out, err = run(capsys, "genesis", "add-observer", "--genesis", genesis, "--name", "reg",
                         "--node-key", consortium["regulator"] / "keys" / "node.json")
    assert code == 0, err
    code, out, _ = run(capsys, "genesis", "set-thresholds", "--genesis", genesis, "--validators", "1/1",
                       "--members", "1/1", "--roles", "1/1", "--params", "1/1")
    assert code == 0 and out["complete"]
    genesis_doc = load_genesis(genesis)
    assert genesis_doc.members[0].keys == tuple(bytes.fromhex(public(members / f"m{i}.json")) for i in range(3))
    assert genesis_doc.validators[0].power == 7


@pytest.mark.parametrize("argv, code, message", [
    (["new", "--chain-id", "Bad Chain"], 2, "--chain-id: expected lower-case letters"),
    (["new", "--chain-id", "c", "--genesis-time-ms", "-1"], 2, "--genesis-time-ms: expected a unix time"),
    (["new", "--chain-id", "c", "--genesis-time-ms", "soon"], 2, "--genesis-time-ms: expected an integer"),
    (["add-member", "--id", "bank-0", "--name", "again", "--key", "cd" * 32], 1,
     "--id: 'bank-0' is already the id of members[0]"),
    (["add-member", "--id", "x", "--name", "X", "--key", "MEMBER0"], 1, "--key: "),
    (["add-member", "--id", "bad id", "--name", "X", "--key", "cd" * 32], 2, "--id: expected 1 to 64"),
    (["add-member", "--id", "x", "--name", "X", "--key", "nope"], 2, "--key: 'nope' is neither 64 hex digits"),
    (["add-member", "--id", "x", "--name", "", "--key", "cd" * 32], 2, "--name: expected text of 1 to 64"),
    (["set-thresholds", "--all", "3/2"], 2, "--all: expected 1 <= numerator <= denominator"),
    (["set-thresholds", "--roles", "2/3"], 2, "--all: needed, or else each of --validators, --members, --params"),
    (["set-thresholds", "--all", "2"], 2, "--all: expected N/D"),
    (["add-validator", "--card", "BANK0CARD"], 1, "--card: already in the genesis"),
    (["add-validator", "--card", "REGCARD"], 2, "is an observer's card"),
    (["add-validator", "--card", "BANK1CARD", "--power", "0"], 2, "--power: expected an integer from 1"),
    (["add-validator", "--card", "BANK1CARD", "--name", "bank-0"], 1, "--name: already in the genesis"),
    (["add-validator", "--card", "BANK1CARD", "--node-key", "cd" * 32], 2, "--card: gives the keys already"),
    (["add-validator", "--consensus-key", "cd" * 32, "--node-key", "ef" * 32], 2, "--name: needed without --card"),
    (["add-validator", "--card", "MISSING"], 2, "--card: "),
    (["add-observer", "--name", "r", "--node-key", "NODE0"], 1, "--node-key: already in the genesis"),
    (["add-observer", "--name", "bad name", "--node-key", "cd" * 32], 2, "--name: expected 1 to 64"),
    (["validate", "--genesis", "MISSING"], 2, "--genesis: "),
])
def test_ceremony_errors_name_the_flag(tmp_path, capsys, consortium, argv, code, message):
    genesis = tmp_path / "g.toml"
    run(capsys, "genesis", "new", "--genesis", genesis, "--chain-id", "c1")
    run(capsys, "genesis", "add-member", "--genesis", genesis, "--id", "bank-0", "--name", "B",
        "--key", tmp_path / "members" / "m0.json")
    run(capsys, "genesis", "add-validator", "--genesis", genesis, "--card", consortium["bank-0"] / "card.json")
    names = {"MEMBER0": tmp_path / "members" / "m0.json", "BANK0CARD": consortium["bank-0"] / "card.json",
             "BANK1CARD": consortium["bank-1"] / "card.json", "REGCARD": consortium["regulator"] / "card.json",
             "NODE0": consortium["bank-0"] / "keys" / "node.json", "MISSING": tmp_path / "missing.toml"}
    argv = [str(names.get(a, a)) for a in argv]
    before = genesis.read_text()
    command = [argv[0]] + ([] if "--genesis" in argv else ["--genesis", genesis]) + argv[1:]
    fails(capsys, code, message, "genesis", *command)
    assert genesis.read_text() == before  # a refused edit leaves the file as it was


def test_an_edit_of_a_broken_file_blames_the_file(tmp_path, capsys):
    genesis = tmp_path / "g.toml"
    genesis.write_text('chain_id = "c1"\ngenesis_time_ms = 1\nvalidators = []\nadmins = ["zz"]\n')
    fails(capsys, 1, f"--genesis: {genesis}: admins[0]: expected 64 hex digits", "genesis", "add-admin",
          "--genesis", genesis, "--key", "ab" * 32)
    genesis.write_text("chain_id = [")
    fails(capsys, 2, "not valid TOML", "genesis", "show", "--genesis", genesis)
    fails(capsys, 1, "exists; the ceremony starts from a new file", "genesis", "new", "--genesis", genesis,
          "--chain-id", "c2")


# --- genesis install -----------------------------------------------------------------------------------------


def test_install_puts_the_genesis_in_each_home_and_sets_the_peers(tmp_path, capsys, consortium):
    genesis_file = ceremony(capsys, tmp_path, consortium)
    agreed = load_genesis(genesis_file).hash.hex()
    cards = tmp_path / "cards"
    cards.mkdir()
    for name, home in consortium.items():
        (cards / f"{name}.json").write_text((home / "card.json").read_text())
    code, out, err = run(capsys, "genesis", "install", "--home", consortium["bank-1"], "--genesis", genesis_file,
                         "--card", cards)
    assert code == 0, err
    assert out["genesis_hash"] == agreed and out["validators_without_card"] == []
    config = load_config(consortium["bank-1"] / "config.toml")  # every file it names now exists
    node_key = {name: public(home / "keys" / "node.json") for name, home in consortium.items()}
    assert [str(p) for p in config.p2p.peers] == [f"{node_key[f'bank-{i}']}@10.0.0.{i + 1}:26600" for i in (0, 2, 3)]
    assert load_genesis(config.node.genesis_file).hash.hex() == agreed
    assert config.p2p.external_address == Address("10.0.0.2", 26600)  # kept

    code, out, err = run(capsys, "genesis", "install", "--home", consortium["regulator"], "--genesis", genesis_file,
                         "--card", consortium["bank-0"] / "card.json", consortium["regulator"] / "card.json")
    assert code == 0, err
    assert out["peers"] == [f"{node_key['bank-0']}@10.0.0.1:26600"]
    assert out["validators_without_card"] == ["bank-1", "bank-2", "bank-3"]
    # installing again, or from the home's own copy, changes nothing
    code, again, _ = run(capsys, "genesis", "install", "--home", consortium["regulator"], "--genesis",
                         consortium["regulator"] / "genesis.toml", "--card", cards)
    assert code == 0 and len(again["peers"]) == 4


def test_install_refuses_a_genesis_that_does_not_name_the_node(tmp_path, capsys, consortium):
    genesis = tmp_path / "other.toml"
    run(capsys, "genesis", "new", "--genesis", genesis, "--chain-id", "other")
    run(capsys, "genesis", "add-admin", "--genesis", genesis, "--key", "ab" * 32)
    run(capsys, "genesis", "add-validator", "--genesis", genesis, "--card", consortium["bank-0"] / "card.json")
    fails(capsys, 1, "--genesis: ", "genesis", "install", "--home", consortium["bank-1"], "--genesis", genesis)
    fails(capsys, 1, "does not name this observer", "genesis", "install", "--home", consortium["regulator"],
          "--genesis", genesis)
    fails(capsys, 1, "does not match any validator", "genesis", "install", "--home", consortium["bank-0"],
          "--genesis", genesis, "--card", consortium["bank-1"] / "card.json")
    fails(capsys, 2, "--home: ", "genesis", "install", "--home", tmp_path / "nowhere", "--genesis", genesis)
    (tmp_path / "bad-card.json").write_text('{"format": "secledger-card/1", "mode": "validator"}')
    fails(capsys, 2, "--card: ", "genesis", "install", "--home", consortium["bank-0"], "--genesis", genesis,
          "--card", tmp_path / "bad-card.json")
    assert run(capsys, "genesis", "install", "--home", consortium["bank-0"], "--genesis", genesis)[0] == 0
    mine = tmp_path / "mine.toml"
    run(capsys, "genesis", "new", "--genesis", mine, "--chain-id", "mine")
    run(capsys, "genesis", "add-admin", "--genesis", mine, "--key", "ab" * 32)
    run(capsys, "genesis", "add-validator", "--genesis", mine, "--card", consortium["bank-0"] / "card.json")
    fails(capsys, 1, "already holds another genesis", "genesis", "install", "--home", consortium["bank-0"],
          "--genesis", mine)


# --- secledger testnet ---------------------------------------------------------------------------------------


def test_testnet_hosts_spreads_the_nodes_and_peers_dial_the_hosts(tmp_path, capsys):
    out = tmp_path / "net"
    code, written, err = run(capsys, "testnet", "--out", out, "--validators", "4", "--observers", "1",
                             "--hosts", "10.9.0.1,10.9.0.2,node-3.example.com", "--port-base", "27000")
    assert code == 0, err
    where = {n["name"]: (n["host"], n["p2p"]) for n in written["nodes"]}
    assert where == {"validator-0": ("10.9.0.1", "10.9.0.1:27000"), "validator-1": ("10.9.0.2", "10.9.0.2:27000"),
                     "validator-2": ("node-3.example.com", "node-3.example.com:27000"),
                     "validator-3": ("10.9.0.1", "10.9.0.1:27002"), "observer-0": ("10.9.0.2", "10.9.0.2:27002")}
    configs = {n["name"]: load_config(n["config"]) for n in written["nodes"]}
    assert configs["validator-3"].p2p.listen == Address("10.9.0.1", 27002)
    assert configs["validator-3"].rpc.listen == Address("127.0.0.1", 27003)  # on its host's loopback
    assert sorted(str(p.address) for p in configs["observer-0"].p2p.peers) == [
        "10.9.0.1:27000", "10.9.0.1:27002", "10.9.0.2:27000", "node-3.example.com:27000"]
    assert len(configs["validator-0"].p2p.peers) == 3
    assert written["nodes"][3]["rpc"] == "http://127.0.0.1:27003/"


@pytest.mark.parametrize("argv, code, message", [
    (["--chain-id", "Bad Chain"], 2, "--chain-id: expected lower-case letters"),
    (["--validators", "0"], 2, "--validators: expected 1 to 100, got 0"),
    (["--observers", "-1"], 2, "--observers: expected 0 to 100, got -1"),
    (["--port-base", "65535"], 2, "--port-base: expected 1 to"),
    (["--hosts", "a b,c"], 2, "--hosts: expected host names or IP addresses"),
    (["--hosts", "h1,h1"], 2, "--hosts: h1 is given twice"),
    (["--hosts", "0.0.0.0"], 2, "--hosts: 0.0.0.0 is no address another host can dial"),
    (["--members", "65"], 2, "--members: expected 0 to 64"),
    (["--validators", "many"], 2, "--validators: expected an integer"),
])
def test_testnet_checks_its_input_before_writing(tmp_path, capsys, argv, code, message):
    code_got, _, err = run(capsys, "testnet", "--out", tmp_path / "net", *argv)
    assert code_got == code and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "net").exists()


def test_testnet_refuses_a_directory_holding_a_network(tmp_path, capsys):
    assert run(capsys, "testnet", "--out", tmp_path / "net", "--validators", "1", "--observers", "0")[0] == 0
    fails(capsys, 1, "--out: ", "testnet", "--out", tmp_path / "net")
