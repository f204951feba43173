"""Validator set: ordering, quorum arithmetic, weighted round-robin proposer selection."""

from collections import Counter

import pytest

from consensus.errors import UsageError
from consensus.testing.fixtures import signing_keys, validator_set
from consensus.validators import Validator, ValidatorSet


def test_set_is_ordered_by_key_whatever_the_input_order() -> None:
    keys = signing_keys(5)
    a = validator_set(keys)
    b = validator_set(list(reversed(keys)))
    assert a == b
    assert [v.public_key for v in a] == sorted(v.public_key for v in a)


@pytest.mark.parametrize(("total", "quorum", "one_third"), [(1, 1, 1), (3, 3, 2), (4, 3, 2), (6, 5, 3), (7, 5, 3),
                                                              (10, 7, 4), (100, 67, 34)])
def test_quorum_is_more_than_two_thirds(total: int, quorum: int, one_third: int) -> None:
    vs = ValidatorSet([Validator(bytes([1] * 32), total)])
    assert vs.quorum_power == quorum
    assert vs.has_quorum(quorum) and not vs.has_quorum(quorum - 1)
    assert vs.one_third_power == one_third
    assert vs.has_one_third(one_third) and not vs.has_one_third(one_third - 1)


def test_equal_power_proposers_rotate_through_everyone() -> None:
    vs = validator_set(signing_keys(4))
    proposers = [vs.proposer(1, r) for r in range(8)]
    assert len(set(proposers[:4])) == 4
    assert proposers[:4] == proposers[4:]
    # One height later is one slot later, as with CometBFT's priorities.
    assert vs.proposer(2, 0) == vs.proposer(1, 1)


def test_weighted_proposers_in_proportion_and_spread_out() -> None:
    keys = signing_keys(3)
    vs = validator_set(keys, [1, 2, 5])
    cycle = [vs.proposer(0, r) for r in range(8)]
    counts = Counter(cycle)
    assert sorted(counts.values()) == [1, 2, 5]
    heavy = max(counts, key=counts.__getitem__)
    # Smooth round-robin: the heavy validator never proposes more than twice in a row here.
    runs = max(len(list(g)) for k, g in __import__("itertools").groupby(cycle) if k == heavy)
    assert runs <= 2


def test_proposer_is_a_pure_function_of_the_set() -> None:
    keys = signing_keys(7)
    powers = [3, 1, 4, 1, 5, 9, 2]
    a = validator_set(keys, powers)
    b = validator_set(list(reversed(keys)), list(reversed(powers)))
    assert [a.proposer(h, r) for h in range(1, 20) for r in range(5)] == [
        b.proposer(h, r) for h in range(1, 20) for r in range(5)
    ]


def test_huge_powers_are_scaled_into_the_schedule() -> None:
    keys = signing_keys(3)
    vs = validator_set(keys, [2**49, 2**49 - 1, 3])
    seen = {vs.proposer(0, r) for r in range(5000)}
    assert seen == {v.public_key for v in vs}


def test_bad_sets_are_refused() -> None:
    key = bytes(range(32))
    with pytest.raises(UsageError):
        ValidatorSet([])
    with pytest.raises(UsageError):
        ValidatorSet([Validator(key, 1), Validator(key, 2)])
    with pytest.raises(UsageError):
        Validator(key[:31], 1)
    with pytest.raises(UsageError):
        Validator(key, 0)
    with pytest.raises(UsageError):
        Validator(key, True)  # type: ignore[arg-type]


def test_membership_queries() -> None:
    keys = signing_keys(4)
    vs = validator_set(keys, [1, 2, 3, 4])
    assert vs.total_power == 10
    for i, v in enumerate(vs):
        assert v.public_key in vs
        assert vs.index_of(v.public_key) == i
        assert vs.power_of(v.public_key) == v.power
    assert vs.power_of(bytes(32)) == 0
    assert bytes(32) not in vs
