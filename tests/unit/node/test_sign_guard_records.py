"""Where the double-sign guard keeps its records: in place, in the slot that is not the newest, in
a private file, through one descriptor; and a record from an earlier format is never dropped
before its successor is on disk."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

import pytest

from consensus.signing import SignState, SignStep
from node.validator.sign_guard import SLOT_BYTES, SignStateFile, _read_slot, _slot


def record(height: int, round_: int = 0, step: SignStep = SignStep.PREVOTE) -> SignState:
    return SignState(height=height, round=round_, step=step, sign_bytes=b"bytes-%d" % height, signature=bytes(64))


def slots(path: Path) -> tuple:
    data = path.read_bytes()
    return _read_slot(data[:SLOT_BYTES]), _read_slot(data[SLOT_BYTES:])


def test_a_restarted_guard_saves_in_place_and_carries_on_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    guard = SignStateFile(path)
    for height in range(1, 6):
        guard.save(record(height))
    guard.close()
    inode = path.stat().st_ino
    restarted = SignStateFile(path)
    restarted.save(record(6))
    restarted.close()
    assert path.stat().st_ino == inode  # no new file, no rename: the fast path
    assert slots(path) == ((6, record(6)), (5, record(5)))


def test_the_first_save_over_an_earlier_format_file_keeps_that_record_in_the_other_slot(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(record(41).encode())
    guard = SignStateFile(path)
    guard.save(record(42))
    guard.close()
    assert slots(path) == ((2, record(42)), (1, record(41)))


def test_a_failed_first_save_over_an_earlier_format_file_still_leaves_its_record(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    path = tmp_path / "sign_state.bin"
    path.write_bytes(record(41).encode())
    real_pwrite = os.pwrite

    def pwrite_failing_on_the_new_record(fd: int, data: bytes, offset: int) -> int:
        if offset == 0 and len(data) == SLOT_BYTES:
            raise OSError(5, "Input/output error")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite_failing_on_the_new_record)
    guard = SignStateFile(path)  # a restart that saves before it loads
    with pytest.raises(OSError):
        guard.save(record(42))
    guard.close()
    assert SignStateFile(path).load() == record(41)


def test_a_closed_guard_can_be_closed_again_and_saves_again(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    guard = SignStateFile(path)
    guard.save(record(1))
    guard.close()
    guard.close()
    guard.save(record(2))
    guard.close()
    assert SignStateFile(path).load() == record(2)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_a_guard_holds_one_descriptor_however_many_saves(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    path = tmp_path / "sign_state.bin"
    before = open_fds()
    guard = SignStateFile(path)
    for height in range(1, 20):
        guard.save(record(height))
    assert open_fds() == before + 1
    guard.close()
    assert open_fds() == before
    restarted = SignStateFile(path)
    for height in range(20, 40):
        restarted.save(record(height))
    assert open_fds() == before + 1
    restarted.close()


def test_the_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "sign_state.bin"
    old = os.umask(0o022)
    try:
        guard = SignStateFile(path)
        guard.save(record(1))
        guard.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_slot_of_another_format_is_not_trusted_even_with_a_matching_checksum(tmp_path: Path) -> None:
    body = record(9).encode()
    header = struct.pack(">4sQH", b"XXXX", 9, len(body))
    foreign = header + hashlib.sha256(header + body).digest() + body
    path = tmp_path / "sign_state.bin"
    path.write_bytes(foreign + bytes(SLOT_BYTES - len(foreign)) + _slot(3, record(3).encode()))
    assert SignStateFile(path).load() == record(3)
