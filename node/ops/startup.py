"""Start-up checks: what must stop a node before it takes part, each said in one line that names
the config file and the key to fix, with exit code 2 and no traceback (node/main.py):

    cannot start validator-0: testnet/validator-0.toml: rpc.listen: port 26601 of 127.0.0.1 is already in use ...

In the order `run` meets them:
1. `check_key_files`: a key file that group or others may read or write. A validator key is the
   consortium's trust in this member; a copy is a double sign waiting to happen.
2. Building the node: the genesis, the key files, the double-sign guard, and a store that belongs
   to another chain (`describe_failure` names the key of each).
3. `check_validator_set`: a validator whose key is in the validator set of neither of the next
   two heights. On a chain with members this is a WARNING, not a refusal: the consortium adds a
   validator by a proposal, and its operator starts the node first, so it can follow and sync
   before its first height (docs/GOVERNANCE.md, section 14). On a chain without members the set
   is the genesis one for good, so such a node could never vote: refused.
4. `check_listen_addresses`: an address of `p2p.listen`, `rpc.listen` or `metrics.listen` (when
   enabled) that cannot be listened on: in use, not an address of this host, or a privileged port.
   Checked by binding all of them at once, before the node signs or dials anything; a port taken
   between the check and the real bind still stops the node with one line.
"""

from __future__ import annotations

import errno
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb

from ledger import LedgerError

from ..setup.config import Address, NodeConfig
from ..setup.genesis_file import GenesisFileError
from ..setup.keys import KeyFileError
from ..validator.sign_guard import SignGuardError

if TYPE_CHECKING:
    from node.service import Node

#: The config keys that name key files, all in [node].
KEY_FILE_KEYS: tuple[str, ...] = ("node_key_file", "validator_key_file", "next_validator_key_file")


class StartupError(Exception):
    """Why the node must not start: the config file, the dotted key to fix, and the problem."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}")


def check_key_files(config: NodeConfig, config_file: str | Path) -> None:
    """Refuse a key file that group or others may read or write (the next key only if it exists)."""
    for key in KEY_FILE_KEYS:
        path: Path | None = getattr(config.node, key)
        if path is None:
            continue
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue  # the next key may be created later; a missing required key fails elsewhere
        except OSError as exc:
            raise StartupError(config_file, f"node.{key}", f"cannot read {path}: {exc.strerror}") from None
        if mode & 0o077:
            access = "readable" if mode & 0o044 else "writable"
            raise StartupError(config_file, f"node.{key}",
                               f"{path} is {access} by group or others (mode {mode:04o}); a key file must be "
                               f"its owner's alone: run chmod 600 {path}")


def check_validator_set(node: Node, config_file: str | Path) -> str | None:
    """None when this validator's key (or the key it may rotate to) is in the set of the next or
    the one after; else a warning to log, or StartupError on a chain whose set cannot change."""
    if node.observer:
        return None
    tip = node.ledger.tip.height
    keys = [bytes(key.verify_key) for key in node.signing_keys()]
    if any(key in node.validator_sets.at(height) for height in (tip + 1, tip + 2) for key in keys):
        return None
    key_hex = keys[0].hex()
    if not node.genesis.members:
        raise StartupError(config_file, "node.validator_key_file",
                           f"key {key_hex} is not a validator of chain {node.chain_id!r}, and its genesis "
                           f"({node.config.node.genesis_file}) has no members who could add it: use a key the "
                           f"genesis lists, or run this node as an observer")
    return (f"{config_file}: node.validator_key_file: key {key_hex[:16]} is not in the validator set of height "
            f"{tip + 1}: this node follows the chain without voting until the consortium adds the key "
            f"(docs/GOVERNANCE.md, section 14)")


def check_listen_addresses(config: NodeConfig, config_file: str | Path) -> None:
    """Bind every address the node will listen on, all at once, then let them go."""
    listeners = [("p2p.listen", config.p2p.listen), ("rpc.listen", config.rpc.listen)]
    if config.metrics.enabled:
        listeners.append(("metrics.listen", config.metrics.listen))
    held: list[socket.socket] = []
    try:
        for key, address in listeners:
            if address.port != 0:
                held.extend(_listen(config_file, key, address))
    finally:
        for sock in held:
            sock.close()


def describe_failure(exc: BaseException, config: NodeConfig, config_file: str | Path) -> StartupError | None:
    """The config key behind an error raised while the node was built, or None if not one of ours."""
    node = config.node
    if isinstance(exc, GenesisFileError):
        return StartupError(config_file, "node.genesis_file", str(exc))
    if isinstance(exc, KeyFileError):
        message = str(exc)
        key = next((k for k in KEY_FILE_KEYS if getattr(node, k) is not None and str(getattr(node, k)) in message),
                   "node_key_file")
        return StartupError(config_file, f"node.{key}", message)
    if isinstance(exc, SignGuardError):
        return StartupError(config_file, "node.home", str(exc))
    if isinstance(exc, LedgerError | lmdb.Error):
        return StartupError(config_file, "node.home", f"store {node.home / 'store'}: {exc}")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return StartupError(config_file, "node.home", f"{exc.strerror or exc}{where}")
    return None


def _listen(config_file: str | Path, key: str, address: Address) -> list[socket.socket]:
    """Listening sockets on every address `address.host` stands for, as asyncio's servers bind them."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(config_file, key, f"cannot resolve {address.host!r}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(1)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(config_file, key, listen_problem(address, exc)) from None
    return sockets


def listen_problem(address: Address, exc: OSError) -> str:
    """Why `address` cannot be listened on, in words an operator can act on."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {address.port} of {address.host} is already in use (another node or program listens "
                f"there): stop it, or choose another port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{address.host} is not an address of this host"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {address.port} (ports below 1024 need privileges)"
    return f"cannot listen on {address}: {exc.strerror or exc}"
