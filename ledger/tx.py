"""The signed transaction envelope: its one canonical encoding, its signature and its hash.

Wire form, canonical msgpack: `[chain_id, signer, nonce, kind, body, signature]`.
The signature is Ed25519 over `SIGN_DOMAIN + encode([chain_id, signer, nonce, kind, body])`, so a
signature made for a transaction can never be mistaken for one over a vote or a block.
The transaction hash is SHA-256 of the whole wire form. Because decoding refuses any non-canonical
spelling, and libsodium refuses non-canonical signatures, a transaction has exactly one hash.

Decoding has a fast path for the common kinds (`kinds.TYPED_KINDS`): msgspec decodes the envelope
and the body into typed structs, with their bounds, and re-encodes them; the transaction is taken
only if that gives back exactly the bytes received. Anything else (another kind, or any error) goes
the general way (`codec.decode`, then `check_body`), which decides and names every refusal. So
both ways accept the same transactions, with the same fields, and refuse with the same errors
(tests/unit/ledger/test_codec_typed.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from . import codec
from .errors import (
    BadSignature,
    IntegerOutOfBounds,
    MalformedTransaction,
    TransactionTooLarge,
    WrongChain,
)
from .kinds import ADDRESS_BYTES, check_body, decode_typed_body

#: Largest signed transaction, in bytes.
TX_BYTES_MAX: int = 16 * 1024
#: Largest nonce a signer may reach.
NONCE_MAX: int = 2**63 - 1
#: Domain separation for transaction signatures.
SIGN_DOMAIN: bytes = b"secledger/tx/v1\x00"
CHAIN_ID_LENGTH_MAX: int = 64
SIGNATURE_BYTES: int = 64


@dataclass(frozen=True, slots=True)
class Transaction:
    chain_id: str
    signer: bytes
    nonce: int
    kind: str
    body: dict[str, Any]
    signature: bytes
    raw: bytes  # the canonical wire bytes
    hash: bytes  # SHA-256 of `raw`


def signing_payload(chain_id: str, signer: bytes, nonce: int, kind: str, body: dict[str, Any]) -> bytes:
    return SIGN_DOMAIN + codec.encode([chain_id, signer, nonce, kind, body])


def sign_transaction(
    key: SigningKey, *, chain_id: str, nonce: int, kind: str, body: dict[str, Any]
) -> bytes:
    """Wire bytes of a transaction signed by `key`. The body is checked first, as decode would."""
    signer = bytes(key.verify_key)
    check_body(kind, body)
    signature = key.sign(signing_payload(chain_id, signer, nonce, kind, body)).signature
    return codec.encode([chain_id, signer, nonce, kind, body, signature])


def decode_transaction(data: bytes, *, chain_id: str, verify_signature: bool = True) -> Transaction:
    """Decode and check wire bytes; every way to be wrong has its own `InvalidTransaction` error.

    Nonces are not checked here (they depend on state); see `execution`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedTransaction("expected bytes")
    if len(data) > TX_BYTES_MAX:
        raise TransactionTooLarge(f"{len(data)} bytes, at most {TX_BYTES_MAX}")
    raw = bytes(data)
    fields = _decode_typed(raw)
    if fields is None:
        fields = _decode_general(raw)
    tx_chain, signer, nonce, kind, checked, signature = fields
    if tx_chain != chain_id:
        raise WrongChain(f"signed for chain {tx_chain!r}, this is {chain_id!r}")
    if verify_signature:
        try:
            VerifyKey(signer).verify(_payload_of(raw), signature)
        except (BadSignatureError, ValueError):
            raise BadSignature("signature does not verify for the signer's key") from None
    return Transaction(
        chain_id=tx_chain,
        signer=signer,
        nonce=nonce,
        kind=kind,
        body=checked,
        signature=signature,
        raw=raw,
        hash=hashlib.sha256(raw).digest(),
    )


_Fields = tuple[str, bytes, int, str, dict[str, Any], bytes]


class _Envelope(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """The wire form with the bounds `_decode_general` checks; the body still as msgpack bytes."""

    chain_id: Annotated[str, msgspec.Meta(min_length=1, max_length=CHAIN_ID_LENGTH_MAX)]
    signer: Annotated[bytes, msgspec.Meta(min_length=ADDRESS_BYTES, max_length=ADDRESS_BYTES)]
    nonce: Annotated[int, msgspec.Meta(ge=0, le=NONCE_MAX)]
    kind: str
    body: msgspec.Raw
    signature: Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_BYTES, max_length=SIGNATURE_BYTES)]


_ENVELOPE = msgspec.msgpack.Decoder(_Envelope)
_ENCODER = msgspec.msgpack.Encoder()


def _decode_typed(raw: bytes) -> _Fields | None:
    """The fast path: the fields of a transaction of a common kind, checked, or None (then the
    general path decides). Its own encoding must give back `raw` exactly: that is the canonical
    check, and it also refuses anything msgspec read more leniently than `codec.decode` would
    (trailing bytes, a repeated key, a longer spelling of a number)."""
    try:
        envelope = _ENVELOPE.decode(raw)
    except Exception:  # any refusal is judged, and named, by the general path
        return None
    typed = decode_typed_body(envelope.kind, envelope.body)
    if typed is None:
        return None
    struct, body = typed
    again = _ENCODER.encode([envelope.chain_id, envelope.signer, envelope.nonce, envelope.kind, struct,
                             envelope.signature])
    if again != raw:
        return None
    return envelope.chain_id, envelope.signer, envelope.nonce, envelope.kind, body, envelope.signature


def _decode_general(raw: bytes) -> _Fields:
    """Every kind, and the name of what is wrong: canonical msgpack, the envelope, the body."""
    value = codec.decode(raw, bytes_max=TX_BYTES_MAX)
    if not isinstance(value, list) or len(value) != 6:
        raise MalformedTransaction("expected [chain_id, signer, nonce, kind, body, signature]")
    tx_chain, signer, nonce, kind, body, signature = value
    if not isinstance(tx_chain, str) or not 1 <= len(tx_chain) <= CHAIN_ID_LENGTH_MAX:
        raise MalformedTransaction("chain_id: expected text")
    if not isinstance(signer, bytes) or len(signer) != ADDRESS_BYTES:
        raise MalformedTransaction("signer: expected a 32-byte public key")
    if not isinstance(nonce, int) or isinstance(nonce, bool):
        raise MalformedTransaction("nonce: expected an integer")
    if not 0 <= nonce <= NONCE_MAX:
        raise IntegerOutOfBounds(f"nonce: {nonce} outside [0, {NONCE_MAX}]")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise MalformedTransaction("signature: expected 64 bytes")
    if not isinstance(kind, str):
        raise MalformedTransaction("kind: expected text")
    return tx_chain, signer, nonce, kind, check_body(kind, body), signature


def _payload_of(raw: bytes) -> bytes:
    # The canonical wire form is a 6-array whose last item is a 64-byte bin (c4 40 + 64 bytes);
    # the first five items, under a 5-array header, are exactly the signed payload. Slicing
    # instead of re-encoding halves the decode cost on the hot path; tests pin the equivalence.
    return SIGN_DOMAIN + b"\x95" + raw[1 : -(2 + SIGNATURE_BYTES)]
