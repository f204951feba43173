"""What the core hands the node's gossip: every message it holds for a round, and the prevotes
that prove a re-proposal's lock. A peer that is missing them stalls until a timeout.
"""

from consensus.core import TendermintCore
from consensus.messages import PRECOMMIT, PREVOTE
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
PUBS = [bytes(k.verify_key) for k in KEYS]
A, B, C = block_id("a"), block_id("b"), block_id("c")


def raw(index: int) -> Signer:
    return Signer(KEYS[index], CHAIN_ID)


def proposer(round_: int) -> Signer:
    return raw(PUBS.index(VALIDATORS.proposer(1, round_)))


def test_round_messages_hold_the_proposal_and_every_vote_of_that_round() -> None:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, 1)
    core.start()
    prevotes = [raw(1).sign_vote(PREVOTE, 1, 0, B), raw(2).sign_vote(PREVOTE, 1, 0, None),
                raw(3).sign_vote(PREVOTE, 1, 0, B)]
    precommit = raw(1).sign_vote(PRECOMMIT, 1, 0, None)
    for message in prevotes + [precommit]:
        core.receive(message)
    held = core.round_messages(0)
    assert sorted(held[:3], key=lambda v: v.validator) == sorted(prevotes, key=lambda v: v.validator)
    assert held[3:] == [precommit]  # prevotes first, then precommits

    proposal = proposer(1).sign_proposal(1, 1, B, 0)
    vote = raw(0).sign_vote(PREVOTE, 1, 1, B)
    core.receive(proposal)
    core.receive(vote)
    assert core.round_messages(1) == [proposal, vote]
    assert core.round_messages(7) == []


def test_pol_prevotes_are_the_prevotes_for_the_proposed_block_in_its_proof_of_lock_round() -> None:
    core = TendermintCore(CHAIN_ID, VALIDATORS, None, 1)
    core.start()
    for_b = [raw(1).sign_vote(PREVOTE, 1, 0, B), raw(3).sign_vote(PREVOTE, 1, 0, B)]
    for message in [for_b[0], raw(2).sign_vote(PREVOTE, 1, 0, None), for_b[1]]:
        core.receive(message)
    core.receive(proposer(1).sign_proposal(1, 1, B, 0))      # proof of lock in round 0
    core.receive(proposer(2).sign_proposal(1, 2, C, -1))     # a fresh proposal: no proof
    core.receive(proposer(3).sign_proposal(1, 3, C, 0))      # round 0 holds no prevote for C
    core.receive(proposer(4).sign_proposal(1, 4, C, 3))      # round 3 holds no prevotes at all

    assert sorted(core.pol_prevotes(1), key=lambda v: v.validator) == sorted(for_b, key=lambda v: v.validator)
    assert core.pol_prevotes(0) == []  # no proposal in round 0
    assert core.pol_prevotes(2) == []
    assert core.pol_prevotes(3) == []
    assert core.pol_prevotes(4) == []
