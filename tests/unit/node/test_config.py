"""The node's TOML config: every problem names the file and the key; the examples load."""

from __future__ import annotations

import dataclasses
import re
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.setup.config import (
    Address,
    ConfigError,
    ConsensusSection,
    NodeConfig,
    P2pSection,
    Peer,
    RpcSection,
    load_config,
    render_config,
)

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
KEY_A = "a" * 64
KEY_B = "0123456789abcdef" * 4

MINIMAL_VALIDATOR = """\
[node]
moniker = "validator-0"
mode = "validator"
home = "data/validator-0"
genesis_file = "genesis.toml"
node_key_file = "keys/node.json"
validator_key_file = "keys/validator.json"
"""

MINIMAL_OBSERVER = """\
[node]
moniker = "observer-0"
mode = "observer"
home = "data/observer-0"
genesis_file = "genesis.toml"
node_key_file = "keys/node.json"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    for name in ("genesis.toml", "keys/node.json", "keys/validator.json"):
        (tmp_path / name).write_text("{}")
    return tmp_path


def write(home: Path, text: str, name: str = "node.toml") -> Path:
    path = home / name
    path.write_text(text)
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


# --- loading --------------------------------------------------------------------------------------


def test_minimal_validator_gets_defaults_and_absolute_paths(home: Path) -> None:
    config = load_config(write(home, MINIMAL_VALIDATOR))
    assert config.node.mode == "validator"
    assert config.node.home == (home / "data/validator-0").resolve()
    assert config.node.genesis_file == (home / "genesis.toml").resolve()
    assert config.node.validator_key_file == (home / "keys/validator.json").resolve()
    assert config.p2p == P2pSection() and config.rpc == RpcSection() and config.consensus == ConsensusSection()
    assert config.p2p.listen == Address("127.0.0.1", 26656) and config.p2p.listen.is_loopback
    assert config.rpc.listen == Address("127.0.0.1", 26657)


def test_relative_paths_resolve_against_the_config_directory_not_the_cwd(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    (home / "sub").mkdir()
    text = MINIMAL_VALIDATOR.replace('"genesis.toml"', '"../genesis.toml"').replace('"keys/', '"../keys/')
    config = load_config(write(home, text, "sub/node.toml"))
    assert config.node.genesis_file == (home / "genesis.toml").resolve()
    assert config.node.home == (home / "sub/data/validator-0").resolve()


def test_full_sections_and_explicit_non_loopback_listen(home: Path) -> None:
    text = MINIMAL_VALIDATOR + f"""
[p2p]
listen = "0.0.0.0:26656"
peers = ["{KEY_A}@10.0.0.2:26656", "{KEY_B}@[::1]:26666", "{"c" * 64}@node-2.example.com:1"]
allowed_keys = ["{"d" * 64}"]
frame_bytes_max = 65536
dial_backoff_max_ms = 100

[rpc]
listen = "192.168.1.5:8545"
batch_length_max = 1

[consensus]
timeout_commit_ms = 0

[log]
level = "debug"
"""
    config = load_config(write(home, text))
    assert config.p2p.listen == Address("0.0.0.0", 26656) and not config.p2p.listen.is_loopback
    assert config.p2p.peers == (
        Peer(KEY_A, Address("10.0.0.2", 26656)),
        Peer(KEY_B, Address("::1", 26666)),
        Peer("c" * 64, Address("node-2.example.com", 1)),
    )
    assert str(config.p2p.peers[1]) == f"{KEY_B}@[::1]:26666"
    assert config.rpc.listen == Address("192.168.1.5", 8545) and config.rpc.batch_length_max == 1
    assert config.consensus.timeout_commit_ms == 0 and config.log.level == "debug"


def test_render_round_trips(home: Path) -> None:
    text = MINIMAL_VALIDATOR + f'[p2p]\npeers = ["{KEY_A}@127.0.0.1:26666"]\n[rpc]\nlisten = "[::1]:9000"\n'
    config = load_config(write(home, text))
    again = load_config(write(home, render_config(config, relative_to=home), "again.toml"))
    assert again == config
    rendered_absolute = render_config(config)
    assert str(home.resolve() / "genesis.toml") in rendered_absolute
    assert load_config(write(home, rendered_absolute, "absolute.toml")) == config


def test_example_configs_load(tmp_path: Path) -> None:
    for name in ("validator.example.toml", "observer.example.toml"):
        shutil.copy(CONFIGS / name, tmp_path / name)
        text = (CONFIGS / name).read_text()
        for key in ("genesis_file", "node_key_file", "validator_key_file"):
            match = re.search(rf'^{key} = "([^"]+)"', text, re.MULTILINE)
            if match:
                (tmp_path / match.group(1)).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / match.group(1)).write_text("{}")
    validator = load_config(tmp_path / "validator.example.toml")
    observer = load_config(tmp_path / "observer.example.toml")
    assert validator.node.mode == "validator" and validator.node.validator_key_file is not None
    assert observer.node.mode == "observer" and observer.node.validator_key_file is None
    # The examples show the defaults, so they do not drift from the code.
    assert validator.rpc == RpcSection() and validator.consensus == ConsensusSection()
    assert dataclasses.replace(validator.p2p, peers=()) == P2pSection()
    # Every key of every section appears in the validator example, with a comment above it.
    lines = (CONFIGS / "validator.example.toml").read_text().splitlines()
    for section in dataclasses.fields(NodeConfig):
        assert f"[{section.name}]" in lines
        for key in dataclasses.fields(getattr(validator, section.name)):
            index = next(i for i, line in enumerate(lines) if line.startswith(f"{key.name} = "))
            assert lines[index - 1].startswith("#") or lines[index - 2].startswith("#"), key.name


# --- errors ---------------------------------------------------------------------------------------


def test_error_message_format(home: Path) -> None:
    path = write(home, MINIMAL_VALIDATOR + '[p2p]\nlisten = "abc"\n', "v0.toml")
    error = config_error(path)
    assert str(error) == f'{path}: p2p.listen: expected "host:port", got "abc"'
    assert (error.file, error.key) == (str(path), "p2p.listen")


def test_unknown_key(home: Path) -> None:
    error = config_error(write(home, MINIMAL_VALIDATOR + "[rpc]\nrequest_byte_max = 5\n"))
    assert error.key == "rpc.request_byte_max"
    assert 'unknown key (did you mean "request_bytes_max"?)' in error.problem


def test_unknown_key_in_node(home: Path) -> None:
    error = config_error(write(home, MINIMAL_VALIDATOR + 'monicker = "x"\n'))
    assert error.key == "node.monicker" and "unknown key" in error.problem


def test_typo_in_a_section_name(home: Path) -> None:
    error = config_error(write(home, MINIMAL_VALIDATOR + "[consensuss]\ntimeout_commit_ms = 1\n"))
    assert error.key == "consensuss"
    assert 'unknown section (did you mean "consensus"?)' in error.problem


def test_key_outside_any_section(home: Path) -> None:
    error = config_error(write(home, 'level = "info"\n' + MINIMAL_VALIDATOR))
    assert error.key == "level" and "section [log]" in error.problem


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ('[p2p]\nframe_bytes_max = "big"\n', "p2p.frame_bytes_max", 'expected an integer, got "big"'),
        ("[p2p]\nframe_bytes_max = true\n", "p2p.frame_bytes_max", "expected an integer, got boolean true"),
        ("[mempool]\ntxs_max = 1.5\n", "mempool.txs_max", "expected an integer, got float 1.5"),
        ("[mempool]\ntxs_max = 0\n", "mempool.txs_max", "expected 1..1000000, got 0"),
        ("[consensus]\ntimeout_propose_ms = -1\n", "consensus.timeout_propose_ms", "expected 1..600000, got -1"),
        ('[log]\nlevel = "loud"\n', "log.level", 'expected one of "debug", "info"'),
        ('[p2p]\npeers = "x"\n', "p2p.peers", 'expected an array, got "x"'),
        ('[p2p]\npeers = ["abc@127.0.0.1:1"]\n', "p2p.peers[0]", 'expected "<64 hex node key>@host:port"'),
        (f'[p2p]\npeers = ["{KEY_A}@127.0.0.1"]\n', "p2p.peers[0]", 'expected "<64 hex node key>@host:port"'),
        (
            f'[p2p]\npeers = ["{KEY_A}@127.0.0.1:1", "{KEY_A}@127.0.0.1:2"]\n',
            "p2p.peers[1]",
            "duplicate node key",
        ),
        (f'[p2p]\nallowed_keys = ["{KEY_A.upper()}"]\n', "p2p.allowed_keys[0]", "expected a node key of 64 lower-case"),
        ('[rpc]\nlisten = ":26657"\n', "rpc.listen", 'expected "host:port", got ":26657"'),
        ('[rpc]\nlisten = "127.0.0.1:70000"\n', "rpc.listen", "expected"),
        ('[rpc]\nlisten = "[nonsense]:1"\n', "rpc.listen", "expected"),
        ('[rpc]\nlisten = "127.0.0.1:26656"\n', "rpc.listen", "same address as p2p.listen"),
        ("[rpc]\nlisten = 26657\n", "rpc.listen", 'expected "host:port", got integer 26657'),
        (
            "[consensus]\ntimeout_propose_ms = 20000\n",
            "consensus.timeout_round_max_ms",
            "must be >= consensus.timeout_propose_ms (20000), got 10000",
        ),
        (
            "[mempool]\nbytes_max = 2048\n",
            "consensus.block_bytes_max",
            "must be <= mempool.bytes_max (2048)",
        ),
    ],
)
def test_bad_values(home: Path, extra: str, key: str, problem: str) -> None:
    path = write(home, MINIMAL_VALIDATOR + extra)
    error = config_error(path)
    assert error.file == str(path)
    assert error.key == key
    assert error.problem.startswith(problem), error.problem


@pytest.mark.parametrize("key", ["moniker", "mode", "home", "genesis_file", "node_key_file"])
def test_missing_required_key(home: Path, key: str) -> None:
    text = "\n".join(line for line in MINIMAL_VALIDATOR.splitlines() if not line.startswith(f"{key} ="))
    error = config_error(write(home, text))
    assert (error.key, error.problem) == (f"node.{key}", "missing required key")


def test_section_that_is_not_a_table(home: Path) -> None:
    error = config_error(write(home, "p2p = 5\n" + MINIMAL_VALIDATOR))
    assert (error.key, error.problem) == ("p2p", "expected a table [p2p], got integer")


def test_missing_node_section(home: Path) -> None:
    error = config_error(write(home, "[log]\nlevel = 'info'\n"))
    assert error.key == "node" and "missing required section" in error.problem


def test_validator_needs_a_validator_key_and_observer_must_not_have_one(home: Path) -> None:
    without = MINIMAL_VALIDATOR.replace('validator_key_file = "keys/validator.json"\n', "")
    error = config_error(write(home, without))
    assert str(error).endswith('node.validator_key_file: required when mode = "validator"')
    assert load_config(write(home, MINIMAL_OBSERVER)).node.validator_key_file is None
    error = config_error(write(home, MINIMAL_OBSERVER + 'validator_key_file = "keys/validator.json"\n'))
    assert error.key == "node.validator_key_file" and "observer" in error.problem


def test_referenced_files_must_exist(home: Path) -> None:
    (home / "keys/node.json").unlink()
    error = config_error(write(home, MINIMAL_VALIDATOR))
    assert error.key == "node.node_key_file" and "no such file" in error.problem
    assert load_config(home / "node.toml", check_files=False).node.node_key_file.name == "node.json"


def test_bad_moniker_and_mode(home: Path) -> None:
    error = config_error(write(home, MINIMAL_VALIDATOR.replace('"validator-0"', '"bad name!"', 1)))
    assert error.key == "node.moniker"
    error = config_error(write(home, MINIMAL_VALIDATOR.replace('mode = "validator"', 'mode = "Validator"')))
    assert error.key == "node.mode" and 'got "Validator"' in error.problem


def test_unreadable_and_invalid_toml(home: Path) -> None:
    error = config_error(home / "missing.toml")
    assert error.key == "" and "cannot read" in str(error) and str(error).startswith(str(home / "missing.toml"))
    error = config_error(write(home, "[node\nmoniker = 1\n"))
    assert error.key == "" and "invalid TOML" in error.problem
    (home / "latin1.toml").write_bytes(b'[node]\nmoniker = "\xff"\n')
    assert config_error(home / "latin1.toml").problem == "invalid TOML: not UTF-8 at byte 18"


# --- fuzz: a config loads or raises ConfigError, nothing else -------------------------------------

toml_values = st.recursive(
    st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["127.0.0.1:1", f"{KEY_A}@127.0.0.1:2", KEY_B, "genesis.toml", "validator", "info"]),
    lambda children: st.lists(children, max_size=3),
    max_leaves=6,
)
known_keys = sorted({key.name for kind in typing.get_type_hints(NodeConfig).values() for key in dataclasses.fields(kind)})
sections = st.dictionaries(
    st.sampled_from([field.name for field in dataclasses.fields(NodeConfig)] + ["extra"]),
    st.dictionaries(st.sampled_from(known_keys) | st.text(max_size=6), toml_values, max_size=6),
    max_size=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sections)
def test_fuzz_config_loads_or_raises_config_error(home: Path, document: dict[str, Any]) -> None:
    path = write(home, tomli_w.dumps(document), "fuzz.toml")
    try:
        config = load_config(path)
    except ConfigError as error:
        assert error.file == str(path) and str(error).startswith(str(path))
    else:
        assert isinstance(config, NodeConfig)
