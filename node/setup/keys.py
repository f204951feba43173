"""Key files: an Ed25519 seed on disk, readable only by its owner.

A node has a node key (authenticates its peer links) and, if it is a validator, a validator key
(signs proposals and votes). Account keys (administrators, issuers, investors) use the same format.
File format, JSON: {"type": "ed25519", "seed": "<64 hex>", "public_key": "<64 hex>"}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nacl.signing import SigningKey


class KeyFileError(Exception):
    """A key file that is missing, unreadable or not a key."""


def save_key(path: str | Path, key: SigningKey) -> None:
    """Write atomically with mode 0600; never overwrite an existing key."""
    path = Path(path)
    if path.exists():
        raise KeyFileError(f"{path}: exists; refusing to overwrite a key")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"type": "ed25519", "seed": bytes(key).hex(),
                       "public_key": bytes(key.verify_key).hex()}, indent=2) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_key(path: str | Path) -> SigningKey:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a key file ({exc})") from None
    try:
        if data.get("type") != "ed25519":
            raise ValueError("type must be ed25519")
        key = SigningKey(bytes.fromhex(data["seed"]))
        if "public_key" in data and bytes(key.verify_key).hex() != data["public_key"]:
            raise ValueError("public_key does not match the seed")
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a key file ({exc})") from None
    return key
