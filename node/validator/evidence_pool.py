"""Evidence of misbehaviour (two conflicting signed messages from one validator), kept on disk
and queryable. Appended as length-prefixed records; a torn last record after a crash is ignored."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from consensus.errors import MalformedMessage
from consensus.evidence import Evidence, decode_evidence

_LENGTH = struct.Struct(">I")
#: Most evidence records kept; past it, new evidence is still logged but not stored.
EVIDENCE_MAX: int = 10_000


class EvidencePool:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.items: list[Evidence] = []
        self._seen: set[bytes] = set()
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        offset = 0
        while offset + _LENGTH.size <= len(data):
            (length,) = _LENGTH.unpack_from(data, offset)
            record = data[offset + _LENGTH.size: offset + _LENGTH.size + length]
            if len(record) != length:
                break
            try:
                evidence = decode_evidence(record)
            except MalformedMessage:
                break
            self.items.append(evidence)
            self._seen.add(record)
            offset += _LENGTH.size + length

    def add(self, evidence: Evidence) -> bool:
        """Keep `evidence`; False if it was already known or the pool is full."""
        record = evidence.encode()
        if record in self._seen or len(self.items) >= EVIDENCE_MAX:
            return False
        self._seen.add(record)
        self.items.append(evidence)
        with open(self.path, "ab") as handle:
            handle.write(_LENGTH.pack(len(record)) + record)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def describe(self) -> list[dict[str, Any]]:
        return [{"kind": type(e).__name__, "validator": e.validator.hex(), "height": e.height,
                 "encoded": e.encode().hex()} for e in self.items]
