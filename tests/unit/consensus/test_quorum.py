"""The consensus core acts on a quorum (more than two thirds of the voting power), never less.

Driven by hand at height 1, round 0: one core receives the round's proposal and then prevotes or
precommits one by one. Up to two thirds of the power (or exactly two thirds) must neither lock,
nor make the core precommit the block, nor decide; the vote that takes the power past two thirds
must. The sets are chosen where "more than half" and "more than two thirds" differ, so a quorum
computed as a simple majority is caught too.
"""

from __future__ import annotations

import pytest

from consensus.actions import Broadcast, Decide
from consensus.core import TendermintCore
from consensus.messages import PRECOMMIT, PREVOTE
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set
from consensus.timeouts import Step
from consensus.validators import ValidatorSet

A = block_id("quorum-a")

#: powers, then who votes in order (indices into the key-ordered set), then how many of those votes
#: leave the power at or below two thirds. The next vote crosses two thirds.
CASES = {
    # 4 equal: 2 of 4 is half; 3 of 4 is a quorum
    "4-equal": ([1, 1, 1, 1], 2),
    # 7 equal: 4 of 7 is more than half but not more than two thirds; 5 of 7 is a quorum
    "7-equal": ([1] * 7, 4),
    # total 5: 1 + 2 = 3 is more than half (60%), not more than two thirds; + 1 = 4 (80%) is
    "weighted-majority": ([1, 1, 1, 2], None),
    # total 6: 1 + 3 = 4 is exactly two thirds, which is not more than two thirds; + 1 = 5 is
    "weighted-two-thirds": ([1, 1, 1, 3], None),
}


def setup(powers: list[int]) -> tuple[list, ValidatorSet, list[int]]:
    """Keys, validator set, and the voters' order: for weighted sets the heaviest validator first
    after the (light) core itself, so power crosses one half well before two thirds."""
    keys = signing_keys(len(powers), seed=11)
    validators = validator_set(keys, powers)
    return keys, validators, sorted(range(len(powers)), key=lambda i: -powers[i])


def votes_below_quorum(powers: list[int], order: list[int], me: int | None, below: int | None) -> int:
    """How many votes (the core's own first, if it votes) keep the power at or below two thirds."""
    if below is not None:
        return below
    total, power, count = sum(powers), 0, 0
    for i in ([me] if me is not None else []) + [i for i in order if i != me]:
        if 3 * (power + powers[i]) > 2 * total:
            return count
        power += powers[i]
        count += 1
    raise AssertionError("unreachable")


def broadcasts(actions: list, kind) -> list:
    return [a.message for a in actions if isinstance(a, Broadcast) and getattr(a.message, "kind", None) == kind]


@pytest.mark.parametrize("case", list(CASES))
def test_prevotes_lock_and_precommit_only_past_two_thirds(case: str) -> None:
    powers, below = CASES[case]
    keys, validators, order = setup(powers)
    pubs = [bytes(k.verify_key) for k in keys]
    proposer = pubs.index(validators.proposer(1, 0))
    # the core: a validator of the least power that is not the proposer (it prevotes A itself)
    me = min((i for i in range(len(keys)) if i != proposer), key=lambda i: (powers[i], i))
    core = TendermintCore(CHAIN_ID, validators, Signer(keys[me], CHAIN_ID), 1)
    core.start()
    core.receive(Signer(keys[proposer], CHAIN_ID).sign_proposal(1, 0, A, -1))
    actions = core.block_validity(1, A, True)
    assert [v.block_id for v in broadcasts(actions, PREVOTE)] == [A]  # its own prevote: the first vote
    others = [i for i in order if i != me]
    n_below = votes_below_quorum(powers, order, me, below)
    counted = sum(powers[i] for i in [me] + others[:n_below - 1])
    assert 3 * counted <= 2 * sum(powers) < 3 * (counted + powers[others[n_below - 1]])
    for i in others[:n_below - 1]:
        actions = core.receive(Signer(keys[i], CHAIN_ID).sign_vote(PREVOTE, 1, 0, A))
        assert broadcasts(actions, PRECOMMIT) == [], f"precommitted with {counted} of {sum(powers)}"
        assert (core.locked_value, core.locked_round, core.valid_value) == (None, -1, None)
        assert core.step == Step.PREVOTE
    actions = core.receive(Signer(keys[others[n_below - 1]], CHAIN_ID).sign_vote(PREVOTE, 1, 0, A))
    assert [v.block_id for v in broadcasts(actions, PRECOMMIT)] == [A]
    assert (core.locked_value, core.locked_round, core.valid_value, core.valid_round) == (A, 0, A, 0)
    assert core.step == Step.PRECOMMIT


@pytest.mark.parametrize("case", list(CASES))
def test_precommits_decide_only_past_two_thirds(case: str) -> None:
    powers, below = CASES[case]
    keys, validators, order = setup(powers)
    core = TendermintCore(CHAIN_ID, validators, None, 1)  # an observer: only others' votes count
    core.start()
    n_below = votes_below_quorum(powers, order, None, below)
    counted = sum(powers[i] for i in order[:n_below])
    assert 3 * counted <= 2 * sum(powers) < 3 * (counted + powers[order[n_below]])
    for i in order[:n_below]:
        actions = core.receive(Signer(keys[i], CHAIN_ID).sign_vote(PRECOMMIT, 1, 0, A))
        assert not any(isinstance(a, Decide) for a in actions), f"decided with {counted} of {sum(powers)}"
        assert core.decision is None and core.step != Step.COMMIT
    actions = core.receive(Signer(keys[order[n_below]], CHAIN_ID).sign_vote(PRECOMMIT, 1, 0, A))
    decided = [a for a in actions if isinstance(a, Decide)]
    assert len(decided) == 1 and decided[0].block_id == A and core.step == Step.COMMIT
    decided[0].certificate.verify(CHAIN_ID, validators, height=1, block_id=A)


@pytest.mark.parametrize("case", list(CASES))
def test_nil_prevotes_make_the_core_precommit_nil_only_past_two_thirds(case: str) -> None:
    powers, below = CASES[case]
    keys, validators, order = setup(powers)
    core = TendermintCore(CHAIN_ID, validators, None, 1)
    core.start()
    core.on_timeout(1, 0, Step.PROPOSE)  # no proposal: the core moves to the prevote step
    assert core.step == Step.PREVOTE
    n_below = votes_below_quorum(powers, order, None, below)
    for i in order[:n_below]:
        core.receive(Signer(keys[i], CHAIN_ID).sign_vote(PREVOTE, 1, 0, None))
        assert core.step == Step.PREVOTE
    core.receive(Signer(keys[order[n_below]], CHAIN_ID).sign_vote(PREVOTE, 1, 0, None))
    assert core.step == Step.PRECOMMIT
