"""The liquidation waterfall on the worked examples of docs/WATERFALL.md, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.waterfall import ShareClass, split_pro_rata, waterfall

M = 1_000_000
COMMON_5M = ShareClass("COMMON", 5 * M)
SERIES_A_NONPART = ShareClass("SERA", 5 * M, seniority=1, preference_per_unit=1, participating=False)
SERIES_A_PART = ShareClass("SERA", 5 * M, seniority=1, preference_per_unit=1, participating=True)
SERIES_A_CAPPED = ShareClass("SERA", 5 * M, seniority=1, preference_per_unit=1, participating=True, cap_per_unit=3)


@pytest.mark.parametrize("exit_amount, series_a, common, converted", [
    (3 * M, 3 * M, 0, ()),  # below the preference: all to Series A
    (8 * M, 5 * M, 3 * M, ()),  # preference (5M) beats converting (4M)
    (20 * M, 10 * M, 10 * M, ("SERA",)),  # converting (10M) beats the preference (5M)
])
def test_example_1_non_participating(exit_amount, series_a, common, converted):
    result = waterfall(exit_amount, [SERIES_A_NONPART, COMMON_5M])
    assert result.payouts == {"SERA": series_a, "COMMON": common}
    assert result.converted == converted and result.undistributed == 0


def test_example_2_participating_takes_preference_and_its_share():
    assert waterfall(8 * M, [SERIES_A_PART, COMMON_5M]).payouts == {"SERA": 6_500_000, "COMMON": 1_500_000}


@pytest.mark.parametrize("exit_amount, series_a, common, converted", [
    (20 * M, 12_500_000, 7_500_000, ()),  # 5M + half of 15M = 12.5M, under the 15M cap
    (28 * M, 15 * M, 13 * M, ()),  # 5M + 11.5M passes the cap: 15M; converting would give only 14M
    (32 * M, 16 * M, 16 * M, ("SERA",)),  # capped at 15M, but converting gives 16M
    (40 * M, 20 * M, 20 * M, ("SERA",)),  # capped at 15M, converting gives 20M: converts
])
def test_example_3_participating_with_cap(exit_amount, series_a, common, converted):
    result = waterfall(exit_amount, [SERIES_A_CAPPED, COMMON_5M])
    assert result.payouts == {"SERA": series_a, "COMMON": common}
    assert result.converted == converted


def test_example_4_seniority_stack():
    series_b = ShareClass("SERB", 2 * M, seniority=2, preference_per_unit=3, participating=False)
    series_a = ShareClass("SERA", 5 * M, seniority=1, preference_per_unit=1, participating=False)
    common = ShareClass("COMMON", 8 * M)
    # $7M: B takes its $6M first, A gets the last $1M, common nothing.
    low = waterfall(7 * M, [series_b, series_a, common])
    assert low.payouts == {"SERB": 6 * M, "SERA": 1 * M, "COMMON": 0} and low.converted == ()
    # $100M: both convert; 15M shares share $100M: B 2/15, A 5/15, common 8/15.
    high = waterfall(100 * M, [series_b, series_a, common])
    assert high.converted == ("SERB", "SERA")  # in class order
    # each exact share ends in 1/3: the spare unit goes to the first class in order
    assert high.payouts == {"SERB": 13_333_334, "SERA": 33_333_333, "COMMON": 53_333_333}
    assert sum(high.payouts.values()) == 100 * M


def test_example_5_pari_passu_shares_a_shortfall_by_preference_amount():
    series_b = ShareClass("SERB", 2 * M, seniority=1, preference_per_unit=3, participating=False)  # $6M
    series_a = ShareClass("SERA", 3 * M, seniority=1, preference_per_unit=1, participating=False)  # $3M
    result = waterfall(6 * M, [series_b, series_a, ShareClass("COMMON", 10 * M)])
    assert result.payouts == {"SERB": 4 * M, "SERA": 2 * M, "COMMON": 0}


def test_nothing_to_participate_is_returned_undistributed():
    only_preferred = ShareClass("P", 10, seniority=1, preference_per_unit=2, participating=False, convertible=False)
    result = waterfall(50, [only_preferred])
    assert result.payouts == {"P": 20} and result.undistributed == 30


classes = st.lists(
    st.builds(ShareClass, token=st.sampled_from(["A", "B", "C", "D", "E"]), units=st.integers(0, 10_000),
              seniority=st.integers(0, 3), preference_per_unit=st.integers(0, 50), participating=st.booleans(),
              cap_per_unit=st.none() | st.integers(1, 200), convertible=st.booleans()),
    min_size=1, max_size=5, unique_by=lambda c: c.token)


@given(amount=st.integers(0, 10**9), share_classes=classes)
def test_payouts_sum_to_the_amount_distributed(amount, share_classes):
    result = waterfall(amount, share_classes)
    assert all(v >= 0 for v in result.payouts.values())
    assert sum(result.payouts.values()) + result.undistributed == amount
    assert result.undistributed >= 0
    if any(c.units > 0 and (not c.preferred or (c.participating and c.cap_per_unit is None)) for c in share_classes):
        assert result.undistributed == 0


@given(amount=st.integers(0, 10**12), weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=30))
def test_split_pro_rata_is_exact(amount, weights):
    named = [(f"h{i}", w) for i, w in enumerate(weights)]
    split = split_pro_rata(amount, named)
    assert sum(split.values()) == (amount if sum(weights) else 0)
    total = sum(weights)
    for key, weight in named:
        if total:
            assert abs(split[key] - amount * weight / total) < 1 + 1e-9
