"""The double-sign guard's file: the newest record survives restarts, torn writes and the old format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consensus.signing import SignState, SignStep
from node.validator.sign_guard import SLOT_BYTES, SignGuardError, SignStateFile, _read_slot


def record(height: int, round_: int = 0, step: SignStep = SignStep.PREVOTE) -> SignState:
    return SignState(height=height, round=round_, step=step, sign_bytes=b"bytes-%d" % height, signature=bytes(64))


def test_a_fresh_file_holds_nothing_and_then_the_last_save(tmp_path: Path) -> None:
    guard = SignStateFile(tmp_path / "sign_state.bin")
    assert guard.load() is None
    for height in range(1, 8):
        guard.save(record(height))
    guard.close()
    assert (tmp_path / "sign_state.bin").stat().st_size == 2 * SLOT_BYTES
    assert SignStateFile(tmp_path / "sign_state.bin").load() == record(7)


def test_a_save_without_a_load_never_writes_an_older_sequence(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    first = SignStateFile(path)
    for height in range(1, 6):
        first.save(record(height))
    first.close()
    second = SignStateFile(path)  # a restart that saves before it loads
    second.save(record(6))
    second.close()
    assert SignStateFile(path).load() == record(6)


def test_a_torn_write_falls_back_to_the_record_before_it(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    guard = SignStateFile(path)
    guard.save(record(1))
    guard.save(record(2))
    guard.close()
    data = bytearray(path.read_bytes())
    # Sequence 2 sits in slot 0 (2 % 2); tear it half way, as a power cut during the write would.
    data[40:80] = bytes(40)
    path.write_bytes(bytes(data))
    reopened = SignStateFile(path)
    assert reopened.load() == record(1)
    # The message record 2 guarded was never sent (sending waits for the save); the next save goes on.
    reopened.save(record(2, step=SignStep.PRECOMMIT))
    reopened.close()
    assert SignStateFile(path).load() == record(2, step=SignStep.PRECOMMIT)


def test_a_file_of_the_earlier_format_is_read_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(record(41).encode())
    guard = SignStateFile(path)
    assert guard.load() == record(41)
    guard.save(record(42))
    guard.close()
    assert path.stat().st_size == 2 * SLOT_BYTES
    assert SignStateFile(path).load() == record(42)


def test_an_earlier_format_file_is_kept_when_the_first_save_comes_without_a_load(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(record(41).encode())
    guard = SignStateFile(path)
    guard.save(record(42))
    guard.close()
    assert SignStateFile(path).load() == record(42)


@pytest.mark.parametrize("content", [b"\xc1" * 10, b"\x01" * (2 * SLOT_BYTES)])
def test_an_unreadable_file_stops_the_node_rather_than_guessing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(content)
    with pytest.raises(SignGuardError, match="refusing to start"):
        SignStateFile(path).load()


def test_a_blank_two_slot_file_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(bytes(2 * SLOT_BYTES))  # a crash after creating the file, before any record
    assert SignStateFile(path).load() is None


def test_a_save_over_an_unreadable_file_refuses_instead_of_overwriting_it(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(b"\x01" * (2 * SLOT_BYTES))
    with pytest.raises(SignGuardError):
        SignStateFile(path).save(record(1))
    assert path.read_bytes() == b"\x01" * (2 * SLOT_BYTES)


def test_a_failed_save_is_retried_into_the_older_slot_not_over_the_newest_record(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    path = tmp_path / "sign_state.bin"
    guard = SignStateFile(path)
    guard.save(record(1))
    guard.save(record(2))  # sequence 2, in slot 0
    real_fdatasync = os.fdatasync

    def failing_fdatasync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    with pytest.raises(OSError):
        guard.save(record(3))
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    guard.save(record(3))
    guard.close()
    data = path.read_bytes()
    assert _read_slot(data[:SLOT_BYTES]) == (2, record(2))  # the newest record before the failure, intact
    assert SignStateFile(path).load() == record(3)
