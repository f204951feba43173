"""The identity trail: which identities an event concerns, for the `ev_identity` index.

An event concerns an identity when
- its data names the identity (`identity.registered`, `identity.wallet_added`, `claim.granted`,
  `claim.revoked`, `token.recovered`, `ballot.voted`, `distribution.paid` and the other payments),
- or one of its addresses is a wallet of the identity (transfers, issues, redemptions, freezes,
  recoveries, payments, and the signer of a refused transaction),
- or, for `tx.rejected`, the refused transaction's body names the identity or one of its wallets
  (a transfer refused because of its receiver is in the receiver's trail too).

"Is a wallet of" and "is registered" are read as at the END of the event's block. A wallet is bound
to one identity for good (`wallet_already_registered`; a recovered wallet stays bound) and an
identity is never deleted, so that answer is the same whether it is read while the block is
committed or later from the log with the registrations' heights (`Ledger` rebuilding an older store's
index): every node, and every way of building the index, gives the same keys. An identity id that
was never registered (a refused `claim.grant` to a typo) indexes nothing.

Keys: identity id . NUL . event key (height, tx index, event index) -> b"", so one identity's
events are one prefix scan in log order. Nothing here is hashed into the state root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import layout

ADDRESS_BYTES = 32

#: Finds the identity a wallet belongs to (None: no identity).
WalletLookup = Callable[[bytes], str | None]
#: Tells whether an identity id is registered.
IdentityLookup = Callable[[str], bool]


def index_key(identity_id: str, ekey: bytes) -> bytes:
    return identity_id.encode() + layout.SEP + ekey


def index_prefix(identity_id: str) -> bytes:
    return identity_id.encode() + layout.SEP


def event_identities(kind: str, addresses: Iterable[bytes], data: Mapping[str, Any],
                     rejected_body: Mapping[str, Any] | None, wallet_identity: WalletLookup,
                     identity_exists: IdentityLookup) -> list[str]:
    """The identities the event concerns, ascending (so every node writes the same keys in the
    same order). `rejected_body` is the refused transaction's body, for `tx.rejected` only."""
    named: set[str] = set()
    wallets: set[bytes] = set(addresses)
    identity = data.get("identity")
    if isinstance(identity, str):
        named.add(identity)
    if kind == "tx.rejected" and rejected_body is not None:
        _body_references(rejected_body, None, named, wallets)
    found = {i for i in named if identity_exists(i)}
    for wallet in wallets:
        owner = wallet_identity(wallet)
        if owner is not None:
            found.add(owner)
    return sorted(found)


def _body_references(value: Any, key: str | None, named: set[str], wallets: set[bytes]) -> None:
    """Addresses anywhere in a body, and identity ids under `identity` (and in `payments` pairs)."""
    if isinstance(value, bytes):
        if len(value) == ADDRESS_BYTES:
            wallets.add(value)
    elif isinstance(value, str):
        if key in ("identity", "payments"):
            named.add(value)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            _body_references(item, name, named, wallets)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _body_references(item, key, named, wallets)


def registration_heights(events: Iterable[tuple[int, Mapping[str, Any]]]) -> tuple[dict[bytes, int], dict[str, int]]:
    """From (height, event) pairs of `identity.registered` and `identity.wallet_added`: the height
    each wallet and each identity was registered at, for reading "as at the end of height h" from
    the current state when the index is built after the fact."""
    wallet_at: dict[bytes, int] = {}
    identity_at: dict[str, int] = {}
    for height, event in events:
        data = event["data"]
        if event["kind"] == "identity.registered":
            identity_at.setdefault(data["identity"], height)
            for wallet in data["wallets"]:
                wallet_at.setdefault(wallet, height)
        elif event["kind"] == "identity.wallet_added":
            wallet_at.setdefault(data["wallet"], height)
    return wallet_at, identity_at
