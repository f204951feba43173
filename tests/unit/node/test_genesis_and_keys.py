"""Genesis files and key files: the example loads, errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from node.setup.genesis_file import GenesisFileError, load_genesis, render_genesis
from node.setup.keys import KeyFileError, load_key, save_key

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "genesis.example.toml"


def test_example_genesis_loads_and_round_trips(tmp_path):
    genesis = load_genesis(EXAMPLE)
    assert genesis.chain_id == "acme-consortium-1"
    assert [v.name for v in genesis.validators] == ["bank-a", "bank-b", "transfer-agent", "issuer-co"]
    copy = tmp_path / "genesis.toml"
    copy.write_text(render_genesis(genesis))
    assert load_genesis(copy) == genesis and load_genesis(copy).hash == genesis.hash


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('chain_id = "acme-consortium-1"', 'chain_id = "Bad Id"'), "chain_id"),
    (lambda t: t.replace("power = 10", "power = 0", 1), "validators[0].power"),
    (lambda t: t.replace('name = "bank-b"', 'name = "bank-b"\nvote_weight = 3'), "unknown key 'vote_weight'"),
    (lambda t: t.replace('"0b919346a4a9b7cdb2f4e29de364b0ab40a5c53dfcaed619cf746b7a265549ed"', '"00"'), "admins[0]"),
    (lambda t: t + "\n[[observers]]\nname = \"bank-a\"\nnode_key = \"" + "11" * 32 + "\"\n", "name"),
    (lambda t: t + "\n[broken", "not valid TOML"),
])
def test_bad_genesis_names_file_and_key(tmp_path, edit, message):
    path = tmp_path / "genesis.toml"
    path.write_text(edit(EXAMPLE.read_text()))
    with pytest.raises(GenesisFileError) as error:
        load_genesis(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_key_files(tmp_path):
    key = SigningKey.generate()
    save_key(tmp_path / "k.json", key)
    assert bytes(load_key(tmp_path / "k.json")) == bytes(key)
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        save_key(tmp_path / "k.json", SigningKey.generate())
    (tmp_path / "bad.json").write_text('{"type": "ed25519", "seed": "zz"}')
    with pytest.raises(KeyFileError, match="bad.json"):
        load_key(tmp_path / "bad.json")
    with pytest.raises(KeyFileError, match="no such key file"):
        load_key(tmp_path / "missing.json")


def test_a_genesis_with_members_round_trips_and_its_errors_name_file_and_key(tmp_path):
    from ledger.testing import governed_genesis

    genesis = governed_genesis(members=(("bank-a", ("a1", "a2")), ("bank-b", ("b1",))), threshold=(2, 3))
    path = tmp_path / "genesis.toml"
    path.write_text(render_genesis(genesis))
    assert load_genesis(path) == genesis and load_genesis(path).hash == genesis.hash
    assert "# members:" in path.read_text() and "# thresholds:" in path.read_text()
    path.write_text(path.read_text().replace('id = "bank-b"', 'id = "bank-a"'))
    with pytest.raises(GenesisFileError) as error:
        load_genesis(path)
    assert str(path) in str(error.value) and "members[1].id: 'bank-a' is already the id of members[0]" in str(error.value)
    # the example's commented members table is the format the loader reads
    text = EXAMPLE.read_text()
    example = "\n".join(line[2:] if line.startswith("# ") and ("=" in line or line.startswith("# [")) else line
                        for line in text[text.index("# [[members]]"):].splitlines())
    example = example.replace('"<64 hex digits>", "<64 hex digits>"', '"' + "22" * 32 + '", "' + "33" * 32 + '"')
    example = example.replace('"<64 hex digits>"', '"' + "11" * 32 + '"')
    path.write_text(EXAMPLE.read_text() + "\n" + example)
    members = load_genesis(path).members
    assert [m.id for m in members] == ["bank-a", "bank-b"] and len(members[1].keys) == 2
