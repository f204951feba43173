"""Start-up checks: each refusal is one line naming the config file and key, with exit code 2."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.client import new_key
from node.main import run
from node.ops import logs, startup
from node.service import Node
from node.setup.config import Address, MetricsSection, load_config
from node.setup.keys import save_key
from node.setup.netgen import generate
from node.testing import free_port_base


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.set_height_source(None)


def network(directory: Path, *, members: int | None = 0) -> Path:
    """A one-validator network; the path of validator-0's config."""
    generate(directory, validators=1, observers=0, port_base=free_port_base(2), members=members)
    return directory / "validator-0.toml"


def close(node: Node) -> None:
    """Let go of a node that was built but never started."""
    node.mempool.close()
    node.ledger.close()


def refusal(capsys: pytest.CaptureFixture[str], config: Path) -> str:
    assert run(str(config)) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("cannot start validator-0: ") and "Traceback" not in err
    return last


def test_generated_key_files_are_the_owners_alone(tmp_path: Path) -> None:
    network(tmp_path)
    keys = list((tmp_path / "keys").glob("*.json"))
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_key_file_open_to_group_or_others_is_refused_with_the_chmod_to_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int) -> None:
    config = network(tmp_path)
    key = tmp_path / "keys" / "validator-0.validator.json"
    os.chmod(key, mode)
    line = refusal(capsys, config)
    assert f"{config}: node.validator_key_file: {key.resolve()} is " in line
    assert f"(mode {mode:04o})" in line and f"chmod 600 {key.resolve()}" in line


def test_a_next_key_that_exists_is_checked_too_and_one_that_does_not_is_not(tmp_path: Path) -> None:
    config_path = network(tmp_path)
    config = load_config(config_path)
    startup.check_key_files(config, config_path)  # keys/validator-0.next.validator.json not created yet
    assert config.node.next_validator_key_file is not None
    save_key(config.node.next_validator_key_file, new_key())
    os.chmod(config.node.next_validator_key_file, 0o644)
    with pytest.raises(startup.StartupError) as caught:
        startup.check_key_files(config, config_path)
    assert caught.value.key == "node.next_validator_key_file"


def test_a_port_in_use_names_the_port_and_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = network(tmp_path)
    config = load_config(config_path)
    with socket.socket() as taken:
        taken.bind((config.rpc.listen.host, config.rpc.listen.port))
        taken.listen()
        line = refusal(capsys, config_path)
    assert f"{config_path}: rpc.listen: port {config.rpc.listen.port} of 127.0.0.1 is already in use" in line
    close(Node(load_config(config_path)))  # the refused node closed its store: it opens again


def test_the_metrics_address_is_checked_only_when_enabled(tmp_path: Path) -> None:
    config_path = network(tmp_path)
    config = load_config(config_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = MetricsSection(enabled=False, listen=Address("127.0.0.1", port))
        startup.check_listen_addresses(dataclasses.replace(config, metrics=metrics), config_path)
        with pytest.raises(startup.StartupError) as caught:
            startup.check_listen_addresses(
                dataclasses.replace(config, metrics=dataclasses.replace(metrics, enabled=True)), config_path)
    assert caught.value.key == "metrics.listen" and f"port {port} of 127.0.0.1 is already in use" in str(caught.value)
    # the probe let every address go again
    startup.check_listen_addresses(config, config_path)


def test_an_address_of_another_host_is_named(tmp_path: Path) -> None:
    config_path = network(tmp_path)
    config = load_config(config_path)
    elsewhere = dataclasses.replace(config.p2p, listen=Address("192.0.2.1", 26656))  # TEST-NET-1
    with pytest.raises(startup.StartupError) as caught:
        startup.check_listen_addresses(dataclasses.replace(config, p2p=elsewhere), config_path)
    assert caught.value.key == "p2p.listen" and "192.0.2.1 is not an address of this host" in str(caught.value)


def test_a_validator_outside_a_fixed_set_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = network(tmp_path, members=0)  # no members: the genesis set is the set for good
    key = tmp_path / "keys" / "validator-0.validator.json"
    key.unlink()
    save_key(key, new_key())
    line = refusal(capsys, config)
    assert f"{config}: node.validator_key_file: key " in line
    assert "is not a validator of chain 'secledger-local'" in line and "no members who could add it" in line


async def test_a_validator_not_yet_added_on_a_chain_with_members_is_only_warned(tmp_path: Path) -> None:
    config_path = network(tmp_path, members=None)  # one member, which may add validators
    key = tmp_path / "keys" / "validator-0.validator.json"
    key.unlink()
    save_key(key, new_key())
    node = Node(load_config(config_path))
    try:
        warning = startup.check_validator_set(node, config_path)
    finally:
        close(node)
    assert warning is not None
    assert warning.startswith(f"{config_path}: node.validator_key_file: key ")
    assert "not in the validator set of height 1" in warning and "section 14" in warning


async def test_a_listed_validator_passes(tmp_path: Path) -> None:
    config_path = network(tmp_path)
    node = Node(load_config(config_path))
    try:
        assert startup.check_validator_set(node, config_path) is None
    finally:
        close(node)


def test_a_store_of_another_chain_names_the_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = network(tmp_path / "a")
    second = network(tmp_path / "b")
    close(Node(load_config(first)))  # creates a's store
    (tmp_path / "b" / "data").mkdir(exist_ok=True)
    os.rename(tmp_path / "a" / "data" / "validator-0", tmp_path / "b" / "data" / "validator-0")
    line = refusal(capsys, second)
    assert f"{second}: node.home: store " in line and "another genesis" in line


@pytest.mark.parametrize("variable, value", [("SECLEDGER_TEST_FAULT", "kill_before_send:0"),
                                             ("SECLEDGER_TEST_BYZANTINE", "lie")])
def test_an_unknown_test_switch_is_refused_by_name(tmp_path: Path, capsys, monkeypatch, variable, value) -> None:
    """The fault campaign's environment switches: a typo refuses to start, naming the variable, not
    an "internal error" (or, worse, a node running without the fault the test meant)."""
    config = network(tmp_path)
    monkeypatch.setenv(variable, value)
    assert f"{variable}='{value}'" in refusal(capsys, config)
