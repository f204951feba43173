"""The simulated world: nodes running ``TendermintCore``, a lossy network, a clock, and checkers.

One ``random.Random(seed)`` drives everything: first the configuration (validator count, loss,
duplication, delays, partitions, crash rate, which validators are Byzantine and how), then every
delay, drop, crash and Byzantine choice, in event order. Same seed, same run, byte for byte.

A run has two phases, as VOPR's do. Phase one (``fault_ms`` of simulated time): faults on, safety
checked on every step. At the end of it the network heals: partitions close, loss stops, crashed
nodes restart. Phase two: every honest node must decide the height after the highest one decided
at the heal, within a bound derived from the timeout configuration (``liveness_bound_ms``).

Validator set changes (consensus/testing/membership.py): half of the worlds draw a schedule of
governance steps (add a joiner, remove, change power, rotate a key). A step due by now goes into
the next block a proposer builds; a node learns it only by deciding that block (its content), and
derives from it the set of the height two above (the H+2 rule). Joiners are extra nodes that run
from the start (or join late, by block sync) as non-voting followers until a step adds them;
removed validators keep following; a rotating node builds a new core around its new key at the
height the rotation takes effect, with that key's own sign state, and replays its WAL into it.

Invariants (any breach raises ``InvariantViolation`` naming the command that replays the seed):
- agreement: no two honest nodes decide different blocks at one height;
- validity: a decided block was proposed at that height and is valid, and the change it carries
  is the chain's next step and obeys the rules (never empty, moves less than a third);
- certificate: every decision (by consensus or block sync) carries a certificate that verifies
  against the set of its height as derived from the decided chain, not the node's own view;
- membership: an honest node signs only with a key in the set of the height, and its core holds
  (so counts) no message from outside that set: no removed validator or old key is ever counted;
- no double sign: no key of an honest node signs two different messages for one (height, round,
  type), across crashes and rotations; and its sign state was persisted before the message left;
- evidence: reported evidence verifies against the set of its height and accuses a Byzantine
  validator (by any of its keys), never an honest one;
- liveness: as above, extended to a block for every pending step and to the height where the last
  decided change takes effect; and an exception escaping a core is a bug, reported as "crash".

What a crash keeps: the persisted SignState of each key, and the decided blocks with their
certificates (the node's block store, from which it derives the sets); the core, its timers and its
gossip memory are lost.

Gossip: the core has none (the node owns it). The simulated node does what CometBFT's reactor does
in miniature: every ``gossip_ms`` it broadcasts a status (height, round, what it holds for that
round); a peer at a higher height answers with the decided block's certificate (block sync, checked
before it is applied), a peer at the same height with the messages of that round the sender lacks,
the proof-of-lock prevotes of that round's proposal, and its own messages of a later round. On each
new height it also broadcasts a status that asks for block sync only.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field

import nacl.signing

from consensus.actions import (
    Broadcast,
    Decide,
    PersistSignState,
    ReportEvidence,
    RequestProposal,
    ScheduleTimeout,
    ValidateBlock,
)
from consensus.certificate import CommitCertificate
from consensus.core import TendermintCore
from consensus.errors import ConsensusError
from consensus.messages import PRECOMMIT, PREVOTE, MessageType, Proposal, Vote
from consensus.signing import Signer, SignState, SignStep
from consensus.testing.membership import (
    GENESIS_POWER,
    ROTATE,
    GovernanceStep,
    apply_changes,
    byzantine_share_ok,
    draw_schedule,
    rule_violation,
)
from consensus.timeouts import TimeoutConfig
from consensus.validators import Validator, ValidatorSet

CHAIN_ID = "sim-chain"
#: The honest roles and the Byzantine behaviours a seed can give a validator.
HONEST = "honest"
BYZANTINE_KINDS: tuple[str, ...] = ("equivocator", "double-voter", "amnesiac", "garbage", "silent")
#: Timeouts of the simulated world: short, so that a run covers many rounds in little CPU.
SIM_TIMEOUTS = TimeoutConfig(propose_ms=200, propose_delta_ms=50, prevote_ms=100, prevote_delta_ms=50,
                             precommit_ms=100, precommit_delta_ms=50, cap_ms=1000)
_STEP_OF_TYPE = {MessageType.PROPOSAL: SignStep.PROPOSE, MessageType.PREVOTE: SignStep.PREVOTE,
                 MessageType.PRECOMMIT: SignStep.PRECOMMIT}

# Event kinds, in the heap as (time_ms, seq, kind, payload).
_DELIVER, _TIMEOUT, _PROPOSE, _VALIDITY, _APPLY, _GOSSIP, _CHAOS, _RESTART, _HEAL = range(9)


class InvariantViolation(Exception):
    """A checker caught the protocol (or the code) breaking one of the invariants."""

    def __init__(self, kind: str, seed: int, detail: str, replay: str) -> None:
        super().__init__(f"{kind} violated with seed {seed}: {detail}\n  replay: {replay}")
        self.kind = kind
        self.seed = seed
        self.detail = detail
        self.replay = replay


@dataclass(frozen=True, slots=True)
class Status:
    """Simulated gossip: "I am at (height, round)"; peers answer with what the sender may lack."""

    sender: int
    height: int
    round: int
    #: (message type, signer) of every message the sender holds for that round.
    held: frozenset[tuple[int, bytes]]
    #: Sent on reaching a new height, to learn of missed heights only; the messages of the new
    #: height itself are still on their way and are repaired by the periodic status.
    catch_up_only: bool = False


@dataclass(frozen=True, slots=True)
class SyncBlock:
    """Simulated block sync: a decided block's id with its certificate, for a lagging peer."""

    height: int
    block_id: bytes
    certificate: CommitCertificate


@dataclass(slots=True)
class SimConfig:
    """Everything a seed decides before the run starts."""

    seed: int
    validators: int
    byzantine: tuple[str, ...]
    observer: bool
    loss_pct: int
    dup_pct: int
    delay_min_ms: int
    delay_max_ms: int
    #: Share of messages "clogged": held up to 8 times the normal maximum delay (VOPR's clogging).
    slow_pct: int
    healed_delay_max_ms: int
    partition_pct: int
    crash_pct: int
    crash_mid_pct: int
    fault_ms: int
    gossip_ms: int = 300
    timeouts: TimeoutConfig = SIM_TIMEOUTS
    #: Governance steps (validator set changes) the seed schedules; 0: the genesis set throughout.
    membership_steps: int = 0
    #: Nodes that start as non-voting followers with a key of their own, for steps to add.
    joiners: int = 0

    @classmethod
    def draw(cls, rng: random.Random, seed: int, validators: int | None = None,
             byzantine: tuple[str, ...] | None = None) -> SimConfig:
        drawn_n = rng.choice((4, 7))  # drawn even when given, so a replay sees the same stream
        n = drawn_n if validators is None else validators
        f = (n - 1) // 3
        drawn = tuple(rng.choice(BYZANTINE_KINDS) for _ in range(rng.randint(0, f)))
        calm = rng.random() < 0.2  # some runs have no faults at all: the baseline must work too
        config = cls(
            seed=seed,
            validators=n,
            byzantine=drawn if byzantine is None else byzantine,
            observer=rng.random() < 0.5,
            loss_pct=0 if calm else rng.randint(0, 20),
            dup_pct=0 if calm else rng.randint(0, 10),
            delay_min_ms=rng.randint(1, 5),
            delay_max_ms=rng.randint(10, 150),
            slow_pct=0 if calm else rng.randint(0, 10),
            healed_delay_max_ms=rng.randint(10, 40),
            partition_pct=0 if calm else rng.randint(0, 30),
            crash_pct=0 if calm else rng.randint(0, 20),
            crash_mid_pct=0 if calm else rng.randint(0, 5),
            fault_ms=rng.randint(500, 3000),
        )
        # Half of the worlds change their validator set while the faults go on.
        config.membership_steps = 0 if rng.random() < 0.5 else rng.randint(1, 4)
        config.joiners = rng.randint(0, 2) if config.membership_steps else 0
        return config


@dataclass(slots=True)
class SimResult:
    """What one passing run did; two runs of one seed give equal results."""

    seed: int
    config: SimConfig
    heights_decided: int
    messages_sent: int
    messages_delivered: int
    #: Deliveries of proposals and votes alone (no gossip status, no block sync).
    consensus_delivered: int
    #: Proposals and votes the cores broadcast, counted once per peer: the protocol's own traffic,
    #: without the gossip layer's repairs.
    protocol_sent: int
    end_ms: int
    max_round: int
    evidence: int
    #: Height -> decided block id, as the checkers saw it: two runs of one seed must agree.
    decided: dict[int, bytes]
    #: Governance steps decided on the chain: (height of the block, kinds of its actions).
    membership: tuple[tuple[int, tuple[str, ...]], ...] = ()
    #: Keys that signed a decided certificate although they were not in the genesis set (added
    #: validators, rotated keys): proof that new members really vote.
    new_signers: int = 0


#: A node's WAL holds at most this many received messages per height.
WAL_MESSAGES_MAX = 20_000


@dataclass(slots=True)
class _Wal:
    """What a node's write-ahead log holds: every message it took in for the height it is deciding
    or the two after it (the core buffers those, so they are inputs too), and every message it
    signed at that height (CometBFT writes each input there before acting on it). A restart
    replays it into the new core."""

    height: int
    received: dict[Proposal | Vote, None] = field(default_factory=dict)
    signed: dict[int, dict[Proposal | Vote, None]] = field(default_factory=dict)
    proposals: dict[int, Proposal] = field(default_factory=dict)

    def receive(self, message: Proposal | Vote) -> None:
        if (self.height <= message.height <= self.height + 2 and message not in self.received
                and len(self.received) < WAL_MESSAGES_MAX):
            self.received[message] = None
            self.index(message)

    def index(self, message: Proposal | Vote) -> None:
        if isinstance(message, Proposal) and message.height == self.height:
            self.proposals.setdefault(message.round, message)

    def next(self, height: int) -> _Wal:
        """The log for ``height``, keeping what was already received for it and later."""
        wal = _Wal(height)
        for message in self.received:
            wal.receive(message)
        return wal


@dataclass(slots=True)
class _Disk:
    """What survives a crash: the sign state of each key, the decided blocks with certificates,
    the WAL, and what the node derived from its decided blocks alone: the validator set of every
    height up to two past its tip, and how many governance steps its chain has decided."""

    sign_states: dict[bytes, SignState] = field(default_factory=dict)
    height: int = 0
    certificates: dict[int, CommitCertificate] = field(default_factory=dict)
    wal: _Wal = field(default_factory=lambda: _Wal(1))
    sets: dict[int, ValidatorSet] = field(default_factory=dict)
    steps: int = 0

    def decided(self, height: int, certificate: CommitCertificate, set_after_next: ValidatorSet,
                steps: int) -> None:
        """Store block ``height``; the changes it carries give the set of ``height + 2``."""
        self.height = height
        self.certificates[height] = certificate
        self.wal = self.wal.next(height + 1)
        self.sets[height + 2] = set_after_next
        self.steps = steps


class _Node:
    """A simulated node. ``keys`` are its consensus keys in the order it uses them (a rotation
    adds one); ``key`` is the one its core signs with now (None for the observer)."""

    __slots__ = ("index", "role", "keys", "key", "public_key", "core", "epoch", "disk")

    def __init__(self, index: int, role: str, key: nacl.signing.SigningKey | None) -> None:
        self.index = index
        self.role = role
        self.keys: list[nacl.signing.SigningKey] = [key] if key is not None else []
        self.core: TendermintCore | None = None
        self.epoch = 0
        self.disk = _Disk()
        self.use_key(key)

    def use_key(self, key: nacl.signing.SigningKey | None) -> None:
        self.key = key
        self.public_key = bytes(key.verify_key) if key is not None else b""

    def key_for(self, validators: ValidatorSet) -> nacl.signing.SigningKey | None:
        """The key to sign with under ``validators``: the newest of ours in it, else the current."""
        for key in reversed(self.keys):
            if bytes(key.verify_key) in validators:
                return key
        return self.key


class Simulation:
    """One seeded run. ``run()`` returns a SimResult or raises InvariantViolation."""

    def __init__(self, seed: int, validators: int | None = None, byzantine: tuple[str, ...] | None = None,
                 core_class: type[TendermintCore] = TendermintCore,
                 signer_class: type[Signer] = Signer, **overrides: object) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = SimConfig.draw(self.rng, seed, validators, byzantine)
        for name, value in overrides.items():
            if name not in SimConfig.__dataclass_fields__ or name == "seed":
                raise TypeError(f"unknown simulation setting {name!r}")
            setattr(self.config, name, value)
        self.overrides = dict(overrides)
        self.core_class = core_class
        self.signer_class = signer_class
        cfg = self.config
        if len(cfg.byzantine) > (cfg.validators - 1) // 3:
            raise ValueError("at most f Byzantine validators")
        # Nodes: the genesis validators, then the joiners (followers until a step adds them), then
        # the observer if any.
        keys = [nacl.signing.SigningKey(hashlib.sha256(b"sim-key|%d|%d" % (seed, i)).digest())
                for i in range(cfg.validators + cfg.joiners)]
        self.validator_set = ValidatorSet(Validator(bytes(k.verify_key), GENESIS_POWER)
                                          for k in keys[:cfg.validators])
        roles = [HONEST] * len(keys)
        for i, kind in zip(self.rng.sample(range(cfg.validators), len(cfg.byzantine)), cfg.byzantine,
                           strict=True):
            roles[i] = kind
        self.nodes = [_Node(i, roles[i], keys[i]) for i in range(len(keys))]
        if cfg.observer:
            self.nodes.append(_Node(len(keys), "observer", None))
        #: Every consensus key a node ever holds, and its node.
        self.owner: dict[bytes, int] = {bytes(k.verify_key): i for i, k in enumerate(keys)}
        self._secret: dict[bytes, nacl.signing.SigningKey] = {bytes(k.verify_key): k for k in keys}
        self.joiner_nodes = frozenset(range(cfg.validators, len(keys)))
        # The governance schedule: steps that proposers put in blocks once due; each takes effect
        # two heights after the block that carries it is decided.
        self.schedule: list[GovernanceStep] = []
        self._rotations: dict[int, int] = {}
        if cfg.membership_steps:
            self.schedule = draw_schedule(
                self.rng, self.validator_set, self.owner,
                frozenset(n.index for n in self.nodes if n.role in BYZANTINE_KINDS),
                [(j, bytes(keys[j].verify_key)) for j in sorted(self.joiner_nodes)],
                self._rotation_key, cfg.membership_steps, cfg.fault_ms)
        for step in self.schedule:
            for change in step.changes:
                if change.kind == ROTATE:
                    self.nodes[change.node].keys.append(self._secret[change.new_key])
        #: When each joiner starts (0: with everyone); before that it is down, like a crashed node.
        self.join_ms = {j: 0 if self.rng.random() < 0.5 else self.rng.randint(1, cfg.fault_ms // 2)
                        for j in sorted(self.joiner_nodes)}
        for node in self.nodes:
            node.disk.sets = {1: self.validator_set, 2: self.validator_set}
        self.byzantine_keys = {bytes(k.verify_key) for n in self.nodes if n.role in BYZANTINE_KINDS
                               for k in n.keys}
        self.now = 0
        self._queue: list[tuple[int, int, int, object]] = []
        self._seq = 0
        self.healed = False
        self.partition: frozenset[int] | None = None
        # Checkers' memory.
        self.decided: dict[int, bytes] = {}
        self.valid_blocks: set[bytes] = set()
        self.proposed: set[tuple[int, bytes]] = set()
        self.signed: dict[tuple[bytes, int, int, int], bytes] = {}
        self._block_counter = 0
        self._splits: dict[tuple[int, int], frozenset[int]] = {}
        self._targets: dict[tuple[int, int], int] = {}
        self._fresh: dict[tuple[int, int], bytes] = {}
        self._alternatives: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self.messages_sent = 0
        self.messages_delivered = 0
        self.consensus_delivered = 0
        self.protocol_sent = 0
        self.evidence = 0
        self.max_round = 0
        self.target_height = 0
        self.deadline_ms = 0
        # The chain as the checkers derive it from the decided blocks alone: the set of each height
        # (up to two past the highest decided), the steps decided, which block carries which step.
        self.chain_sets: dict[int, ValidatorSet] = {1: self.validator_set, 2: self.validator_set}
        self.chain_steps: list[tuple[int, int]] = []
        self.block_step: dict[bytes, int] = {}
        self.new_signers: set[bytes] = set()

    def _rotation_key(self, node: int) -> bytes:
        """A fresh consensus key for ``node``'s next rotation."""
        count = self._rotations[node] = self._rotations.get(node, 0) + 1
        key = nacl.signing.SigningKey(hashlib.sha256(b"sim-rot|%d|%d|%d" % (self.seed, node, count)).digest())
        self._secret[bytes(key.verify_key)] = key
        return bytes(key.verify_key)

    # --- running ---------------------------------------------------------------------------------

    @property
    def replay_command(self) -> str:
        cfg = self.config
        command = (f".venv/bin/python -m consensus.testing --seed {self.seed} --validators {cfg.validators}"
                   + (f" --byzantine {','.join(cfg.byzantine)}" if cfg.byzantine else " --byzantine none"))
        for name, value in self.overrides.items():
            if isinstance(value, int):
                command += f" --set {name}={value}"
        if self.core_class is not TendermintCore or self.signer_class is not Signer:
            command += f"  # with {self.core_class.__name__}/{self.signer_class.__name__} planted"
        return command

    def fail(self, kind: str, detail: str) -> InvariantViolation:
        return InvariantViolation(kind, self.seed, f"at t={self.now}ms: {detail}", self.replay_command)

    def run(self) -> SimResult:
        cfg = self.config
        for node in self.nodes:
            if self.join_ms.get(node.index, 0) > 0:
                self._push(self.join_ms[node.index], _RESTART, (node.index, node.epoch))
                continue
            if node.role != "silent":
                self._boot(node, gossip=False)
            self._push(self.rng.randint(0, cfg.gossip_ms), _GOSSIP, (node.index, node.epoch))
        self._push(self.rng.randint(20, 200), _CHAOS, None)
        self._push(cfg.fault_ms, _HEAL, None)
        while self._queue:
            time_ms, _, kind, payload = heapq.heappop(self._queue)
            self.now = time_ms
            if self.healed and self._all_caught_up():
                break
            if self.healed and self.now > self.deadline_ms:
                lag = {n.index: n.disk.height for n in self._honest()}
                raise self.fail("liveness", f"honest nodes did not all decide height {self.target_height} "
                                f"within {self.deadline_ms - cfg.fault_ms}ms of the heal; heights {lag}")
            try:
                self._dispatch(kind, payload)
            except InvariantViolation:
                raise
            except Exception as exc:  # any exception out of a core is a bug, expected or not
                raise self.fail("crash", f"{type(exc).__name__}: {exc}") from exc
        else:
            raise self.fail("liveness", "event queue ran dry")
        return SimResult(
            seed=self.seed, config=cfg, heights_decided=min(n.disk.height for n in self._honest()),
            messages_sent=self.messages_sent, messages_delivered=self.messages_delivered,
            consensus_delivered=self.consensus_delivered, protocol_sent=self.protocol_sent, end_ms=self.now,
            max_round=self.max_round, evidence=self.evidence, decided=dict(self.decided),
            membership=tuple((h, self.schedule[k].kinds) for h, k in self.chain_steps),
            new_signers=len(self.new_signers),
        )

    def _honest(self) -> list[_Node]:
        return [n for n in self.nodes if n.role in (HONEST, "observer")]

    def _all_caught_up(self) -> bool:
        return all(n.disk.height >= self.target_height for n in self._honest())

    def _push(self, delay_ms: int, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay_ms, self._seq, kind, payload))

    def _dispatch(self, kind: int, payload: object) -> None:
        if kind == _DELIVER:
            self._deliver(*payload)  # type: ignore[misc]
        elif kind == _TIMEOUT:
            index, epoch, height, round_, step = payload  # type: ignore[misc]
            node = self.nodes[index]
            if node.epoch == epoch and node.core is not None:
                self._act(node, node.core.on_timeout(height, round_, step))
        elif kind == _PROPOSE:
            index, epoch, height, round_ = payload  # type: ignore[misc]
            node = self.nodes[index]
            if node.epoch == epoch and node.core is not None:
                self._act(node, node.core.propose(height, round_, self._new_block(height, node)))
        elif kind == _VALIDITY:
            index, epoch, height, block_id = payload  # type: ignore[misc]
            node = self.nodes[index]
            if node.epoch == epoch and node.core is not None:
                self._act(node, node.core.block_validity(height, block_id, self._valid_for(node, block_id)))
        elif kind == _APPLY:
            index, epoch, height = payload  # type: ignore[misc]
            node = self.nodes[index]
            if node.epoch == epoch and node.core is not None and node.core.height < height:
                validators = node.disk.sets[height]
                if node.key_for(validators) is not node.key:
                    # A rotation takes effect: from this height on the node signs with its new key,
                    # so it builds a new core around a Signer of that key (with that key's own
                    # sign state) and gives it back its WAL, as after a restart.
                    self._boot(node, gossip=False)
                else:
                    self._act(node, node.core.start_height(height, validators))
                if node.core is not None:  # _act may have crashed it
                    self._send_status(node, catch_up_only=True)
        elif kind == _GOSSIP:
            index, epoch = payload  # type: ignore[misc]
            node = self.nodes[index]
            if node.epoch == epoch:
                if node.core is not None:
                    self._send_status(node)
                self._push(self.config.gossip_ms, _GOSSIP, (index, epoch))
        elif kind == _CHAOS:
            self._chaos()
        elif kind == _RESTART:
            index, epoch = payload  # type: ignore[misc]
            node = self.nodes[index]
            if node.epoch == epoch and node.core is None:
                self._boot(node)
        elif kind == _HEAL:
            self._heal()

    # --- nodes -----------------------------------------------------------------------------------

    def _boot(self, node: _Node, gossip: bool = True) -> None:
        height = node.disk.height + 1
        validators = node.disk.sets[height]
        node.use_key(node.key_for(validators))
        signer = None
        if node.key is not None:
            signer = self.signer_class(node.key, CHAIN_ID, node.disk.sign_states.get(node.public_key))
        node.core = self.core_class(CHAIN_ID, validators, signer, height, self.config.timeouts)
        self._act(node, node.core.start())
        # Replay the WAL, as CometBFT does on restart: the core gets back its vote sets.
        wal = node.disk.wal
        replay = [m for signed in wal.signed.values() for m in signed] + list(wal.received)
        for message in replay:
            if node.core is None or node.core.height != node.disk.wal.height:
                break
            self._act(node, node.core.receive(message))
        if gossip:
            self._push(self.rng.randint(0, self.config.gossip_ms), _GOSSIP, (node.index, node.epoch))

    def _crash(self, node: _Node) -> None:
        node.core = None
        node.epoch += 1
        self._push(self.rng.randint(50, 1000), _RESTART, (node.index, node.epoch))

    def _act(self, node: _Node, actions: list) -> None:
        cut = len(actions)
        if (not self.healed and node.role == HONEST and actions
                and self.rng.randrange(100) < self.config.crash_mid_pct):
            cut = self.rng.randrange(len(actions))
        for number, action in enumerate(actions):
            if number == cut:
                self._crash(node)
                return
            if isinstance(action, Broadcast):
                self.protocol_sent += len(self.nodes) - 1
                self._broadcast(node, action.message)
            elif isinstance(action, PersistSignState):
                node.disk.sign_states[node.public_key] = action.state
                signed = action.state.message(CHAIN_ID, node.public_key)
                wal = node.disk.wal
                if signed is not None and signed.height == wal.height:
                    wal.signed.setdefault(signed.round, {})[signed] = None
                    wal.index(signed)
            elif isinstance(action, ScheduleTimeout):
                self.max_round = max(self.max_round, action.round)
                self._push(action.duration_ms, _TIMEOUT,
                           (node.index, node.epoch, action.height, action.round, action.step))
            elif isinstance(action, RequestProposal):
                self._push(self.rng.randint(0, 5), _PROPOSE, (node.index, node.epoch, action.height, action.round))
            elif isinstance(action, ValidateBlock):
                self._push(self.rng.randint(0, 5), _VALIDITY,
                           (node.index, node.epoch, action.height, action.block_id))
            elif isinstance(action, Decide):
                self._check_decide(node, action)
                self._store(node, action.height, action.certificate)
                self._push(self.rng.randint(0, 3), _APPLY, (node.index, node.epoch, action.height + 1))
            elif isinstance(action, ReportEvidence):
                self._check_evidence(node, action)
            else:
                raise self.fail("crash", f"unknown action {action!r}")

    def _new_block(self, height: int, node: _Node) -> bytes:
        """The application builds a block on ``node``'s chain; it carries the next governance step
        of that chain if the step is due (its proposal reached its threshold)."""
        self._block_counter += 1
        block_id = hashlib.sha256(b"block|%d|%d|%d" % (self.seed, height, self._block_counter)).digest()
        self.valid_blocks.add(block_id)
        step = node.disk.steps
        if step < len(self.schedule) and self.schedule[step].due_ms <= self.now:
            self.block_step[block_id] = step
        return block_id

    def _valid_for(self, node: _Node, block_id: bytes) -> bool:
        """The application's verdict at ``node``: a block it knows as valid, whose governance step
        (if any) is the next one of the node's chain, so the change applies to the set it knows."""
        step = self.block_step.get(block_id)
        return block_id in self.valid_blocks and (step is None or step == node.disk.steps)

    def _store(self, node: _Node, height: int, certificate: CommitCertificate) -> None:
        """The node stores decided block ``height`` and derives, from that block's content alone,
        the set of ``height + 2``."""
        disk = node.disk
        if height <= disk.height:
            return  # block sync stored it while the core was deciding it too
        validators = disk.sets[height + 1]
        steps = disk.steps
        step = self.block_step.get(certificate.block_id)
        if step is not None and step == steps:
            validators = apply_changes(validators, self.schedule[step].changes)
            steps += 1
        disk.decided(height, certificate, validators, steps)

    # --- network ---------------------------------------------------------------------------------

    def _send(self, src: int, dst: int, message: object) -> None:
        self.messages_sent += 1
        cfg = self.config
        if not self.healed:
            if self.partition is not None and ((src in self.partition) != (dst in self.partition)):
                return
            if self.rng.randrange(100) < cfg.loss_pct:
                return
            high = cfg.delay_max_ms
            if self.rng.randrange(100) < cfg.slow_pct:
                high *= 8
        else:
            high = cfg.healed_delay_max_ms
        self._push(self.rng.randint(cfg.delay_min_ms, high), _DELIVER, (dst, message))
        if self.rng.randrange(100) < cfg.dup_pct:
            self._push(self.rng.randint(cfg.delay_min_ms, high), _DELIVER, (dst, message))

    def _send_all(self, node: _Node, message: object, only: frozenset[int] | None = None) -> None:
        for other in self.nodes:
            if other is not node and (only is None or other.index in only):
                self._send(node.index, other.index, message)

    def _deliver(self, index: int, message: object) -> None:
        node = self.nodes[index]
        core = node.core
        if core is None:
            return
        self.messages_delivered += 1
        if isinstance(message, Status):
            self._answer_status(node, message)
            return
        if isinstance(message, bytes):
            self._act(node, core.receive_bytes(message))
            return
        if isinstance(message, SyncBlock):
            self._sync(node, message)
            return
        assert isinstance(message, Proposal | Vote)
        self.consensus_delivered += 1
        wal = node.disk.wal
        wal.receive(message)
        self._act(node, core.receive(message))

    def _sync(self, node: _Node, sync: SyncBlock) -> None:
        """Block sync as the node does it: verify the certificate alone, apply, move on."""
        core = node.core
        assert core is not None
        if sync.height != core.height or node.disk.height >= sync.height:
            return
        try:
            sync.certificate.verify(CHAIN_ID, node.disk.sets[sync.height], height=sync.height,
                                    block_id=sync.block_id)
        except ConsensusError:
            return
        if node.role in (HONEST, "observer"):
            self._check_certificate(node, sync.height, sync.block_id, sync.certificate)
            self._record_decision(node, sync.height, sync.block_id)
        self._store(node, sync.height, sync.certificate)
        self._push(self.rng.randint(0, 3), _APPLY, (node.index, node.epoch, sync.height + 1))

    def _send_status(self, node: _Node, catch_up_only: bool = False) -> None:
        core = node.core
        assert core is not None
        messages = core.round_messages(core.round)
        if node.role in (HONEST, "observer"):
            self._check_counted(node, core.height, messages)
        held = frozenset((int(m.type), m.signer) for m in messages)
        self._send_all(node, Status(node.index, core.height, core.round, held, catch_up_only))

    def _answer_status(self, node: _Node, status: Status) -> None:
        core = node.core
        assert core is not None
        if node.role in BYZANTINE_KINDS:
            return
        if status.height < core.height:
            certificate = node.disk.certificates.get(status.height)
            if certificate is not None:
                self._send(node.index, status.sender,
                           SyncBlock(status.height, certificate.block_id, certificate))
            return
        if status.height > core.height or status.catch_up_only:
            return
        # What CometBFT's reactor does: send the messages of the peer's round that it lacks, the
        # proof of lock of that round's proposal, and our own messages of a later round we are in
        # (so that f+1 of them can make it skip ahead).
        for message in core.round_messages(status.round):
            if (int(message.type), message.signer) not in status.held:
                self._send(node.index, status.sender, message)
        for vote in core.pol_prevotes(status.round):
            self._send(node.index, status.sender, vote)
        if core.round > status.round:
            for message in core.round_messages(core.round):
                if message.signer == node.public_key:
                    self._send(node.index, status.sender, message)

    # --- broadcasting, honest and Byzantine ----------------------------------------------------------

    def _broadcast(self, node: _Node, message: Proposal | Vote) -> None:
        if node.role == HONEST and message.signer == node.public_key:
            self._check_signed(node, message)
        if isinstance(message, Proposal):
            self.proposed.add((message.height, message.block_id))
        if node.role == "equivocator":
            self._equivocate(node, message)
        elif node.role == "double-voter":
            self._double_vote(node, message)
        elif node.role == "amnesiac":
            self._amnesiac(node, message)
        elif node.role == "garbage":
            self._garbage(node, message)
        else:
            self._send_all(node, message)

    def _split(self, height: int, round_: int) -> frozenset[int]:
        split = self._splits.get((height, round_))
        if split is None:
            others = list(range(len(self.nodes)))
            split = self._splits[(height, round_)] = frozenset(self.rng.sample(others, len(others) // 2))
        return split

    def _target(self, height: int, round_: int) -> int:
        target = self._targets.get((height, round_))
        if target is None:
            target = self._targets[(height, round_)] = self.rng.randrange(len(self.nodes))
        return target

    def _raw_sign(self, node: _Node, message: Proposal | Vote, block_id: bytes | None) -> Proposal | Vote:
        assert node.key is not None
        if isinstance(message, Proposal):
            assert block_id is not None
            draft = Proposal(message.height, message.round, block_id, -1, node.public_key, bytes(64))
        else:
            draft = Vote(message.kind, message.height, message.round, block_id, node.public_key, bytes(64))
        signature = node.key.sign(draft.sign_bytes(CHAIN_ID)).signature
        if isinstance(draft, Proposal):
            return Proposal(draft.height, draft.round, draft.block_id, -1, draft.proposer, signature)
        return Vote(draft.kind, draft.height, draft.round, draft.block_id, draft.validator, signature)

    def _equivocate(self, node: _Node, message: Proposal | Vote) -> None:
        """Propose two different valid blocks to the two halves of the network, and vote along."""
        split = self._split(message.height, message.round)
        everyone = frozenset(range(len(self.nodes)))
        if isinstance(message, Proposal):
            other = self._raw_sign(node, message, self._new_block(message.height, node))
            self.proposed.add((other.height, other.block_id))
            self._alternatives[(message.height, message.round)] = (message.block_id, other.block_id)
            self._send_all(node, message, everyone - split)
            self._send_all(node, other, split)
        else:
            self._double_vote(node, message)

    def _double_vote(self, node: _Node, message: Proposal | Vote) -> None:
        """Prevote one way to one half of the network and the other way to the other half;
        precommit a block to one node only and nil to the rest, so that one node may decide while
        the others move to the next round (where only their locks keep them safe)."""
        if isinstance(message, Proposal):
            self._send_all(node, message)
            return
        split = self._split(message.height, message.round)
        if message.kind == PRECOMMIT and message.block_id is not None:
            split = frozenset(range(len(self.nodes))) - {self._target(message.height, message.round)}
        everyone = frozenset(range(len(self.nodes)))
        pair = self._alternatives.get((message.height, message.round))
        if pair is not None and message.block_id in pair:
            a, b = pair
            first, second = (message, self._raw_sign(node, message, b if message.block_id == a else a))
            if message.block_id == b:
                first, second = second, first
        elif message.block_id is not None:
            first, second = message, self._raw_sign(node, message, None)
        else:
            proposal = next(iter(node.disk.wal.proposals.values()), None)
            alt = proposal.block_id if proposal is not None else self.rng.randbytes(32)
            first, second = message, self._raw_sign(node, message, alt)
        self._send_all(node, first, everyone - split)
        self._send_all(node, second, split)

    def _amnesiac(self, node: _Node, message: Proposal | Vote) -> None:
        """The amnesia attack: ignore every lock. Propose a fresh block, prevote each round's
        proposal to everyone, and precommit it to one node only (nil to the rest), so that one node
        may decide while the others, in the next round, are asked to vote for a fresh block."""
        height, round_ = message.height, message.round
        if isinstance(message, Proposal):
            fresh = self._raw_sign(node, message, self._new_block(height, node))
            self.proposed.add((fresh.height, fresh.block_id))
            self._fresh[(height, round_)] = fresh.block_id
            self._send_all(node, fresh)
            return
        block = self._fresh.get((height, round_))
        proposal = node.disk.wal.proposals.get(round_)
        if block is None and proposal is not None and proposal.height == height:
            block = proposal.block_id
        if block is None:
            self._send_all(node, message)
            return
        vote = message if message.block_id == block else self._raw_sign(node, message, block)
        if message.kind == PREVOTE:
            self._send_all(node, vote)
            return
        target = self._target(height, round_)
        nil = message if message.block_id is None else self._raw_sign(node, message, None)
        self._send_all(node, vote, frozenset({target}))
        self._send_all(node, nil, frozenset(range(len(self.nodes))) - {target})

    def _garbage(self, node: _Node, message: Proposal | Vote) -> None:
        """Propose and vote for blocks that do not exist; spray malformed and forged messages."""
        bogus = self._raw_sign(node, message, self.rng.randbytes(32))
        self._send_all(node, bogus)
        roll = self.rng.randrange(4)
        if roll == 0:
            self._send_all(node, self.rng.randbytes(self.rng.randint(0, 80)))
        elif roll == 1 and isinstance(bogus, Vote):
            forged = Vote(bogus.kind, bogus.height, bogus.round, bogus.block_id, bogus.validator,
                          self.rng.randbytes(64))
            self._send_all(node, forged)

    # --- chaos and healing -------------------------------------------------------------------------

    def _chaos(self) -> None:
        if self.healed:
            return
        cfg = self.config
        rng = self.rng
        if rng.randrange(100) < cfg.partition_pct:
            if self.partition is None:
                size = rng.randint(1, len(self.nodes) - 1)
                self.partition = frozenset(rng.sample(range(len(self.nodes)), size))
            else:
                self.partition = None
        if rng.randrange(100) < cfg.crash_pct:
            candidates = [n for n in self.nodes if n.role in (HONEST, "observer") and n.core is not None]
            if candidates:
                self._crash(rng.choice(candidates))
        self._push(rng.randint(20, 200), _CHAOS, None)

    def _heal(self) -> None:
        self.healed = True
        self.partition = None
        for node in self.nodes:
            if node.core is None and node.role != "silent":
                node.epoch += 1
                self._boot(node)
        honest = self._honest()
        self.target_height = max(n.disk.height for n in honest) + 1
        lag = self.target_height - min(n.disk.height for n in honest)
        self.deadline_ms = self.now + self.liveness_bound_ms(lag)
        # Every scheduled step is due by now: the honest nodes must decide a block for each step
        # still pending, and then (see _extend_chain) the height where the last one takes effect.
        self._extend_liveness(self.target_height + len(self.schedule) - len(self.chain_steps))
        if self.chain_steps:
            self._extend_liveness(self.chain_steps[-1][0] + 2)

    def _extend_liveness(self, height: int) -> None:
        """Liveness across changes: the honest nodes must also decide ``height``, the height where
        the last decided change takes effect, so the new set must decide a block. Each height past
        the first target gets the time of a fresh height (f+1 rounds, as if each had a faulty
        proposer) on top of the bound."""
        if height <= self.target_height:
            return
        cfg = self.config
        f = (cfg.validators + cfg.joiners - 1) // 3
        fresh = (sum(cfg.timeouts.round_ms(k) for k in range(f + 2)) + 2 * cfg.healed_delay_max_ms + 10
                 + cfg.gossip_ms)
        self.deadline_ms += (height - self.target_height) * fresh
        self.target_height = height

    def liveness_bound_ms(self, lag_heights: int) -> int:
        """Simulated time within which every honest node must reach the target height after heal:
        enough rounds for f+1 proposers in a row to be tried twice over, each starting no earlier
        than the highest round reached, plus catch-up of the lagging heights."""
        cfg = self.config
        f = (cfg.validators + cfg.joiners - 1) // 3
        first = self.max_round
        rounds = 2 * (f + 1) + 4
        waiting = sum(cfg.timeouts.round_ms(first + k) for k in range(rounds))
        per_height = 2 * cfg.healed_delay_max_ms + 10
        return 2 * cfg.gossip_ms + waiting + (lag_heights + 1) * (per_height + cfg.gossip_ms)

    # --- checkers --------------------------------------------------------------------------------

    def _check_signed(self, node: _Node, message: Proposal | Vote) -> None:
        data = message.sign_bytes(CHAIN_ID)
        key = (message.signer, message.height, message.round, int(message.type))
        seen = self.signed.setdefault(key, data)
        if seen != data:
            raise self.fail("double-sign", f"node {node.index} signed two different {message.type.name} "
                            f"messages at height {message.height} round {message.round} with one key")
        state = node.disk.sign_states.get(message.signer)
        step = _STEP_OF_TYPE[message.type]
        if state is None or (state.height, state.round, state.step) < (message.height, message.round, step):
            raise self.fail("persist-before-send", f"node {node.index} sent {message} before persisting it")
        if message.signer not in self.chain_sets[message.height]:
            raise self.fail("membership", f"node {node.index} signed a {message.type.name} at height "
                            f"{message.height} with a key that is not in the set of that height")

    def _check_decide(self, node: _Node, decide: Decide) -> None:
        if node.role not in (HONEST, "observer"):
            return
        self._check_certificate(node, decide.height, decide.block_id, decide.certificate)
        self._record_decision(node, decide.height, decide.block_id)
        core = node.core
        assert core is not None
        for round_ in range(max(core.round, decide.round) + 1):
            self._check_counted(node, decide.height, core.round_messages(round_))

    def _check_counted(self, node: _Node, height: int, messages: list[Proposal | Vote]) -> None:
        """An honest core holds (so counts) messages of ``height`` only from members of the set of
        that height as the chain gives it: never a removed validator's vote, nor an old key's."""
        members = self.chain_sets[height]
        for m in messages:
            if m.signer not in members:
                raise self.fail("membership", f"node {node.index} counts a {m.type.name} of a key (node "
                                f"{self.owner.get(m.signer)}) that is not in the set of height {height}")

    def _check_certificate(self, node: _Node, height: int, block_id: bytes,
                           certificate: CommitCertificate) -> None:
        """The certificate must verify against the set of its height as the decided chain gives it,
        not as the node believes it: no removed validator, old key or wrong power counted."""
        validators = self.chain_sets[height]
        try:
            certificate.verify(CHAIN_ID, validators, height=height, block_id=block_id)
        except ConsensusError as exc:
            raise self.fail("certificate", f"node {node.index} decided height {height} with a certificate "
                            f"that does not verify against the set of that height: {exc}") from exc
        for signer, _ in certificate.precommits:
            if signer not in self.validator_set:
                self.new_signers.add(signer)

    def _record_decision(self, node: _Node, height: int, block_id: bytes) -> None:
        first = self.decided.setdefault(height, block_id)
        if first != block_id:
            raise self.fail("agreement", f"node {node.index} decided {block_id.hex()[:12]} at height "
                            f"{height}, another honest node {first.hex()[:12]}")
        if block_id not in self.valid_blocks or (height, block_id) not in self.proposed:
            raise self.fail("validity", f"node {node.index} decided {block_id.hex()[:12]} at height "
                            f"{height}, which was never proposed as a valid block")
        if height + 2 not in self.chain_sets:
            self._extend_chain(node, height, block_id)

    def _extend_chain(self, node: _Node, height: int, block_id: bytes) -> None:
        """Block ``height`` is decided: the set of ``height + 2`` is that of ``height + 1`` with the
        block's changes, which must obey the rules against the set they change."""
        before = self.chain_sets[height + 1]
        after = before
        step = self.block_step.get(block_id)
        if step is not None:
            if step != len(self.chain_steps):
                raise self.fail("validity", f"node {node.index} decided a block at height {height} carrying "
                                f"governance step {step}, but the chain has decided {len(self.chain_steps)}")
            changes = self.schedule[step].changes
            why = rule_violation(before, changes)
            if why is not None:
                raise self.fail("validity", f"the block decided at height {height} carries a change the "
                                f"ledger refuses: {why}")
            after = apply_changes(before, changes)
            if not byzantine_share_ok(after, self.byzantine_keys):
                raise self.fail("crash", f"the schedule gives the Byzantine a third of the power at height "
                                f"{height + 2}: a bug in the simulator")
            self.chain_steps.append((height, step))
            if self.healed:
                self._extend_liveness(height + 2)
        self.chain_sets[height + 2] = after

    def _check_evidence(self, node: _Node, report: ReportEvidence) -> None:
        self.evidence += 1
        if node.role not in (HONEST, "observer"):
            return
        evidence = report.evidence
        try:
            evidence.verify(CHAIN_ID, self.chain_sets[evidence.height])
        except ConsensusError as exc:
            raise self.fail("evidence", f"node {node.index} reported evidence that does not verify against "
                            f"the set of height {evidence.height}: {exc}") from exc
        if evidence.validator not in self.byzantine_keys:
            raise self.fail("evidence", f"node {node.index} accused an honest validator")


def run_seed(seed: int, validators: int | None = None, byzantine: tuple[str, ...] | None = None,
             **kwargs: object) -> SimResult:
    """Run one seed and return its result, or raise InvariantViolation."""
    return Simulation(seed, validators, byzantine, **kwargs).run()  # type: ignore[arg-type]


__all__ = ["BYZANTINE_KINDS", "InvariantViolation", "SimConfig", "SimResult", "Simulation", "Status",
           "SyncBlock", "run_seed"]
