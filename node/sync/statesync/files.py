"""Snapshots on disk, under `<home>/snapshots/<height>/`: `manifest` and `chunk-<index>`. A snapshot
is written into a temporary directory and renamed into place, so a crash never leaves a half one
listed. The last `kept` snapshots are kept; older ones are removed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .snapshot import Manifest, Snapshot, SnapshotError


class SnapshotFiles:
    def __init__(self, directory: Path, *, kept: int = 2) -> None:
        self.directory = directory
        self.kept = max(1, kept)
        self._manifests: dict[int, Manifest] = {}

    def heights(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and (p / "manifest").is_file())

    def write(self, snapshot: Snapshot) -> Path:
        height = snapshot.manifest.point.height
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / str(height)
        if final.exists():
            return final
        temporary = self.directory / f".{height}.partial"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        for index, chunk in enumerate(snapshot.chunks):
            (temporary / f"chunk-{index}").write_bytes(chunk)
        (temporary / "manifest").write_bytes(snapshot.manifest.encode())
        for path in temporary.iterdir():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(temporary, final)
        self.prune()
        return final

    def prune(self) -> None:
        for height in self.heights()[:-self.kept]:
            shutil.rmtree(self.directory / str(height), ignore_errors=True)
            self._manifests.pop(height, None)

    def manifest(self, height: int) -> Manifest:
        cached = self._manifests.get(height)
        if cached is None:
            try:
                cached = Manifest.decode((self.directory / str(height) / "manifest").read_bytes())
            except OSError as exc:
                raise SnapshotError(f"no snapshot at height {height}: {exc.strerror}") from None
            self._manifests[height] = cached
        return cached

    def chunk(self, height: int, index: int) -> bytes:
        manifest = self.manifest(height)
        if not 0 <= index < len(manifest.chunk_hashes):
            raise SnapshotError(f"snapshot {height} has no chunk {index}")
        try:
            return (self.directory / str(height) / f"chunk-{index}").read_bytes()
        except OSError as exc:
            raise SnapshotError(f"snapshot {height} chunk {index}: {exc.strerror}") from None
