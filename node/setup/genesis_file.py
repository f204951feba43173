"""Genesis files: the TOML form of `ledger.Genesis`, with errors that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w

from ledger import Genesis, InvalidGenesis


class GenesisFileError(Exception):
    """A genesis file that cannot be read or does not describe a chain."""


def load_genesis(path: str | Path) -> Genesis:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GenesisFileError(f"{path}: no such genesis file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GenesisFileError(f"{path}: not valid TOML ({exc})") from None
    try:
        return Genesis.from_dict(data)
    except InvalidGenesis as exc:
        raise GenesisFileError(f"{path}: {exc}") from None


def render_genesis(genesis: Genesis) -> str:
    header = (
        "# secledger genesis: every node of the chain must start from this very file.\n"
        "# chain_id: names the chain; transactions signed for another chain are refused.\n"
        "# validators: consensus key, peer-link key and voting power of each member.\n"
        "# observers: peer-link keys of read-only nodes (regulators) allowed to connect.\n"
        "# admins: account keys that may appoint claim issuers and token issuers (on a chain without members).\n"
    )
    if genesis.members:
        header += (
            "# members: the consortium; each member's account keys sign its proposals and votes.\n"
            "# thresholds: [numerator, denominator] of the members whose approval executes a proposal,\n"
            "#   per class of action (validators, members, roles, params); see docs/GOVERNANCE.md.\n"
        )
    return header + "\n" + tomli_w.dumps(genesis.to_dict())
