"""What nodes say to each other over a peer link: small msgpack messages, each a list whose first
item names its kind. The peer layer carries them as opaque, authenticated frames.

- `status`      [height, block_hash, state_root]: where the sender's chain is; sent on connect, after
                every commit, and periodically. A node that sees a higher height syncs.
- `txs`         [tx, ...]: transactions admitted to the sender's mempool (gossip, in batches).
- `consensus`   [message]: an encoded proposal or vote (`consensus.messages`).
- `block`       [block]: the encoded block of a proposal, sent just before the proposal itself.
- `get_blocks`  [from_height, count]: ask for certified blocks.
- `blocks`      [[block, certificate], ...]: the answer, in height order.
- `get_snapshots`        []: ask which state snapshots the peer serves (node/sync/statesync/).
- `snapshots`            [[height, manifest], ...]: at most `SNAPSHOTS_MAX`, newest first; the
                         receiver checks each manifest (and so knows its hash) itself.
- `get_snapshot_chunk`   [height, index]: ask for one chunk of a snapshot.
- `snapshot_chunk`       [height, index, chunk]: the answer; an empty chunk if the peer has none.
- `get_headers`          [from_height, count]: ask for certified block headers (state sync's trust
                         chain); count at most `HEADERS_MAX`.
- `headers`              [[header, certificate], ...]: the answer, in height order from from_height,
                         at most `HEADERS_MAX`; each header is its block encoded without transactions
                         (so it has the block's hash). Fewer (or none) where the peer has no more.
- `get_validators`       [height]: ask for the validator set effective at a height.
- `validators`           [height, [[validator_key, node_key, power], ...]]: the answer (at most
                         `VALIDATORS_MAX`, ascending by key; empty if the peer does not know that
                         height); the receiver checks it against a header's validators hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

#: Most blocks one `get_blocks` may ask for, and most txs in one gossip batch.
SYNC_BATCH_MAX: int = 64
TX_BATCH_MAX: int = 1000
#: Most snapshots one `snapshots` answer lists; most bytes of one manifest and one chunk.
SNAPSHOTS_MAX: int = 4
SNAPSHOT_MANIFEST_BYTES_MAX: int = 256 * 1024
SNAPSHOT_CHUNK_BYTES_MAX: int = 1 << 20
#: Most headers one `headers` answer carries; most validators in one `validators` answer.
HEADERS_MAX: int = 64
VALIDATORS_MAX: int = 1000


class WireError(Exception):
    """A peer sent a message we cannot parse: the peer's fault, never a crash."""


@dataclass(frozen=True, slots=True)
class Status:
    height: int
    block_hash: bytes
    state_root: bytes


@dataclass(frozen=True, slots=True)
class Txs:
    txs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ConsensusMessage:
    message: bytes


@dataclass(frozen=True, slots=True)
class ProposalBlock:
    block: bytes


@dataclass(frozen=True, slots=True)
class GetBlocks:
    from_height: int
    count: int


@dataclass(frozen=True, slots=True)
class Blocks:
    blocks: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class GetSnapshots:
    pass


@dataclass(frozen=True, slots=True)
class Snapshots:
    snapshots: tuple[tuple[int, bytes], ...]  # (height, manifest)


@dataclass(frozen=True, slots=True)
class GetSnapshotChunk:
    height: int
    index: int


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    height: int
    index: int
    chunk: bytes


@dataclass(frozen=True, slots=True)
class GetHeaders:
    from_height: int
    count: int


@dataclass(frozen=True, slots=True)
class Headers:
    headers: tuple[tuple[bytes, bytes], ...]  # (header as a block without transactions, certificate)


@dataclass(frozen=True, slots=True)
class GetValidators:
    height: int


@dataclass(frozen=True, slots=True)
class Validators:
    height: int
    validators: tuple[tuple[bytes, bytes, int], ...]  # (validator_key, node_key, power)


WireMessage = (Status | Txs | ConsensusMessage | ProposalBlock | GetBlocks | Blocks | GetSnapshots | Snapshots
               | GetSnapshotChunk | SnapshotChunk | GetHeaders | Headers | GetValidators | Validators)


def encode(message: WireMessage) -> bytes:
    match message:
        case Status(height, block_hash, state_root):
            value: list[Any] = ["status", height, block_hash, state_root]
        case Txs(txs):
            value = ["txs", list(txs)]
        case ConsensusMessage(data):
            value = ["consensus", data]
        case ProposalBlock(block):
            value = ["block", block]
        case GetBlocks(from_height, count):
            value = ["get_blocks", from_height, count]
        case Blocks(blocks):
            value = ["blocks", [list(pair) for pair in blocks]]
        case GetSnapshots():
            value = ["get_snapshots"]
        case Snapshots(snapshots):
            value = ["snapshots", [list(pair) for pair in snapshots]]
        case GetSnapshotChunk(height, index):
            value = ["get_snapshot_chunk", height, index]
        case SnapshotChunk(height, index, chunk):
            value = ["snapshot_chunk", height, index, chunk]
        case GetHeaders(from_height, count):
            value = ["get_headers", from_height, count]
        case Headers(headers):
            value = ["headers", [list(pair) for pair in headers]]
        case GetValidators(height):
            value = ["get_validators", height]
        case Validators(height, validators):
            value = ["validators", height, [list(v) for v in validators]]
    return msgpack.packb(value, use_bin_type=True)


def _uint(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise WireError("expected an unsigned integer")
    return value


def _bytes(value: Any, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise WireError("expected bytes" + (f" of length {size}" if size else ""))
    return value


def decode(data: bytes, *, bytes_max: int) -> WireMessage:
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True,
                                max_bin_len=bytes_max, max_str_len=1024, max_array_len=max(TX_BATCH_MAX, 8),
                                max_map_len=0, max_ext_len=0)
    except Exception as exc:  # msgpack raises many unrelated types for bad input
        raise WireError(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise WireError("expected [kind, ...]")
    kind, args = value[0], value[1:]
    try:
        if kind == "status" and len(args) == 3:
            return Status(_uint(args[0]), _bytes(args[1], 32), _bytes(args[2], 32))
        if kind == "txs" and len(args) == 1 and isinstance(args[0], list):
            if len(args[0]) > TX_BATCH_MAX:
                raise WireError("tx batch too long")
            return Txs(tuple(_bytes(tx) for tx in args[0]))
        if kind == "consensus" and len(args) == 1:
            return ConsensusMessage(_bytes(args[0]))
        if kind == "block" and len(args) == 1:
            return ProposalBlock(_bytes(args[0]))
        if kind == "get_blocks" and len(args) == 2:
            return GetBlocks(_uint(args[0]), min(_uint(args[1]), SYNC_BATCH_MAX))
        if kind == "blocks" and len(args) == 1 and isinstance(args[0], list):
            pairs = []
            for pair in args[0][:SYNC_BATCH_MAX]:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("expected [block, certificate]")
                pairs.append((_bytes(pair[0]), _bytes(pair[1])))
            return Blocks(tuple(pairs))
        if kind == "get_snapshots" and not args:
            return GetSnapshots()
        if kind == "snapshots" and len(args) == 1 and isinstance(args[0], list):
            if len(args[0]) > SNAPSHOTS_MAX:
                raise WireError("too many snapshots")
            listed = []
            for pair in args[0]:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("expected [height, manifest]")
                manifest = _bytes(pair[1])
                if len(manifest) > SNAPSHOT_MANIFEST_BYTES_MAX:
                    raise WireError("snapshot manifest too large")
                listed.append((_uint(pair[0]), manifest))
            return Snapshots(tuple(listed))
        if kind == "get_snapshot_chunk" and len(args) == 2:
            return GetSnapshotChunk(_uint(args[0]), _uint(args[1]))
        if kind == "snapshot_chunk" and len(args) == 3:
            chunk = _bytes(args[2])
            if len(chunk) > SNAPSHOT_CHUNK_BYTES_MAX:
                raise WireError("snapshot chunk too large")
            return SnapshotChunk(_uint(args[0]), _uint(args[1]), chunk)
        if kind == "get_headers" and len(args) == 2:
            return GetHeaders(_uint(args[0]), min(_uint(args[1]), HEADERS_MAX))
        if kind == "headers" and len(args) == 1 and isinstance(args[0], list):
            if len(args[0]) > HEADERS_MAX:
                raise WireError("too many headers")
            pairs = []
            for pair in args[0]:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("expected [header, certificate]")
                pairs.append((_bytes(pair[0]), _bytes(pair[1])))
            return Headers(tuple(pairs))
        if kind == "get_validators" and len(args) == 1:
            return GetValidators(_uint(args[0]))
        if kind == "validators" and len(args) == 2 and isinstance(args[1], list):
            if len(args[1]) > VALIDATORS_MAX:
                raise WireError("too many validators")
            entries = []
            for entry in args[1]:
                if not isinstance(entry, list) or len(entry) != 3:
                    raise WireError("expected [validator_key, node_key, power]")
                entries.append((_bytes(entry[0], 32), _bytes(entry[1], 32), _uint(entry[2])))
            return Validators(_uint(args[0]), tuple(entries))
    except WireError:
        raise
    raise WireError(f"unknown or malformed message {kind!r}")
