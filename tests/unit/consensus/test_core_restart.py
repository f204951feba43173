"""A validator restarted mid-height from its sign record alone takes up where it signed last:
it re-sends that message, holds its lock, asks for no second block, and signs nothing else.
"""

from consensus.actions import Broadcast, PersistSignState, RequestProposal, ValidateBlock
from consensus.core import TendermintCore
from consensus.messages import PRECOMMIT, PREVOTE, Proposal
from consensus.signing import Signer, SignState
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set
from consensus.timeouts import Step

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
PUBS = [bytes(k.verify_key) for k in KEYS]
A = block_id("a")


def raw(index: int) -> Signer:
    return Signer(KEYS[index], CHAIN_ID)


def proposer_index(height: int, round_: int) -> int:
    return PUBS.index(VALIDATORS.proposer(height, round_))


def restart(index: int, state: SignState) -> tuple[TendermintCore, list]:
    """A new process for validator ``index`` with only its persisted sign record."""
    core = TendermintCore(CHAIN_ID, VALIDATORS, Signer(KEYS[index], CHAIN_ID, SignState.decode(state.encode())), 1)
    return core, core.start()


def sent(actions: list) -> list:
    return [a.message for a in actions if isinstance(a, Broadcast)]


def locked_then_crashed(me: int) -> SignState:
    """Validator ``me`` prevotes and precommits A in round 0 (its lock), then crashes."""
    signer = raw(me)
    core = TendermintCore(CHAIN_ID, VALIDATORS, signer, 1)
    core.start()
    core.receive(raw(proposer_index(1, 0)).sign_proposal(1, 0, A, -1))
    core.block_validity(1, A, True)
    for i in [i for i in range(4) if i != me][:2]:
        core.receive(raw(i).sign_vote(PREVOTE, 1, 0, A))
    assert signer.state.lock_block_id == A and signer.state.step.name == "PRECOMMIT"
    return signer.state


def test_a_proposer_restarted_after_proposing_resends_it_and_prevotes_its_own_block() -> None:
    me = proposer_index(1, 0)
    core = TendermintCore(CHAIN_ID, VALIDATORS, raw(me), 1)
    core.start()
    actions = core.propose(1, 0, A)
    proposal = sent(actions)[0]
    assert isinstance(proposal, Proposal)
    after_proposal = next(a.state for a in actions if isinstance(a, PersistSignState))  # crash here

    restarted, actions = restart(me, after_proposal)
    assert not any(isinstance(a, RequestProposal | ValidateBlock) for a in actions)
    assert sent(actions)[0] == proposal
    assert [(m.round, m.block_id) for m in sent(actions)[1:] if m.kind == PREVOTE] == [(0, A)]
    assert restarted.step == Step.PREVOTE


def test_a_restarted_locked_validator_trusts_its_locked_block_without_asking_again() -> None:
    me = 0
    assert me not in (proposer_index(1, 0), proposer_index(1, 1))
    core, actions = restart(me, locked_then_crashed(me))
    assert (core.locked_value, core.step) == (A, Step.PRECOMMIT)
    for i in (1, 2, 3):
        core.receive(raw(i).sign_vote(PRECOMMIT, 1, 0, None))
    core.on_timeout(1, 0, Step.PRECOMMIT)
    actions = core.receive(raw(proposer_index(1, 1)).sign_proposal(1, 1, A, -1))
    assert not any(isinstance(a, ValidateBlock) for a in actions)
    assert [(m.round, m.block_id) for m in sent(actions) if m.kind == PREVOTE] == [(1, A)]


def test_a_restarted_proposer_reproposes_its_locked_block_even_holding_no_prevotes_for_it() -> None:
    me = proposer_index(1, 1)
    core, _ = restart(me, locked_then_crashed(me))
    other = next(i for i in range(4) if i not in (me, proposer_index(1, 0)))
    core.receive(raw(other).sign_vote(PREVOTE, 1, 0, None))  # round 0's prevotes: none for A
    for i in [i for i in range(4) if i != me]:
        core.receive(raw(i).sign_vote(PRECOMMIT, 1, 0, None))
    actions = core.on_timeout(1, 0, Step.PRECOMMIT)
    proposals = [m for m in sent(actions) if isinstance(m, Proposal)]
    assert [(p.round, p.block_id, p.pol_round) for p in proposals] == [(1, A, 0)]


def test_a_record_of_this_height_that_holds_no_message_resends_nothing() -> None:
    me = proposer_index(1, 0)
    core, actions = restart(me, SignState(height=1, round=0))
    assert sent(actions) == []
    assert RequestProposal(1, 0) in actions


def test_a_key_outside_the_validator_set_resends_nothing_after_a_restart() -> None:
    outsider = Signer(signing_keys(1, seed=9)[0], CHAIN_ID)
    outsider.sign_vote(PREVOTE, 1, 0, A)
    core = TendermintCore(CHAIN_ID, VALIDATORS, outsider, 1)
    actions = core.start()
    assert sent(actions) == []
