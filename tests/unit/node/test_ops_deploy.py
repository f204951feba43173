"""deploy/: the compose file, the systemd unit and the Dockerfile are well formed and agree with
the network that deploy/compose_network.py writes (nothing is built: no network here)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from node.setup.config import load_config

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
NODES = ["validator-0", "validator-1", "validator-2", "validator-3", "observer-0"]


def compose() -> dict:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: [Section], Key=value, a key may repeat, # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            assert header.group(1) not in sections, f"line {number}: section [{header.group(1)}] twice"
            current = sections[header.group(1)] = {}
            continue
        assert current is not None, f"line {number}: a key before any section"
        key, equals, value = line.partition("=")
        assert equals and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"line {number}: not Key=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def compose_network() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_network", DEPLOY / "compose_network.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_runs_four_validators_and_an_observer_each_with_its_own_volume() -> None:
    document = compose()
    services = document["services"]
    assert sorted(services) == sorted(NODES)
    volumes_used = []
    for name, service in services.items():
        assert service["command"] == ["start", "--config", f"/etc/secledger/{name}.toml"], name
        assert service["hostname"] == name
        assert service["restart"] in ("unless-stopped", "always", "on-failure")
        assert service["image"] == "secledger:local" and service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        mounts = dict(reversed(volume.split(":", 1)) for volume in service["volumes"])
        assert mounts["/etc/secledger:ro"] == "./network"
        data = mounts["/var/lib/secledger"]
        assert data == f"{name}-data"
        volumes_used.append(data)
        for port in service["ports"]:  # the RPC has no authentication: the host's loopback only
            assert port.startswith("127.0.0.1:") and port.split(":")[2] in ("26657", "26660"), port
    assert len(set(volumes_used)) == len(NODES)
    assert sorted(document["volumes"]) == sorted(volumes_used)
    published = [port.rsplit(":", 1)[0] for service in services.values() for port in service["ports"]]
    assert len(published) == len(set(published)), "two services publish one host port"


def test_compose_network_writes_what_compose_mounts(tmp_path: Path) -> None:
    out = tmp_path / "network"
    assert compose_network().write(out) == NODES
    services = compose()["services"]
    for name in NODES:
        config = load_config(out / f"{name}.toml", check_files=False)
        assert config.node.moniker == name and config.node.home == Path("/var/lib/secledger")
        assert str(config.node.genesis_file) == "/etc/secledger/genesis.toml"
        assert str(config.node.node_key_file) == f"/etc/secledger/keys/{name}.node.json"
        assert (out / "keys" / f"{name}.node.json").is_file()
        assert str(config.p2p.listen) == "0.0.0.0:26656" and str(config.rpc.listen) == "0.0.0.0:26657"
        assert config.metrics.enabled and str(config.metrics.listen) == "0.0.0.0:26660"
        dialled = {peer.address.host for peer in config.p2p.peers}
        assert dialled == {n for n in NODES if n.startswith("validator") and n != name}
        assert dialled <= set(services) and {peer.address.port for peer in config.p2p.peers} == {26656}
    keys = list((out / "keys").glob("*.json"))
    assert keys and all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)


def test_the_systemd_unit_restarts_on_failure_and_is_hardened() -> None:
    sections = unit_sections((DEPLOY / "secledger@.service").read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    unit, service, install = sections["Unit"], sections["Service"], sections["Install"]
    assert unit["Description"] and "network-online.target" in unit["After"][0]
    [exec_start] = service["ExecStart"]
    assert exec_start.split()[1:] == ["start", "--config", "/etc/secledger/%i.toml"]
    assert service["Restart"] == ["on-failure"] and service["RestartSec"]
    assert service["RestartPreventExitStatus"] == ["2"]  # a failed start-up check: restarting cannot help
    assert service["User"] == ["secledger"] and service["KillSignal"] == ["SIGTERM"]
    assert service["StateDirectory"] == ["secledger/%i"] and service["UMask"] == ["0077"]
    for key, expected in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                          "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                          "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "ProtectKernelTunables": "yes",
                          "ProtectControlGroups": "yes", "LockPersonality": "yes"}.items():
        assert service.get(key) == [expected], key
    assert "@system-service" in service["SystemCallFilter"]
    assert install["WantedBy"] == ["multi-user.target"]


def test_systemd_itself_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the unit's syntax is checked above")
    text = (DEPLOY / "secledger@.service").read_text().replace("/opt/secledger/bin/secledger", "/bin/true")
    unit = tmp_path / "secledger@validator-0.service"
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "secledger@validator-0.service" in line or "secledger@" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_the_image_runs_as_a_user_with_data_in_a_volume_and_ships_no_keys() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")
                    and not line.startswith((" ", "\t"))]
    froms = [rest for word, *rest in instructions if word == "FROM"]
    assert froms and all(re.match(r"python:\$\{PYTHON_VERSION\}-slim\b", rest[0]) for rest in froms)
    [user] = [rest[0].strip() for word, *rest in instructions if word == "USER"]
    assert user not in ("root", "0")
    assert any(word == "VOLUME" and "/var/lib/secledger" in rest[0] for word, *rest in instructions)
    assert any(word == "HEALTHCHECK" and "/health" in text for word, *_ in instructions)
    copies = [rest[0] for word, *rest in instructions if word == "COPY"]
    assert not any(re.search(r"testnet|network|keys|\.json", copy) for copy in copies), copies
    # the build context is everything excluded, then the sources let back in
    patterns = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*" and all(p.startswith(("!", "**/")) for p in patterns[1:])
