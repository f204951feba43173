"""Canonical msgpack: one value, one spelling.

Everything the ledger hashes, signs or stores goes through `encode`. Maps are written with their
keys sorted, integers in their shortest form (msgpack does this), and floats are refused, so the
same value gives the same bytes on every machine. `decode` reverses it and refuses any input whose
re-encoding differs: that is how a transaction gets exactly one hash.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import MalformedTransaction, NonCanonicalEncoding

#: Deepest nesting any ledger value may have; deeper input is refused before it costs stack.
DEPTH_MAX: int = 16


#: Types written as they are; checked by exact type first, the hot path of every encode.
_SCALARS: frozenset[type] = frozenset((int, str, bytes, bool, type(None)))


def _canonical(value: Any, depth: int) -> Any:
    if depth > DEPTH_MAX:
        raise ValueError("value nested too deeply")
    if type(value) in _SCALARS:
        return value
    inner = depth + 1
    if isinstance(value, dict):
        for k in value:
            if type(k) is not str and not isinstance(k, str):
                raise ValueError("map keys must be strings")
        if value and inner > DEPTH_MAX:
            raise ValueError("value nested too deeply")
        out = {}
        for k in sorted(value):
            v = value[k]
            out[k] = v if type(v) in _SCALARS else _canonical(v, inner)
        return out
    if isinstance(value, (list, tuple)):
        if value and inner > DEPTH_MAX:
            raise ValueError("value nested too deeply")
        return [v if type(v) in _SCALARS else _canonical(v, inner) for v in value]
    if isinstance(value, float):
        raise ValueError("floats are not allowed in ledger values")
    if isinstance(value, (bool, int, str, bytes)):
        return value
    raise ValueError(f"type {type(value).__name__} cannot be encoded")


def encode(value: Any) -> bytes:
    """Canonical bytes of `value` (dict, list, tuple, str, bytes, int, bool, None)."""
    return msgpack.packb(_canonical(value, 0), use_bin_type=True)


def canonical(value: Any) -> Any:
    """`value` checked as `encode` checks it, with every map's keys in sorted order."""
    return _canonical(value, 0)


def pack_canonical(value: Any) -> bytes:
    """The bytes of a value its caller built canonical already: maps with keys in sorted order,
    values of the allowed types (use `canonical` for any part not known by construction). The
    per-block hot paths (receipts, events) use it to skip a second walk of what they just built."""
    return msgpack.packb(value, use_bin_type=True)


def _check_depth(value: Any, depth: int) -> None:
    if depth > DEPTH_MAX:
        raise MalformedTransaction("value nested too deeply")
    if isinstance(value, dict):
        for v in value.values():
            _check_depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_depth(v, depth + 1)


def decode(data: bytes, *, bytes_max: int) -> Any:
    """Decode canonical bytes; raise `MalformedTransaction` or `NonCanonicalEncoding`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedTransaction("expected bytes")
    data = bytes(data)
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=bytes_max,
            max_str_len=bytes_max,
            max_array_len=bytes_max,
            max_map_len=bytes_max,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MalformedTransaction(f"not msgpack: {type(exc).__name__}: {exc}") from None
    try:
        again = encode(value)  # also bounds the depth, so the usual path walks the value once
    except ValueError as exc:
        _check_depth(value, 0)  # too deep is malformed; anything else has no canonical spelling
        raise NonCanonicalEncoding(str(exc)) from None
    if again != data:
        raise NonCanonicalEncoding("re-encoding gives different bytes")
    return value
