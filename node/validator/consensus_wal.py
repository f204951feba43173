"""The consensus write-ahead log: every proposal and vote this node received or signed for the
heights it has not decided yet, so that a restart can feed them back to the core.

The core is safe without it (its lock and last signature are in the double-sign guard), but not
always live: after a restart it would forget votes that only it holds (docs/CONSENSUS.md, "What
the node's gossip must do", item 4). One append-only file per height, each record a 4-byte length
and the encoded message; files of decided heights are deleted.

Beside them, one file per block this node proposed or judged valid. A node signs for a block only
after that, so after a restart the block of every decision it replays is here, even if every
validator stopped between deciding it and storing it, when no peer could serve it.

Records and blocks are flushed to the OS when written (they survive the process being killed) but
not fsynced: losing them to a power cut costs liveness at worst, never safety, and an fsync per
vote would halve the vote rate.
"""

from __future__ import annotations

import struct
from pathlib import Path

_LENGTH = struct.Struct(">I")
#: Most records kept per height: a flood of valid-looking votes cannot fill the disk.
RECORDS_PER_HEIGHT_MAX: int = 50_000
MESSAGE_BYTES_MAX: int = 4096
#: Most blocks kept per height (a new round may bring a new proposal).
BLOCKS_PER_HEIGHT_MAX: int = 16


class ConsensusWal:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[int, object] = {}
        self._counts: dict[int, int] = {}
        self._block_ids: dict[int, set[bytes]] = {}  # height -> ids of the blocks written this run
        # Every file here by height, so forgetting a height needs no directory listing (the
        # directory is listed once, for what an earlier run left).
        self._paths: dict[int, set[Path]] = {}
        for path in [*self.directory.glob("*.wal"), *self.directory.glob("*.block")]:
            try:
                self._paths.setdefault(int(path.name.split(".", 1)[0]), set()).add(path)
            except ValueError:
                continue

    def _path(self, height: int) -> Path:
        return self.directory / f"{height:020d}.wal"

    def append(self, height: int, message: bytes) -> None:
        if len(message) > MESSAGE_BYTES_MAX or self._counts.get(height, 0) >= RECORDS_PER_HEIGHT_MAX:
            return
        handle = self._files.get(height)
        if handle is None:
            path = self._path(height)
            handle = self._files[height] = open(path, "ab")  # noqa: SIM115
            self._paths.setdefault(height, set()).add(path)
        handle.write(_LENGTH.pack(len(message)) + message)  # type: ignore[attr-defined]
        handle.flush()  # type: ignore[attr-defined]
        self._counts[height] = self._counts.get(height, 0) + 1

    def read(self, height: int) -> list[bytes]:
        """The records of `height` in the order written; a torn last record is ignored."""
        try:
            data = self._path(height).read_bytes()
        except FileNotFoundError:
            return []
        out, offset = [], 0
        while offset + _LENGTH.size <= len(data):
            (length,) = _LENGTH.unpack_from(data, offset)
            record = data[offset + _LENGTH.size: offset + _LENGTH.size + length]
            if len(record) != length or length > MESSAGE_BYTES_MAX:
                break
            out.append(record)
            offset += _LENGTH.size + length
        return out

    def has_block(self, height: int, block_id: bytes) -> bool:
        """Whether this run already kept `block_id` (so a caller need not encode it again)."""
        return block_id in self._block_ids.get(height, ())

    def append_block(self, height: int, block_id: bytes, block: bytes) -> None:
        """Keep a proposed block of `height` (its encoded bytes) until the height is decided."""
        ids = self._block_ids.setdefault(height, set())
        if block_id in ids or len(ids) >= BLOCKS_PER_HEIGHT_MAX:
            return
        ids.add(block_id)
        path = self.directory / f"{height:020d}.{block_id.hex()}.block"
        self._paths.setdefault(height, set()).add(path)
        with open(path, "wb") as handle:
            handle.write(block)  # flushed to the OS on close: survives a killed process

    def read_blocks(self, height: int) -> list[bytes]:
        """The blocks kept for `height`; the caller decodes them (a torn one fails to decode)."""
        return [path.read_bytes() for path in sorted(self._paths.get(height, ())) if path.suffix == ".block"]

    def forget_below(self, height: int) -> None:
        """Drop the logs and blocks of every height below `height` (decided: the store has them)."""
        for h in [h for h in self._files if h < height]:
            self._files.pop(h).close()  # type: ignore[attr-defined]
            self._counts.pop(h, None)
        self._block_ids = {h: ids for h, ids in self._block_ids.items() if h >= height}
        for h in [h for h in self._paths if h < height]:
            for path in self._paths.pop(h):
                path.unlink(missing_ok=True)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()  # type: ignore[attr-defined]
        self._files.clear()
