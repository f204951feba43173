"""The consensus write-ahead log keeps undecided heights' messages across a restart."""

from __future__ import annotations

from nacl.signing import SigningKey

from consensus.messages import PREVOTE, encode_message
from consensus.signing import Signer
from node.validator.consensus_wal import RECORDS_PER_HEIGHT_MAX, ConsensusWal


def vote(height: int, round_: int) -> bytes:
    signer = Signer(SigningKey(bytes(32)), "chain")
    return encode_message(signer.sign_vote(PREVOTE, height, round_, b"\x01" * 32))


def test_append_read_forget(tmp_path):
    wal = ConsensusWal(tmp_path / "wal")
    wal.append(5, vote(5, 0))
    wal.append(5, vote(5, 1))
    wal.append(6, vote(6, 0))
    wal.close()
    again = ConsensusWal(tmp_path / "wal")  # a restart
    assert again.read(5) == [vote(5, 0), vote(5, 1)] and again.read(6) == [vote(6, 0)]
    again.forget_below(6)
    assert again.read(5) == [] and again.read(6) == [vote(6, 0)]


def test_a_torn_last_record_is_ignored(tmp_path):
    wal = ConsensusWal(tmp_path / "wal")
    wal.append(3, vote(3, 0))
    wal.close()
    path = next((tmp_path / "wal").glob("*.wal"))
    path.write_bytes(path.read_bytes() + b"\x00\x00\x01\x00partial")
    assert ConsensusWal(tmp_path / "wal").read(3) == [vote(3, 0)]


def test_bounded_per_height(tmp_path, monkeypatch):
    monkeypatch.setattr("node.validator.consensus_wal.RECORDS_PER_HEIGHT_MAX", 3)
    wal = ConsensusWal(tmp_path / "wal")
    for round_ in range(10):
        wal.append(1, vote(1, round_))
    assert len(wal.read(1)) == 3
    assert RECORDS_PER_HEIGHT_MAX > 3


def test_blocks_are_kept_per_height_until_the_height_is_decided(tmp_path):
    wal = ConsensusWal(tmp_path / "wal")
    wal.append_block(7, b"\x01" * 32, b"block one" * 1000)  # far over a message's 4 KiB
    wal.append_block(7, b"\x02" * 32, b"block two")
    wal.append_block(7, b"\x01" * 32, b"block one again")  # the same block id: kept once
    assert wal.has_block(7, b"\x01" * 32) and not wal.has_block(7, b"\x03" * 32)
    wal.append_block(8, b"\x03" * 32, b"next")
    wal.close()
    again = ConsensusWal(tmp_path / "wal")  # a restart
    assert sorted(again.read_blocks(7)) == sorted([b"block one" * 1000, b"block two"])
    again.forget_below(8)
    assert again.read_blocks(7) == [] and again.read_blocks(8) == [b"next"]


def test_blocks_per_height_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("node.validator.consensus_wal.BLOCKS_PER_HEIGHT_MAX", 2)
    wal = ConsensusWal(tmp_path / "wal")
    for n in range(5):
        wal.append_block(1, bytes([n]) * 32, b"b")
    assert len(wal.read_blocks(1)) == 2


def test_forgetting_removes_the_files_of_this_run_and_of_earlier_ones(tmp_path):
    earlier = ConsensusWal(tmp_path / "wal")
    earlier.append(3, vote(3, 0))
    earlier.append_block(3, b"\x01" * 32, b"three")
    earlier.close()
    wal = ConsensusWal(tmp_path / "wal")
    wal.append(4, vote(4, 0))
    wal.append_block(4, b"\x02" * 32, b"four")
    wal.append(5, vote(5, 0))
    wal.forget_below(5)
    assert sorted(p.name.split(".", 1)[0] for p in (tmp_path / "wal").iterdir()) == [f"{5:020d}"]
    assert wal.read(5) == [vote(5, 0)]
