"""Small deterministic helpers for tests: keys, validator sets, and a perfect in-memory network.

``LocalNet`` wires cores together with no loss and FIFO delivery, answers every ``ValidateBlock``
with "valid" (unless told otherwise) and every ``RequestProposal`` with a fresh block id, and
records every action, so unit tests can drive a few heights and look at what came out.
"""

from __future__ import annotations

import hashlib
from collections import deque

import nacl.signing

from consensus.actions import (
    Action,
    Broadcast,
    Decide,
    PersistSignState,
    ReportEvidence,
    RequestProposal,
    ScheduleTimeout,
    ValidateBlock,
)
from consensus.core import TendermintCore
from consensus.messages import Message
from consensus.signing import Signer
from consensus.timeouts import TimeoutConfig
from consensus.validators import Validator, ValidatorSet

CHAIN_ID = "test-chain"


def signing_keys(n: int, seed: int = 0) -> list[nacl.signing.SigningKey]:
    """``n`` Ed25519 keys derived from ``seed``, in validator-set (public key) order."""
    keys = [nacl.signing.SigningKey(hashlib.sha256(b"test-key|%d|%d" % (seed, i)).digest()) for i in range(n)]
    return sorted(keys, key=lambda k: bytes(k.verify_key))


def validator_set(keys: list[nacl.signing.SigningKey], powers: list[int] | None = None) -> ValidatorSet:
    powers = powers if powers is not None else [1] * len(keys)
    return ValidatorSet(Validator(bytes(k.verify_key), p) for k, p in zip(keys, powers, strict=True))


def block_id(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


class LocalNet:
    """``n`` validator cores (plus optional observers) on a perfect FIFO network."""

    def __init__(self, n: int, observers: int = 0, height: int = 1, timeouts: TimeoutConfig | None = None,
                 invalid: frozenset[bytes] = frozenset()) -> None:
        self.keys = signing_keys(n)
        self.validators = validator_set(self.keys)
        self.signers = [Signer(k, CHAIN_ID) for k in self.keys]
        self.cores = [TendermintCore(CHAIN_ID, self.validators, s, height, timeouts) for s in self.signers]
        self.cores += [TendermintCore(CHAIN_ID, self.validators, None, height, timeouts) for _ in range(observers)]
        self.invalid = invalid
        self.actions: list[list[Action]] = [[] for _ in self.cores]
        self.decisions: list[list[Decide]] = [[] for _ in self.cores]
        self.timeouts: list[list[ScheduleTimeout]] = [[] for _ in self.cores]
        self.evidence: list[ReportEvidence] = []
        self._inbox: deque[tuple[int, Message]] = deque()
        self.blocks = 0
        self.deliver_to: set[int] | None = None  # None: everyone

    def start(self) -> None:
        for i, core in enumerate(self.cores):
            self.handle(i, core.start())
        self.run()

    def handle(self, index: int, actions: list[Action]) -> None:
        core = self.cores[index]
        self.actions[index].extend(actions)
        for action in actions:
            if isinstance(action, Broadcast):
                for j in range(len(self.cores)):
                    if j != index and (self.deliver_to is None or j in self.deliver_to):
                        self._inbox.append((j, action.message))
            elif isinstance(action, ValidateBlock):
                self.handle(index, core.block_validity(action.height, action.block_id,
                                                       action.block_id not in self.invalid))
            elif isinstance(action, RequestProposal):
                self.blocks += 1
                self.handle(index, core.propose(action.height, action.round, block_id(f"block-{self.blocks}")))
            elif isinstance(action, Decide):
                self.decisions[index].append(action)
            elif isinstance(action, ScheduleTimeout):
                self.timeouts[index].append(action)
            elif isinstance(action, ReportEvidence):
                self.evidence.append(action)
            else:
                assert isinstance(action, PersistSignState)

    def run(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self._inbox:
                return
            index, message = self._inbox.popleft()
            self.handle(index, self.cores[index].receive(message))
        raise AssertionError("network did not go quiet")

    def fire_timeouts(self, index: int) -> None:
        """Fire every timeout node ``index`` has scheduled so far (the core ignores stale ones)."""
        pending, self.timeouts[index] = self.timeouts[index], []
        for t in pending:
            self.handle(index, self.cores[index].on_timeout(t.height, t.round, t.step))
        self.run()

    def next_height(self) -> None:
        for i, core in enumerate(self.cores):
            self.handle(i, core.start_height(core.height + 1, self.validators))
        self.run()
