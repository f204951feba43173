"""The canonical codec at its edges: the deepest value it accepts (exactly DEPTH_MAX levels, the
same for `encode`, `canonical` and `decode`), map keys, per-element size bounds, and which error
names what is wrong with bytes that do not decode to a canonical value.

Every node must draw these lines in the same place: a value one node accepts and another refuses
is a transaction with a hash on one and none on the other.
"""

from __future__ import annotations

from enum import StrEnum

import msgpack
import pytest

from ledger import codec
from ledger.codec import DEPTH_MAX
from ledger.errors import MalformedTransaction, NonCanonicalEncoding


def lists(levels: int, innermost):
    """``levels`` nested lists around ``innermost``: lists(2, 1) == [[1]]."""
    value = innermost
    for _ in range(levels):
        value = [value]
    return value


def maps(levels: int, innermost):
    """``levels`` nested one-key maps around ``innermost``."""
    value = innermost
    for _ in range(levels):
        value = {"k": value}
    return value


def packed(value) -> bytes:
    """Plain msgpack, no canonical checks: what a hostile peer can send."""
    return msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize("nest", [lists, maps])
def test_values_up_to_depth_max_encode_and_decode_and_one_more_level_is_refused(nest) -> None:
    assert DEPTH_MAX == 16
    deepest = nest(DEPTH_MAX, 1)  # the 1 sits at depth 16
    assert codec.decode(codec.encode(deepest), bytes_max=1000) == deepest
    assert codec.canonical(deepest) == deepest
    deepest_empty = nest(DEPTH_MAX, [])  # an empty list at depth 16 holds nothing deeper
    assert codec.decode(codec.encode(deepest_empty), bytes_max=1000) == deepest_empty
    for too_deep in (nest(DEPTH_MAX + 1, 1), nest(DEPTH_MAX + 1, [])):
        with pytest.raises(ValueError, match="nested too deeply"):
            codec.encode(too_deep)
        with pytest.raises(ValueError, match="nested too deeply"):
            codec.canonical(too_deep)
        with pytest.raises(MalformedTransaction):
            codec.decode(packed(too_deep), bytes_max=1000)


@pytest.mark.parametrize("nest", [lists, maps])
def test_a_float_at_the_deepest_level_has_no_canonical_spelling_but_is_not_too_deep(nest) -> None:
    for levels in (0, 1, DEPTH_MAX):
        with pytest.raises(NonCanonicalEncoding):
            codec.decode(packed(nest(levels, 1.5)), bytes_max=1000)


def test_a_too_deep_value_is_malformed_whatever_else_is_wrong_with_it() -> None:
    for value in (lists(DEPTH_MAX + 1, 1.5), maps(DEPTH_MAX + 1, 1.5), maps(DEPTH_MAX // 2, lists(DEPTH_MAX, 1))):
        with pytest.raises(MalformedTransaction):
            codec.decode(packed(value), bytes_max=1000)


def test_map_keys_that_are_strings_of_a_subclass_are_strings() -> None:
    class Topic(StrEnum):
        KYC = "kyc"

    assert codec.encode({Topic.KYC: 1}) == codec.encode({"kyc": 1})
    for key in (1, b"kyc", None):
        with pytest.raises(ValueError, match="map keys must be strings"):
            codec.encode({key: 1})


def test_decoding_refuses_map_keys_that_are_not_strings_as_malformed() -> None:
    with pytest.raises(MalformedTransaction):
        codec.decode(packed({1: "a"}), bytes_max=100)


@pytest.mark.parametrize("value", [b"x" * 11, "x" * 11, list(range(11)), {str(i): i for i in range(11)}])
def test_no_element_may_be_longer_than_bytes_max(value) -> None:
    data = codec.encode(value)
    assert codec.decode(data, bytes_max=11) == value
    with pytest.raises(MalformedTransaction):
        codec.decode(data, bytes_max=10)
