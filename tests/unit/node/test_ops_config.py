"""The [metrics] section and [log] format: parsed strictly, named in every error, off by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.setup.config import Address, ConfigError, MetricsSection, load_config, render_config

MINIMAL = """\
[node]
moniker = "validator-0"
mode = "validator"
home = "data"
genesis_file = "genesis.toml"
node_key_file = "node.json"
validator_key_file = "validator.json"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for name in ("genesis.toml", "node.json", "validator.json"):
        (tmp_path / name).write_text("{}")
    return tmp_path


def load(home: Path, extra: str):
    path = home / "node.toml"
    path.write_text(MINIMAL + extra)
    return load_config(path)


def error(home: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(home, extra)
    return str(caught.value)


def test_metrics_are_off_by_default_on_the_cometbft_port_and_text_logs(home: Path) -> None:
    config = load(home, "")
    assert config.metrics == MetricsSection(enabled=False, listen=Address("127.0.0.1", 26660))
    assert config.log.format == "text"


def test_metrics_and_json_logs_can_be_turned_on_and_round_trip(home: Path) -> None:
    config = load(home, '[metrics]\nenabled = true\nlisten = "0.0.0.0:9100"\n[log]\nformat = "json"\n')
    assert config.metrics == MetricsSection(enabled=True, listen=Address("0.0.0.0", 9100))
    assert config.log.format == "json"
    again = home / "again.toml"
    again.write_text(render_config(config, relative_to=home))
    assert load_config(again) == config


@pytest.mark.parametrize(("extra", "key", "problem"), [
    ('[metrics]\nenabled = "yes"\n', "metrics.enabled", 'expected true or false, got "yes"'),
    ("[metrics]\nenabled = 1\n", "metrics.enabled", "expected true or false, got integer 1"),
    ('[metrics]\nlisten = "nowhere"\n', "metrics.listen", 'expected "host:port", got "nowhere"'),
    ('[metrics]\nport = 1\n', "metrics.port", "unknown key"),
    ('[log]\nformat = "xml"\n', "log.format", 'expected one of "text", "json", got "xml"'),
])
def test_bad_values_name_the_key(home: Path, extra: str, key: str, problem: str) -> None:
    message = error(home, extra)
    assert f": {key}: " in message and problem in message


def test_metrics_may_not_share_the_rpc_or_peer_address_when_enabled(home: Path) -> None:
    message = error(home, '[metrics]\nenabled = true\nlisten = "127.0.0.1:26657"\n')
    assert "metrics.listen: same address as rpc.listen (127.0.0.1:26657)" in message
    message = error(home, '[metrics]\nenabled = true\nlisten = "127.0.0.1:26656"\n')
    assert "metrics.listen: same address as p2p.listen" in message
    # off, the address is not used, so it may be anything
    assert load(home, '[metrics]\nlisten = "127.0.0.1:26657"\n').metrics.enabled is False
