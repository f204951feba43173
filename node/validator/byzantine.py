"""Byzantine behaviour, for fault campaigns only: a validator that breaks the protocol on purpose.

Switched on by the environment variable `SECLEDGER_TEST_BYZANTINE` (never by the config file, so
an operator cannot turn it on by a typo):

- `equivocate`: as proposer, also signs a second, different block for the same height and round,
  and sends both (the honest validators must stay safe and report the evidence);
- `double_vote`: after each vote, also signs and sends a conflicting vote of the same height,
  round and type (for nil, or for a made-up block when the honest vote was nil).

It signs with the raw key, bypassing the double-sign guard, which is exactly what a faulty or
malicious validator could do. Nothing here runs unless the variable is set.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable

from nacl.signing import SigningKey

from consensus.messages import MessageType, Proposal, Vote, encode_message, sign_bytes
from ledger import Block, Ledger

from ..fault_points import FaultSwitchError
from ..p2p import wire

log = logging.getLogger("secledger.byzantine")

ENVIRONMENT_VARIABLE = "SECLEDGER_TEST_BYZANTINE"
MODES = ("equivocate", "double_vote")


def mode_from_environment() -> str | None:
    mode = os.environ.get(ENVIRONMENT_VARIABLE) or None
    if mode is not None and mode not in MODES:
        raise FaultSwitchError(f"{ENVIRONMENT_VARIABLE}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


class Byzantine:
    def __init__(self, mode: str, key: SigningKey, chain_id: str, ledger: Ledger,
                 broadcast: Callable[[bytes], None]) -> None:
        self.mode = mode
        self.key = key
        self.chain_id = chain_id
        self.ledger = ledger
        self.broadcast = broadcast
        self.sent = 0
        log.warning("BYZANTINE MODE %s: this validator will sign conflicting messages", mode)

    def after_send(self, message: Proposal | Vote, block: Block | None) -> None:
        if self.mode == "equivocate" and isinstance(message, Proposal) and block is not None:
            other = self.ledger.build_block(block.txs[:-1] if block.txs else block.txs,
                                            time_ms=block.header.time_ms + 1, proposer=block.header.proposer)
            data = sign_bytes(self.chain_id, MessageType.PROPOSAL, message.height, message.round, other.hash,
                              message.pol_round)
            twin = Proposal(message.height, message.round, other.hash, message.pol_round, message.proposer,
                            self.key.sign(data).signature)
            self.broadcast(wire.encode(wire.ProposalBlock(other.encode())))
            self.broadcast(wire.encode(wire.ConsensusMessage(encode_message(twin))))
            self.sent += 1
        elif self.mode == "double_vote" and isinstance(message, Vote):
            other_id = (hashlib.sha256(b"byzantine" + message.sign_bytes(self.chain_id)).digest()
                        if message.block_id is None else None)
            data = sign_bytes(self.chain_id, message.kind, message.height, message.round, other_id, -1)
            twin = Vote(message.kind, message.height, message.round, other_id, message.validator,
                        self.key.sign(data).signature)
            self.broadcast(wire.encode(wire.ConsensusMessage(encode_message(twin))))
            self.sent += 1
