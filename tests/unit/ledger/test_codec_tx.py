"""Canonical encoding, the transaction envelope, and bad input: each way to be wrong has its named
error, and a block carrying such a transaction is refused whole, leaving the store unchanged."""

from __future__ import annotations

import hashlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec
from ledger.errors import (
    BadSignature,
    IntegerOutOfBounds,
    InvalidBlock,
    InvalidBody,
    MalformedTransaction,
    NonCanonicalEncoding,
    TransactionTooLarge,
    UnknownKind,
    WrongChain,
)
from ledger.events import Event
from ledger.kinds import AMOUNT_MAX, KINDS, check_body
from ledger.testing import CHAIN_ID, address_of, key_for
from ledger.tx import (
    SIGN_DOMAIN,
    TX_BYTES_MAX,
    _payload_of,
    decode_transaction,
    sign_transaction,
    signing_payload,
)


def _tx(kind: str = "token.pause", body: dict | None = None, *, name: str = "alice", nonce: int = 0,
        chain_id: str = CHAIN_ID) -> bytes:
    return sign_transaction(key_for(name), chain_id=chain_id, nonce=nonce, kind=kind,
                            body={"token": "ACME"} if body is None else body)


def _resign(items: list, *, name: str = "alice") -> bytes:
    """Wire bytes for an arbitrary 5-item payload, signed properly (to reach checks past the signature)."""
    chain_id, signer, nonce, kind, body = items
    payload = SIGN_DOMAIN + codec.encode([chain_id, signer, nonce, kind, body])
    signature = key_for(name).sign(payload).signature
    return codec.encode([chain_id, signer, nonce, kind, body, signature])


# --- codec -----------------------------------------------------------------------------------------


def test_encode_sorts_keys_and_round_trips():
    assert codec.encode({"b": 1, "a": [1, b"x", None, True]}) == codec.encode({"a": [1, b"x", None, True], "b": 1})
    raw = codec.encode({"b": 1, "a": 2})
    assert codec.decode(raw, bytes_max=100) == {"a": 2, "b": 1}


@given(kind=st.sampled_from(["token.transferred", "tx.rejected"]), token=st.none() | st.text(max_size=8),
       addresses=st.lists(st.binary(min_size=1, max_size=33), max_size=3),
       data=st.dictionaries(st.text(max_size=6), st.integers(0, AMOUNT_MAX) | st.binary(max_size=8)
                            | st.lists(st.integers(-5, 5), max_size=3), max_size=5),
       height=st.integers(0, 2**64 - 1), tx_index=st.integers(0, 2**32 - 1))
def test_events_packed_on_the_hot_path_are_the_canonical_bytes(kind, token, addresses, data, height, tx_index):
    """Event.encode skips codec.encode's walk of what it built itself; the bytes must not differ,
    or every state root would."""
    event = Event(kind, token, tuple(addresses), data)
    expected = codec.encode({"kind": kind, "token": token, "addresses": addresses, "data": data, "tx": b"h" * 32,
                             "height": height, "tx_index": tx_index, "event_index": 3})
    assert event.encode(tx_hash=b"h" * 32, height=height, tx_index=tx_index, event_index=3) == expected


def test_an_event_with_a_float_in_its_data_is_still_refused():
    with pytest.raises(ValueError, match="floats"):
        Event("token.transferred", "ACME", (), {"amount": 1.5}).encode(tx_hash=b"", height=1, tx_index=0,
                                                                         event_index=0)


@pytest.mark.parametrize("value", [1.5, {1: "int key"}, {"a": {1, 2}}, object()])
def test_encode_refuses_values_without_one_spelling(value):
    with pytest.raises(ValueError):
        codec.encode(value)


def test_encode_refuses_deep_nesting():
    value: list = []
    for _ in range(codec.DEPTH_MAX + 2):
        value = [value]
    with pytest.raises(ValueError):
        codec.encode(value)


@pytest.mark.parametrize("raw", [
    msgpack.packb({"b": 1, "a": 2}),  # keys out of order
    b"\xcd\x00\x05",  # 5 as a uint16: not the shortest form
    b"\xcb" + b"\x00" * 8,  # a float
    b"\xd9\x01a",  # "a" as str8 instead of fixstr
])
def test_decode_refuses_second_spellings(raw):
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(raw, bytes_max=100)


@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x92\x01", b"\x01\x02", b"\xd4\x01\x02"])
def test_decode_refuses_what_is_not_one_msgpack_value(raw):
    with pytest.raises(MalformedTransaction):
        codec.decode(raw, bytes_max=100)


def test_decode_refuses_deep_nesting_before_it_costs_stack():
    raw = b"\x91" * (codec.DEPTH_MAX + 5) + b"\x90"
    with pytest.raises(MalformedTransaction, match="nested"):
        codec.decode(raw, bytes_max=100)


# --- the envelope ------------------------------------------------------------------------------------


def test_sign_and_decode_round_trip():
    raw = _tx(nonce=7)
    tx = decode_transaction(raw, chain_id=CHAIN_ID)
    assert (tx.chain_id, tx.signer, tx.nonce, tx.kind, tx.body) == (CHAIN_ID, address_of("alice"), 7,
                                                                     "token.pause", {"token": "ACME"})
    assert tx.hash == hashlib.sha256(raw).digest() and tx.raw == raw
    assert len(tx.signature) == 64


@pytest.mark.parametrize("nonce", [0, 1, 127, 128, 2**16, 2**63 - 1])
def test_signed_payload_is_the_slice_of_the_wire_form(nonce):
    # decode_transaction verifies against a slice of the wire bytes instead of a re-encode.
    raw = _tx(nonce=nonce, kind="identity.register",
              body={"identity": "x" * 64, "wallets": sorted(address_of(str(i)) for i in range(64))})
    tx = decode_transaction(raw, chain_id=CHAIN_ID)
    assert _payload_of(raw) == signing_payload(tx.chain_id, tx.signer, tx.nonce, tx.kind, tx.body)


def test_truncated_transaction_is_malformed():
    raw = _tx()
    for cut in (1, 10, len(raw) // 2, len(raw) - 1):
        with pytest.raises(MalformedTransaction):
            decode_transaction(raw[:cut], chain_id=CHAIN_ID)


def test_trailing_bytes_are_malformed():
    with pytest.raises(MalformedTransaction):
        decode_transaction(_tx() + b"\x00", chain_id=CHAIN_ID)


def test_oversized_transaction_is_refused_before_decoding():
    with pytest.raises(TransactionTooLarge):
        decode_transaction(b"\x96" + b"\x00" * TX_BYTES_MAX, chain_id=CHAIN_ID)


def test_non_canonical_transaction_is_refused():
    raw = _tx()
    value = msgpack.unpackb(raw, raw=False)
    # the same nonce 0 spelled as a uint32, properly signed over the canonical payload
    spelled = b"\x96" + b"".join(msgpack.packb(v, use_bin_type=True) for v in value[:2]) + b"\xce\x00\x00\x00\x00" \
        + b"".join(msgpack.packb(v, use_bin_type=True) for v in value[3:])
    assert msgpack.unpackb(spelled, raw=False) == value
    with pytest.raises(NonCanonicalEncoding):
        decode_transaction(spelled, chain_id=CHAIN_ID)


def test_wrong_signature_is_refused():
    raw = bytearray(_tx())
    raw[-1] ^= 1
    with pytest.raises(BadSignature):
        decode_transaction(bytes(raw), chain_id=CHAIN_ID)


def test_signature_by_another_key_is_refused():
    value = msgpack.unpackb(_tx(), raw=False)
    value[1] = address_of("mallory")
    with pytest.raises(BadSignature):
        decode_transaction(codec.encode(value), chain_id=CHAIN_ID)


def test_signature_check_can_be_skipped_for_verified_transactions():
    raw = bytearray(_tx())
    raw[-1] ^= 1
    assert decode_transaction(bytes(raw), chain_id=CHAIN_ID, verify_signature=False).kind == "token.pause"


def test_wrong_chain_is_refused():
    with pytest.raises(WrongChain):
        decode_transaction(_tx(chain_id="other-chain"), chain_id=CHAIN_ID)


def test_unknown_kind_is_refused():
    raw = _resign(["secledger-test", address_of("alice"), 0, "token.mint", {"token": "ACME"}])
    with pytest.raises(UnknownKind):
        decode_transaction(raw, chain_id=CHAIN_ID)
    with pytest.raises(UnknownKind):
        _tx(kind="token.mint")  # the client refuses it before signing


@pytest.mark.parametrize("items, error", [
    ([CHAIN_ID, b"short", 0, "token.pause", {"token": "ACME"}], MalformedTransaction),
    (["", address_of("alice"), 0, "token.pause", {"token": "ACME"}], MalformedTransaction),
    ([CHAIN_ID, address_of("alice"), -1, "token.pause", {"token": "ACME"}], IntegerOutOfBounds),
    ([CHAIN_ID, address_of("alice"), True, "token.pause", {"token": "ACME"}], MalformedTransaction),
    ([CHAIN_ID, address_of("alice"), 0, 5, {"token": "ACME"}], MalformedTransaction),
    ([CHAIN_ID, address_of("alice"), 0, "token.pause", {"token": "acme"}], InvalidBody),
    ([CHAIN_ID, address_of("alice"), 0, "token.pause", {}], InvalidBody),
    ([CHAIN_ID, address_of("alice"), 0, "token.pause", {"token": "ACME", "extra": 1}], InvalidBody),
    ([CHAIN_ID, address_of("alice"), 0, "token.transfer", {"token": "ACME", "to": address_of("b"), "amount": 0}],
     IntegerOutOfBounds),
])
def test_malformed_envelopes_and_bodies(items, error):
    with pytest.raises(error):
        decode_transaction(_resign(items), chain_id=CHAIN_ID)


def test_envelope_of_wrong_shape_is_malformed():
    with pytest.raises(MalformedTransaction):
        decode_transaction(codec.encode([CHAIN_ID, address_of("a"), 0, "token.pause", {"token": "A"}]),
                           chain_id=CHAIN_ID)
    with pytest.raises(MalformedTransaction):
        decode_transaction(codec.encode({"chain_id": CHAIN_ID}), chain_id=CHAIN_ID)
    value = msgpack.unpackb(_tx(), raw=False)
    value[5] = value[5][:63]
    with pytest.raises(MalformedTransaction):
        decode_transaction(codec.encode(value), chain_id=CHAIN_ID)


# --- body schemas ------------------------------------------------------------------------------------


def test_amount_bounds():
    body = {"token": "ACME", "to": address_of("b"), "amount": AMOUNT_MAX}
    assert check_body("token.transfer", body)["amount"] == AMOUNT_MAX
    for amount in (0, AMOUNT_MAX + 1, -5):
        with pytest.raises(IntegerOutOfBounds):
            check_body("token.transfer", {**body, "amount": amount})
    for amount in ("5", True, None):
        with pytest.raises(InvalidBody):
            check_body("token.transfer", {**body, "amount": amount})


def test_lists_must_be_sorted_and_unique_so_a_value_has_one_spelling():
    wallets = sorted([address_of("a"), address_of("b")])
    check_body("identity.register", {"identity": "x", "wallets": wallets})
    with pytest.raises(InvalidBody, match="ascending"):
        check_body("identity.register", {"identity": "x", "wallets": wallets[::-1]})
    with pytest.raises(InvalidBody, match="repeated"):
        check_body("identity.register", {"identity": "x", "wallets": [wallets[0], wallets[0]]})


@pytest.mark.parametrize("rules", [
    {"country_allow": ["XX"]}, {"required_claims": ["kyc", "accredited"]}, {"holders_max": 0},
    {"volume_limit": {"window_s": 10}}, {"check_sender": 1}, {"unknown_rule": 1},
    {"holding_period_s": 0}, {"investor_types_allow": ["pension"]},
])
def test_bad_rules_are_refused(rules):
    with pytest.raises((InvalidBody, IntegerOutOfBounds)):
        check_body("token.set_rules", {"token": "ACME", "rules": rules})


def test_claim_values_match_their_topic():
    base = {"identity": "x", "expires_at": 10}
    assert check_body("claim.grant", {**base, "topic": "country", "value": "FR"})["value"] == "FR"
    assert check_body("claim.grant", {**base, "topic": "kyc", "value": ""})["value"] == ""
    for topic, value in (("country", "XX"), ("kyc", "yes"), ("investor_type", "pension"), ("country", 5)):
        with pytest.raises(InvalidBody):
            check_body("claim.grant", {**base, "topic": topic, "value": value})


def test_agents_must_be_sorted_with_roles():
    a, b = sorted([address_of("a"), address_of("b")])
    body = {"symbol": "ACME", "name": "Acme", "decimals": 0, "paused": False, "rules": {}}
    check_body("token.create", {**body, "agents": [[a, ["pause"]], [b, ["supply"]]]})
    with pytest.raises(InvalidBody):
        check_body("token.create", {**body, "agents": [[b, ["pause"]], [a, ["supply"]]]})
    with pytest.raises(InvalidBody):
        check_body("token.create", {**body, "agents": [[a, []]]})
    with pytest.raises(InvalidBody):
        check_body("token.create", {**body, "agents": [[a, ["mint"]]]})


def test_every_kind_has_a_handler():
    from ledger.handlers import HANDLERS

    assert set(KINDS) == set(HANDLERS)


# --- bad transactions in a block: refused whole, store unchanged ---------------------------------


def _bad_transactions(chain) -> dict[str, bytes]:
    admin = chain.signer("admin")
    good = admin.grant_role("claim_issuer", address_of("kyc-2"))
    flipped = bytearray(good)
    flipped[-1] ^= 1
    value = msgpack.unpackb(good, raw=False)
    spelled = (b"\x96" + b"".join(msgpack.packb(v, use_bin_type=True) for v in value[:2])
               + b"\xcf" + value[2].to_bytes(8, "big")
               + b"".join(msgpack.packb(v, use_bin_type=True) for v in value[3:]))
    return {
        "truncated": good[:-3],
        "oversized": good + b"\x00" * TX_BYTES_MAX,
        "non-canonical": spelled,
        "wrongly signed": bytes(flipped),
        "wrong chain": sign_transaction(key_for("admin"), chain_id="other-chain", nonce=admin.nonce - 1,
                                        kind="role.grant", body={"role": "claim_issuer",
                                                                 "account": address_of("kyc-2")}),
        "unknown kind": _resign([CHAIN_ID, address_of("admin"), admin.nonce - 1, "role.promote",
                                 {"role": "admin", "account": address_of("kyc-2")}], name="admin"),
    }


@pytest.mark.parametrize("case, error", [
    ("truncated", "MalformedTransaction"), ("oversized", "TransactionTooLarge"),
    ("non-canonical", "NonCanonicalEncoding"), ("wrongly signed", "BadSignature"),
    ("wrong chain", "WrongChain"), ("unknown kind", "UnknownKind"),
])
def test_a_block_with_a_bad_transaction_is_refused_and_changes_nothing(chain, snapshot, case, error):
    bad = _bad_transactions(chain)[case]
    before, tip = snapshot(chain.ledger), chain.ledger.tip
    ok = chain.signer("kyc").register_identity("zed", [address_of("zed")])
    block = chain.block([ok, bad])
    with pytest.raises(InvalidBlock, match=f"tx 1: {error}"):
        chain.ledger.validate_block(block)
    with pytest.raises(InvalidBlock, match=f"tx 1: {error}"):
        chain.ledger.apply_block(block, b"cert")
    assert snapshot(chain.ledger) == before and chain.ledger.tip == tip


def test_replayed_transaction_is_refused_and_changes_nothing(chain, snapshot):
    tx = chain.signer("admin").grant_role("claim_issuer", address_of("kyc-2"))
    assert chain.run(tx).ok
    before, tip = snapshot(chain.ledger), chain.ledger.tip
    block = chain.block([tx])
    with pytest.raises(InvalidBlock, match="nonce 2, expected 3"):
        chain.ledger.validate_block(block)
    with pytest.raises(InvalidBlock, match="nonce 2, expected 3"):
        chain.ledger.apply_block(block, b"cert")
    assert snapshot(chain.ledger) == before and chain.ledger.tip == tip


def test_same_transaction_twice_in_a_block_is_refused(chain, snapshot):
    tx = chain.signer("admin").grant_role("claim_issuer", address_of("kyc-2"))
    before = snapshot(chain.ledger)
    with pytest.raises(InvalidBlock, match="the same transaction twice"):
        chain.ledger.apply_block(chain.block([tx, tx]), b"cert")
    assert snapshot(chain.ledger) == before


def test_nonce_from_the_future_is_refused(chain, snapshot):
    admin = chain.signer("admin")
    admin.nonce += 1
    before = snapshot(chain.ledger)
    with pytest.raises(InvalidBlock, match="nonce 3, expected 2"):
        chain.ledger.apply_block(chain.block([admin.grant_role("claim_issuer", address_of("x"))]), b"cert")
    assert snapshot(chain.ledger) == before


def test_sequential_nonces_in_one_block(chain):
    admin = chain.signer("admin")
    result = chain.commit(*(admin.grant_role("claim_issuer", address_of(f"k{i}")) for i in range(3)))
    assert [r.nonce for r in result.receipts] == [2, 3, 4]
    assert chain.ledger.next_nonce(address_of("admin")) == 5


# --- the fast encoder against a plain reference --------------------------------------------------------


def _reference(value, depth=0):
    """The plain definition of canonical form that `codec.encode` must match byte for byte."""
    if depth > codec.DEPTH_MAX:
        raise ValueError("deep")
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("keys")
        return {k: _reference(value[k], depth + 1) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_reference(v, depth + 1) for v in value]
    if isinstance(value, float):
        raise ValueError("float")
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    raise ValueError("type")


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=5),
                     st.binary(max_size=5), st.floats(allow_nan=False))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), inner, max_size=4)), max_leaves=40)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_encode_matches_the_reference_definition(value):
    try:
        expected = msgpack.packb(_reference(value), use_bin_type=True)
    except (ValueError, TypeError):
        with pytest.raises(ValueError):
            codec.encode(value)
        return
    raw = codec.encode(value)
    assert raw == expected
    assert codec.encode(codec.decode(raw, bytes_max=1 << 20)) == raw


@pytest.mark.parametrize("depth", [codec.DEPTH_MAX - 1, codec.DEPTH_MAX, codec.DEPTH_MAX + 1])
def test_depth_bound_is_the_same_for_encode_and_decode(depth):
    value: list = [1]
    for _ in range(depth):
        value = [value]
    raw = msgpack.packb(value)
    if depth < codec.DEPTH_MAX:
        assert codec.decode(raw, bytes_max=100) == value and codec.encode(value) == raw
    else:
        with pytest.raises(ValueError):
            codec.encode(value)
        with pytest.raises(MalformedTransaction, match="nested"):
            codec.decode(raw, bytes_max=100)


def test_too_deep_is_malformed_even_when_also_non_canonical():
    deep: list = [1]
    for _ in range(codec.DEPTH_MAX + 2):
        deep = [deep]
    raw = msgpack.packb([1.5, deep])
    with pytest.raises(MalformedTransaction, match="nested"):
        codec.decode(raw, bytes_max=100)


def test_a_token_is_created_paused_or_not_by_explicit_choice():
    body = {"symbol": "ACME", "name": "Acme", "decimals": 0, "rules": {}, "agents": []}
    with pytest.raises(InvalidBody, match="missing field 'paused'"):
        check_body("token.create", body)
    with pytest.raises(InvalidBody):
        check_body("token.create", {**body, "paused": 0})
    assert check_body("token.create", {**body, "paused": True})["paused"] is True
