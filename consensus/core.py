"""The Tendermint consensus core: one object that owns the algorithm's state, and nothing else.

Rules of this file:
- Everything that changes consensus state lives here. Inputs are method calls (``start``,
  ``receive``, ``on_timeout``, ``propose``, ``block_validity``, ``start_height``); outputs are the
  returned lists of actions (consensus/actions.py). Nothing is awaited, read from a clock, drawn at
  random, or iterated in an order that depends on hashing.
- The upon-rules are those of Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon,
  Milosevic, 2018); each ``_try_*`` method names its lines. After every input, ``_advance`` fires
  rules until none applies. Where the paper is silent or assumes things a real network breaks, we do
  what CometBFT does; docs/CONSENSUS.md lists each such choice.
- Steps move only along ``_NEXT_STEPS`` (a new round always restarts at PROPOSE); any other move is
  an ``InternalError``, i.e. a bug.
- Blame: bad input from peers is counted in ``drops`` and dropped; misuse by the caller raises
  ``UsageError``; the double-sign guard's refusals are counted in ``drops.refused_sign``. Any other
  exception escaping is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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
from consensus.certificate import CommitCertificate
from consensus.errors import DoubleSignRefused, InternalError, MalformedMessage, UsageError
from consensus.evidence import ConflictingProposalEvidence, DuplicateVoteEvidence, Evidence
from consensus.messages import (
    BLOCK_ID_BYTES,
    HEIGHT_MAX,
    PRECOMMIT,
    PREVOTE,
    Message,
    MessageType,
    Proposal,
    Vote,
    check_chain_id,
    decode_message,
)
from consensus.signing import Signer, SignStep, verify_message
from consensus.timeouts import Step, TimeoutConfig
from consensus.validators import ValidatorSet

#: Messages of the current height more than this many rounds ahead of ours are dropped; the bound
#: keeps a Byzantine validator from filling memory with votes for far-away rounds.
ROUNDS_AHEAD_MAX: int = 1000
#: Messages up to this many heights ahead are buffered and replayed by ``start_height``.
FUTURE_HEIGHTS_MAX: int = 2
#: At most this many future-height messages are buffered per signer.
FUTURE_MESSAGES_PER_VALIDATOR: int = 64
#: An equivocating validator's votes for further blocks in one (kind, round) are kept up to this
#: many, so that a quorum for a block that includes them is still seen (CometBFT keeps them for
#: blocks a peer claims +2/3 for); beyond it they are only reported.
CONFLICTING_VOTES_PER_VALIDATOR: int = 2

_NEXT_STEPS: dict[Step, tuple[Step, ...]] = {
    Step.PROPOSE: (Step.PREVOTE, Step.COMMIT),
    Step.PREVOTE: (Step.PRECOMMIT, Step.COMMIT),
    Step.PRECOMMIT: (Step.COMMIT,),
    Step.COMMIT: (),
}


@dataclass(slots=True)
class DropCounters:
    """Inputs the core dropped, by reason. Peers' faults first, then late or refused local work."""

    malformed: int = 0
    bad_signature: int = 0
    unknown_signer: int = 0
    wrong_proposer: int = 0
    stale: int = 0
    duplicate: int = 0
    #: The second of two conflicting messages from one signer (reported as evidence, not counted).
    conflicting: int = 0
    too_far_ahead: int = 0
    buffer_full: int = 0
    #: ``propose`` or ``block_validity`` answers that arrived after the core moved on.
    late_answer: int = 0
    #: Signatures the double-sign guard refused (expected after a restart mid-round).
    refused_sign: int = 0

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


class _VoteSet:
    """The votes of one kind and round.

    ``votes`` holds each validator's first vote, and ``total`` their power: that is what "+2/3 of
    any vote" counts. ``by_block`` and ``power`` count each validator at most once per block but
    include an equivocator's later votes for other blocks. That is safe: two blocks with +2/3 each
    in one round would need more than 1/3 of the power to vote for both, and honest ones never do.
    """

    __slots__ = ("votes", "by_block", "power", "total", "extra")

    def __init__(self) -> None:
        self.votes: dict[bytes, Vote] = {}
        self.by_block: dict[bytes | None, dict[bytes, Vote]] = {}
        self.power: dict[bytes | None, int] = {}
        self.total = 0
        self.extra: dict[bytes, int] = {}


class TendermintCore:
    """Tendermint for one validator (or an observer, when ``signer`` is None)."""

    def __init__(self, chain_id: str, validators: ValidatorSet, signer: Signer | None, height: int,
                 timeouts: TimeoutConfig | None = None) -> None:
        try:
            self.chain_id = check_chain_id(chain_id)
        except MalformedMessage as exc:
            raise UsageError(str(exc)) from None
        if not isinstance(validators, ValidatorSet):
            raise UsageError("validators must be a ValidatorSet")
        if signer is not None and (not isinstance(signer, Signer) or signer.chain_id != chain_id):
            raise UsageError("signer must be a Signer for the same chain id, or None")
        self._check_height(height)
        self.timeouts = timeouts if timeouts is not None else TimeoutConfig()
        self._signer = signer
        self.drops = DropCounters()
        #: How many pieces of evidence this core has reported since it was built.
        self.evidence_reported = 0
        self._started = False
        #: Future-height messages in arrival order (a dict as an ordered set), with counts per signer.
        self._buffer: dict[Message, None] = {}
        self._buffered: dict[bytes, int] = {}
        self._reset(height, validators)

    def _reset(self, height: int, validators: ValidatorSet) -> None:
        self.height = height
        self.validators = validators
        self.round = 0
        self.step = Step.PROPOSE
        self.locked_value: bytes | None = None
        self.locked_round = -1
        self.valid_value: bytes | None = None
        self.valid_round = -1
        self.decision: Decide | None = None
        self._voting = self._signer is not None and self._signer.public_key in validators
        self._proposals: dict[int, Proposal] = {}
        self._validity: dict[bytes, bool | None] = {}
        self._prevotes: dict[int, _VoteSet] = {}
        self._precommits: dict[int, _VoteSet] = {}
        self._round_senders: dict[int, dict[bytes, None]] = {}
        self._round_power: dict[int, int] = {}
        self._fired: set[tuple[str, int]] = set()
        self._awaiting_proposal = -1
        self._decide_candidates: list[tuple[int, bytes]] = []
        self._evidence_keys: set[tuple[int, int, int, bytes]] = set()

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        """Begin the height given at construction; call once."""
        if self._started:
            raise UsageError("start() was already called")
        self._started = True
        out: list[Action] = []
        self._enter_height(out)
        return out

    @property
    def signer(self) -> Signer | None:
        """Who this core signs as (None: an observer)."""
        return self._signer

    @property
    def voting(self) -> bool:
        """True if this core signs at its current height: its key is in the height's set."""
        return self._voting

    def start_height(self, height: int, validators: ValidatorSet, signer: Signer | None = None) -> list[Action]:
        """Move to ``height`` (after the node applied the block below it) with its validator set,
        then replay the messages buffered for it.

        ``signer``: from this height on, sign with it instead (the chain rotated this validator's
        consensus key). It must carry the current signer's record on, so the guard stays whole."""
        self._check_height(height)
        if not isinstance(validators, ValidatorSet):
            raise UsageError("validators must be a ValidatorSet")
        if height <= self.height and self._started:
            raise UsageError(f"start_height({height}) does not move past height {self.height}")
        if signer is not None:
            if self._signer is None:
                raise UsageError("an observer's core has no signer to replace")
            if signer.state != self._signer.state:
                raise UsageError("a new signer must carry the current signer's record on")
            self._signer = signer
        self._started = True
        self._reset(height, validators)
        out: list[Action] = []
        self._enter_height(out)
        return out

    # --- messages and timeouts ---------------------------------------------------------------------

    def receive(self, message: Message) -> list[Action]:
        """Take one decoded proposal or vote from a peer (or from the node's own gossip)."""
        if not isinstance(message, Proposal | Vote):
            raise UsageError(f"receive() takes a Proposal or Vote, not {type(message).__name__}")
        self._require_started()
        out: list[Action] = []
        self._receive_one(out, message)
        self._advance(out)
        return out

    def receive_bytes(self, data: bytes) -> list[Action]:
        """Decode wire bytes and ``receive`` them; malformed bytes are counted and dropped."""
        try:
            message = decode_message(data)
        except MalformedMessage:
            self.drops.malformed += 1
            return []
        return self.receive(message)

    def on_timeout(self, height: int, round_: int, step: Step) -> list[Action]:
        """A timeout scheduled by ``ScheduleTimeout`` expired. Outdated ones are ignored."""
        self._require_started()
        if type(height) is not int or type(round_) is not int or step not in _NEXT_STEPS:
            raise UsageError("on_timeout(height: int, round: int, step: Step)")
        out: list[Action] = []
        if height != self.height or round_ != self.round or self.step == Step.COMMIT:
            return out
        if step == Step.PROPOSE and self.step == Step.PROPOSE:  # lines 57-60
            self._vote(out, PREVOTE, None)
            self._set_step(Step.PREVOTE)
        elif step == Step.PREVOTE and self.step == Step.PREVOTE:  # lines 61-64
            self._vote(out, PRECOMMIT, None)
            self._set_step(Step.PRECOMMIT)
        elif step == Step.PRECOMMIT:  # lines 65-67
            self._start_round(out, self.round + 1)
        self._advance(out)
        return out

    # --- answers from the node ---------------------------------------------------------------------

    def propose(self, height: int, round_: int, block_id: bytes) -> list[Action]:
        """Answer a ``RequestProposal``: propose the block the node built. A late answer (the core
        has moved on) is counted in ``drops.late_answer`` and ignored."""
        self._require_started()
        if type(block_id) is not bytes or len(block_id) != BLOCK_ID_BYTES:
            raise UsageError("block_id must be 32 bytes")
        if (height != self.height or round_ != self.round or self._awaiting_proposal != round_
                or self.step != Step.PROPOSE):
            self.drops.late_answer += 1
            return []
        self._awaiting_proposal = -1
        out: list[Action] = []
        self._send_proposal(out, block_id, -1)
        self._advance(out)
        return out

    def block_validity(self, height: int, block_id: bytes, valid: bool) -> list[Action]:
        """Answer a ``ValidateBlock``. Until answered, a proposal of that block is pending."""
        self._require_started()
        if type(valid) is not bool:
            raise UsageError("valid must be a bool")
        if height != self.height or block_id not in self._validity or self._validity[block_id] is not None:
            self.drops.late_answer += 1
            return []
        self._validity[block_id] = valid
        out: list[Action] = []
        self._advance(out)
        return out

    # --- queries for the node's gossip -----------------------------------------------------------

    def round_messages(self, round_: int) -> list[Message]:
        """The proposal and every vote this core holds for ``round_`` of the current height, in
        arrival order: what the node's gossip offers a peer that is in that round."""
        held: list[Message] = []
        proposal = self._proposals.get(round_)
        if proposal is not None:
            held.append(proposal)
        for votes in (self._prevotes.get(round_), self._precommits.get(round_)):
            if votes is not None:
                for by_block in votes.by_block.values():
                    held.extend(by_block.values())
        return held

    def pol_prevotes(self, round_: int) -> list[Vote]:
        """The prevotes for this round's proposal at its proof-of-lock round, if it has one."""
        proposal = self._proposals.get(round_)
        if proposal is None or proposal.pol_round < 0:
            return []
        pol = self._prevotes.get(proposal.pol_round)
        return list(pol.by_block.get(proposal.block_id, {}).values()) if pol is not None else []

    # --- private: inputs ---------------------------------------------------------------------------

    def _receive_one(self, out: list[Action], msg: Message) -> None:
        if msg.height < self.height:
            self.drops.stale += 1
        elif msg.height > self.height:
            self._buffer_future(msg)
        elif msg.signer not in self.validators:
            self.drops.unknown_signer += 1
        elif msg.round > self.round + ROUNDS_AHEAD_MAX:
            self.drops.too_far_ahead += 1
        elif isinstance(msg, Proposal):
            self._on_proposal(out, msg)
        else:
            self._on_vote(out, msg)

    def _on_proposal(self, out: list[Action], p: Proposal) -> None:
        if p.proposer != self.validators.proposer(self.height, p.round):
            self.drops.wrong_proposer += 1
            return
        held = self._proposals.get(p.round)
        if held is not None and (held.block_id, held.pol_round) == (p.block_id, p.pol_round):
            self.drops.duplicate += 1
            return
        if not verify_message(self.chain_id, p):
            self.drops.bad_signature += 1
            return
        if held is not None:
            self.drops.conflicting += 1
            self._report(out, ConflictingProposalEvidence(held, p), MessageType.PROPOSAL, p.round,
                         p.proposer)
            return
        self._proposals[p.round] = p
        self._note_sender(p.round, p.proposer)
        if p.block_id not in self._validity:
            self._validity[p.block_id] = None
            out.append(ValidateBlock(self.height, p.round, p.block_id))

    def _on_vote(self, out: list[Action], v: Vote) -> None:
        votes = self._prevotes if v.kind == PREVOTE else self._precommits
        vote_set = votes.get(v.round)
        held = vote_set.votes.get(v.validator) if vote_set is not None else None
        if held is not None and (
            held.block_id == v.block_id or v.validator in vote_set.by_block.get(v.block_id, ())
        ):
            self.drops.duplicate += 1
            return
        if not verify_message(self.chain_id, v):
            self.drops.bad_signature += 1
            return
        if held is not None:
            self.drops.conflicting += 1
            self._report(out, DuplicateVoteEvidence(held, v), v.kind, v.round, v.validator)
            if vote_set.extra.get(v.validator, 0) >= CONFLICTING_VOTES_PER_VALIDATOR:
                return
            vote_set.extra[v.validator] = vote_set.extra.get(v.validator, 0) + 1
        self._add_vote(v)

    def _add_vote(self, v: Vote) -> None:
        votes = self._prevotes if v.kind == PREVOTE else self._precommits
        vote_set = votes.get(v.round)
        if vote_set is None:
            vote_set = votes[v.round] = _VoteSet()
        power = self.validators.power_of(v.validator)
        if v.validator not in vote_set.votes:
            vote_set.votes[v.validator] = v
            vote_set.total += power
        block_votes = vote_set.by_block.get(v.block_id)
        if block_votes is None:
            block_votes = vote_set.by_block[v.block_id] = {}
        block_votes[v.validator] = v
        vote_set.power[v.block_id] = vote_set.power.get(v.block_id, 0) + power
        self._note_sender(v.round, v.validator)
        if (v.kind == PRECOMMIT and v.block_id is not None
                and self._has_quorum(vote_set.power[v.block_id])):
            self._decide_candidates.append((v.round, v.block_id))

    def _note_sender(self, round_: int, key: bytes) -> None:
        senders = self._round_senders.get(round_)
        if senders is None:
            senders = self._round_senders[round_] = {}
        if key not in senders:
            senders[key] = None
            self._round_power[round_] = self._round_power.get(round_, 0) + self.validators.power_of(key)

    def _buffer_future(self, msg: Message) -> None:
        if msg.height > self.height + FUTURE_HEIGHTS_MAX:
            self.drops.too_far_ahead += 1
            return
        # The next height's set is not known yet; the current one is the best filter until
        # start_height replays the message against the real one.
        if msg.signer not in self.validators:
            self.drops.unknown_signer += 1
            return
        if msg in self._buffer:
            self.drops.duplicate += 1
            return
        count = self._buffered.get(msg.signer, 0)
        if count >= FUTURE_MESSAGES_PER_VALIDATOR:
            self.drops.buffer_full += 1
            return
        # Verified now so that forged messages cannot use up an honest validator's quota.
        if not verify_message(self.chain_id, msg):
            self.drops.bad_signature += 1
            return
        self._buffer[msg] = None
        self._buffered[msg.signer] = count + 1

    def _report(self, out: list[Action], evidence: Evidence, type_: MessageType, round_: int,
                signer: bytes) -> None:
        key = (int(type_), self.height, round_, signer)
        if key in self._evidence_keys:
            return
        self._evidence_keys.add(key)
        self.evidence_reported += 1
        out.append(ReportEvidence(evidence))

    # --- private: the algorithm ----------------------------------------------------------------------

    def _enter_height(self, out: list[Action]) -> None:
        first_round = 0
        signer = self._signer
        if self._voting and signer is not None and signer.state.height == self.height:
            # Restarted mid-height: resume in the last round we signed in, holding our lock.
            state = signer.state
            first_round = state.round
            if state.lock_block_id is not None:
                self.locked_round = self.valid_round = state.lock_round
                self.locked_value = self.valid_value = state.lock_block_id
                self._validity[state.lock_block_id] = True
        self._start_round(out, first_round)
        if self._voting and signer is not None and signer.state.height == self.height:
            self._resume(out)
        buffered = list(self._buffer)
        self._buffer = {}
        self._buffered = {}
        for msg in buffered:
            self._receive_one(out, msg)
        self._advance(out)

    def _resume(self, out: list[Action]) -> None:
        """After a restart mid-round, send again what we last signed and take up the step after it,
        as CometBFT's WAL replay would: the message may have been lost with the crash."""
        assert self._signer is not None
        saved = self._signer.last_message()
        if saved is None or saved.height != self.height or saved.round != self.round:
            return
        out.append(Broadcast(saved))
        if isinstance(saved, Proposal):
            self._proposals.setdefault(saved.round, saved)
            self._note_sender(saved.round, saved.proposer)
            if self._validity.get(saved.block_id) is None:
                self._validity[saved.block_id] = True
            return
        self._add_vote(saved)
        self._set_step(Step.PREVOTE)
        if saved.kind == PRECOMMIT:
            self._set_step(Step.PRECOMMIT)

    def _start_round(self, out: list[Action], round_: int) -> None:
        """StartRound, lines 11-21."""
        if self.step == Step.COMMIT:
            raise InternalError("a decided height starts no rounds")
        self.round = round_
        self.step = Step.PROPOSE
        self._awaiting_proposal = -1
        signer = self._signer
        if self._voting and self.validators.proposer(self.height, round_) == signer.public_key:
            state = signer.state
            if (state.height, state.round) == (self.height, round_) and state.step != SignStep.NONE:
                pass  # signed in this round before a restart; _resume re-sends it
            elif self.valid_value is not None:
                self._send_proposal(out, self.valid_value, self.valid_round)
            else:
                self._awaiting_proposal = round_
                out.append(RequestProposal(self.height, round_))
        # CometBFT schedules timeoutPropose for the proposer too (the paper does not): a node that
        # never answers RequestProposal must not stall the round.
        self._schedule(out, Step.PROPOSE)

    def _advance(self, out: list[Action]) -> None:
        while self.step != Step.COMMIT and (
            self._try_decide(out)
            or self._try_skip_round(out)
            or self._try_prevote(out)
            or self._try_prevote_timeout(out)
            or self._try_precommit_block(out)
            or self._try_precommit_nil(out)
            or self._try_precommit_timeout(out)
        ):
            pass

    def _try_decide(self, out: list[Action]) -> bool:
        """Lines 49-54, as CometBFT does it: +2/3 precommits for a block in any round decide it,
        with or without its proposal (the node fetches the block by id)."""
        for round_, block_id in self._decide_candidates:
            votes = self._precommits[round_]
            if self._has_quorum(votes.power.get(block_id, 0)):
                precommits = list(votes.by_block[block_id].values())
                certificate = CommitCertificate.from_votes(self.height, round_, block_id, precommits)
                self._set_step(Step.COMMIT)
                self.decision = Decide(self.height, round_, block_id, certificate)
                out.append(self.decision)
                return True
        return False

    def _try_skip_round(self, out: list[Action]) -> bool:
        """Lines 55-56: f+1 power of messages from a higher round moves us to that round."""
        target = -1
        for round_, power in self._round_power.items():
            if round_ > self.round and round_ > target and self._has_one_third(power):
                target = round_
        if target < 0:
            return False
        self._start_round(out, target)
        return True

    def _try_prevote(self, out: list[Action]) -> bool:
        """Lines 22-33: prevote the round's proposal if it is valid and our lock allows it."""
        if self.step != Step.PROPOSE:
            return False
        proposal = self._proposals.get(self.round)
        if proposal is None:
            return False
        valid = self._validity.get(proposal.block_id)
        if valid is None:  # the node has not judged the block yet
            return False
        if proposal.pol_round >= 0:
            pol = self._prevotes.get(proposal.pol_round)
            if pol is None or not self._has_quorum(pol.power.get(proposal.block_id, 0)):
                return False  # line 28 waits for the proof of lock; timeoutPropose bounds the wait
        accept = valid and self._lock_allows(proposal.block_id, proposal.pol_round)
        self._vote(out, PREVOTE, proposal.block_id if accept else None)
        self._set_step(Step.PREVOTE)
        return True

    def _has_quorum(self, power: int) -> bool:
        return self.validators.has_quorum(power)

    def _has_one_third(self, power: int) -> bool:
        return self.validators.has_one_third(power)

    def _lock_allows(self, block_id: bytes, pol_round: int) -> bool:
        """Line 23 (fresh proposal) and line 29 (re-proposal with a proof of lock at pol_round)."""
        if self.locked_value == block_id or self.locked_round == -1:
            return True
        return pol_round >= 0 and self.locked_round <= pol_round

    def _try_prevote_timeout(self, out: list[Action]) -> bool:
        """Lines 34-35."""
        key = ("prevote-timeout", self.round)
        votes = self._prevotes.get(self.round)
        if (self.step != Step.PREVOTE or key in self._fired or votes is None
                or not self._has_quorum(votes.total)):
            return False
        self._fired.add(key)
        self._schedule(out, Step.PREVOTE)
        return True

    def _try_precommit_block(self, out: list[Action]) -> bool:
        """Lines 36-43: +2/3 prevotes for the round's valid proposal lock it (if still prevoting)
        and make it our valid value."""
        key = ("lock", self.round)
        if self.step not in (Step.PREVOTE, Step.PRECOMMIT) or key in self._fired:
            return False
        proposal = self._proposals.get(self.round)
        votes = self._prevotes.get(self.round)
        if (proposal is None or votes is None or self._validity.get(proposal.block_id) is not True
                or not self._has_quorum(votes.power.get(proposal.block_id, 0))):
            return False
        self._fired.add(key)
        if self.step == Step.PREVOTE:
            self.locked_value, self.locked_round = proposal.block_id, self.round
            self._vote(out, PRECOMMIT, proposal.block_id)
            self._set_step(Step.PRECOMMIT)
        self.valid_value, self.valid_round = proposal.block_id, self.round
        return True

    def _try_precommit_nil(self, out: list[Action]) -> bool:
        """Lines 44-46."""
        votes = self._prevotes.get(self.round)
        if self.step != Step.PREVOTE or votes is None or not self._has_quorum(votes.power.get(None, 0)):
            return False
        self._vote(out, PRECOMMIT, None)
        self._set_step(Step.PRECOMMIT)
        return True

    def _try_precommit_timeout(self, out: list[Action]) -> bool:
        """Lines 47-48."""
        key = ("precommit-timeout", self.round)
        votes = self._precommits.get(self.round)
        if key in self._fired or votes is None or not self._has_quorum(votes.total):
            return False
        self._fired.add(key)
        self._schedule(out, Step.PRECOMMIT)
        return True

    # --- private: outputs --------------------------------------------------------------------------

    def _send_proposal(self, out: list[Action], block_id: bytes, pol_round: int) -> None:
        signer = self._signer
        assert signer is not None
        try:
            proposal = signer.sign_proposal(self.height, self.round, block_id, pol_round)
        except DoubleSignRefused:
            self.drops.refused_sign += 1
            return
        out.append(PersistSignState(signer.state))
        out.append(Broadcast(proposal))
        if pol_round >= 0:
            # Peers accept the re-proposal only with its proof of lock; send the prevotes along,
            # as CometBFT's reactor does, so it does not wait for a timeout.
            pol = self._prevotes.get(pol_round)
            if pol is not None:
                out.extend(Broadcast(v) for v in pol.by_block.get(block_id, {}).values())
        if self.round not in self._proposals:
            self._proposals[self.round] = proposal
            self._note_sender(self.round, proposal.proposer)
        # The node vouches for the blocks it builds, as CometBFT's proposer skips ProcessProposal.
        if self._validity.get(block_id) is None:
            self._validity[block_id] = True

    def _vote(self, out: list[Action], kind: MessageType, block_id: bytes | None) -> None:
        if not self._voting:
            return
        signer = self._signer
        assert signer is not None
        try:
            vote = signer.sign_vote(kind, self.height, self.round, block_id)
        except DoubleSignRefused:
            self.drops.refused_sign += 1
            return
        out.append(PersistSignState(signer.state))
        out.append(Broadcast(vote))
        held = (self._prevotes if kind == PREVOTE else self._precommits).get(self.round)
        if held is None or vote.validator not in held.by_block.get(block_id, ()):
            self._add_vote(vote)

    def _schedule(self, out: list[Action], step: Step) -> None:
        out.append(ScheduleTimeout(self.height, self.round, step, self.timeouts.duration_ms(step, self.round)))

    def _set_step(self, step: Step) -> None:
        if step not in _NEXT_STEPS[self.step]:
            raise InternalError(f"illegal step change {self.step.name} -> {step.name}")
        self.step = step

    def _require_started(self) -> None:
        if not self._started:
            raise UsageError("call start() first")

    @staticmethod
    def _check_height(height: object) -> None:
        if type(height) is not int or not 1 <= height <= HEIGHT_MAX:
            raise UsageError(f"height must be an int in [1, {HEIGHT_MAX}]")
