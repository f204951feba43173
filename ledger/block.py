"""A block: a header that chains to its parent and commits to the parent's state, and the
transactions in order.

The block id that consensus agrees on is `Block.hash`, SHA-256 of the canonical header. The header
carries the state root *after the previous block* (as CometBFT's app hash does), so a certified
block certifies the state every honest node reached before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from . import codec
from .errors import InvalidBlock, LedgerError

#: Largest encoded block a node accepts.
BLOCK_BYTES_MAX: int = 8 * 1024 * 1024
#: Most transactions in one block.
BLOCK_TXS_MAX: int = 20_000
HASH_BYTES: int = 32
EMPTY_HASH: bytes = bytes(HASH_BYTES)


def txs_hash(txs: tuple[bytes, ...]) -> bytes:
    digest = hashlib.sha256(b"secledger/txs/v1\x00")
    for tx in txs:
        digest.update(hashlib.sha256(tx).digest())
    return digest.digest()


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: int
    time_ms: int
    previous_block_hash: bytes
    previous_state_root: bytes
    txs_hash: bytes
    proposer: bytes
    #: `governance.validators_hash` of the set that certifies this block, and of the set of the
    #: next height: an observer follows every change of the set through these, from genesis.
    validators_hash: bytes
    next_validators_hash: bytes

    def to_list(self) -> list[Any]:
        return [self.chain_id, self.height, self.time_ms, self.previous_block_hash,
                self.previous_state_root, self.txs_hash, self.proposer, self.validators_hash,
                self.next_validators_hash]


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    txs: tuple[bytes, ...]

    @cached_property
    def hash(self) -> bytes:
        return hashlib.sha256(b"secledger/block/v1\x00" + codec.encode(self.header.to_list())).digest()

    @property
    def height(self) -> int:
        return self.header.height

    def encode(self) -> bytes:
        return codec.encode([self.header.to_list(), list(self.txs)])

    @classmethod
    def build(cls, *, chain_id: str, height: int, time_ms: int, previous_block_hash: bytes,
              previous_state_root: bytes, proposer: bytes, txs: tuple[bytes, ...],
              validators_hash: bytes, next_validators_hash: bytes) -> Block:
        header = BlockHeader(chain_id, height, time_ms, previous_block_hash, previous_state_root,
                             txs_hash(txs), proposer, validators_hash, next_validators_hash)
        return cls(header, tuple(txs))

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Decode a block; any malformed input is `InvalidBlock`."""
        if len(data) > BLOCK_BYTES_MAX:
            raise InvalidBlock(f"block of {len(data)} bytes, at most {BLOCK_BYTES_MAX}")
        try:
            value = codec.decode(data, bytes_max=BLOCK_BYTES_MAX)
        except LedgerError as exc:
            raise InvalidBlock(f"block does not decode: {exc}") from None
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], list)
                and len(value[0]) == 9 and isinstance(value[1], list)):
            raise InvalidBlock("block: expected [header, txs]")
        chain_id, height, time_ms, prev_hash, prev_root, t_hash, proposer, v_hash, next_v_hash = value[0]
        ints_ok = all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63 for x in (height, time_ms))
        hashes_ok = all(isinstance(x, bytes) and len(x) == HASH_BYTES
                        for x in (prev_hash, prev_root, t_hash, proposer, v_hash, next_v_hash))
        if not (isinstance(chain_id, str) and ints_ok and hashes_ok):
            raise InvalidBlock("block header: wrong field types")
        txs = value[1]
        if len(txs) > BLOCK_TXS_MAX or not all(isinstance(tx, bytes) for tx in txs):
            raise InvalidBlock(f"block: expected at most {BLOCK_TXS_MAX} transactions as bytes")
        header = BlockHeader(chain_id, height, time_ms, prev_hash, prev_root, t_hash, proposer, v_hash, next_v_hash)
        return cls(header, tuple(txs))
