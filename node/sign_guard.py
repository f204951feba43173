"""The double-sign guard on disk: what this validator last signed, saved before it is sent.

Written to a temporary file, fsynced, renamed over the old one and the directory fsynced, so after a
crash at any moment the file holds either the previous record or the new one, never a torn mix.
"""

from __future__ import annotations

import os
from pathlib import Path

from consensus.errors import MalformedMessage
from consensus.signing import SignState


class SignGuardError(Exception):
    """The saved record exists but cannot be read: refuse to sign rather than risk a double sign."""


class SignStateFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> SignState | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return SignState.decode(data)
        except MalformedMessage as exc:
            raise SignGuardError(f"{self.path}: unreadable sign state ({exc}); refusing to start") from None

    def save(self, state: SignState) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, state.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
