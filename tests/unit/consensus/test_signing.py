"""The double-sign guard follows CometBFT's privval rules, and its record survives encoding."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import DoubleSignRefused, MalformedMessage, UsageError
from consensus.messages import PRECOMMIT, PREVOTE
from consensus.signing import Signer, SignState, SignStep, verify_message
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys

KEY = signing_keys(1)[0]
A, B = block_id("a"), block_id("b")


def test_signs_forward_in_height_round_and_step() -> None:
    s = Signer(KEY, CHAIN_ID)
    s.sign_proposal(1, 0, A, -1)
    s.sign_vote(PREVOTE, 1, 0, A)
    s.sign_vote(PRECOMMIT, 1, 0, A)
    s.sign_vote(PREVOTE, 1, 1, None)  # next round, earlier step: allowed
    s.sign_vote(PREVOTE, 2, 0, B)  # next height
    assert (s.state.height, s.state.round, s.state.step) == (2, 0, SignStep.PREVOTE)


def test_same_bytes_again_returns_the_saved_signature() -> None:
    s = Signer(KEY, CHAIN_ID)
    first = s.sign_vote(PREVOTE, 3, 1, A)
    again = s.sign_vote(PREVOTE, 3, 1, A)
    assert again == first
    # Also after a restart from the persisted record.
    restarted = Signer(KEY, CHAIN_ID, SignState.decode(s.state.encode()))
    assert restarted.sign_vote(PREVOTE, 3, 1, A) == first


@pytest.mark.parametrize(
    ("kind", "height", "round_", "block"),
    [
        (PREVOTE, 3, 1, B),  # same step, other block
        (PREVOTE, 3, 1, None),  # same step, nil instead
        (PREVOTE, 3, 0, A),  # round regression
        (PREVOTE, 2, 5, A),  # height regression
    ],
)
def test_conflicts_and_regressions_are_refused(kind, height: int, round_: int, block: bytes | None) -> None:
    s = Signer(KEY, CHAIN_ID)
    s.sign_vote(PREVOTE, 3, 1, A)
    before = s.state
    with pytest.raises(DoubleSignRefused):
        s.sign_vote(kind, height, round_, block)
    assert s.state == before


def test_step_regression_is_refused() -> None:
    s = Signer(KEY, CHAIN_ID)
    s.sign_vote(PRECOMMIT, 3, 1, A)
    with pytest.raises(DoubleSignRefused):
        s.sign_vote(PREVOTE, 3, 1, A)
    with pytest.raises(DoubleSignRefused):
        s.sign_proposal(3, 1, A, -1)


def test_record_keeps_the_lock_of_the_height() -> None:
    s = Signer(KEY, CHAIN_ID)
    s.sign_vote(PRECOMMIT, 4, 0, A)
    assert (s.state.lock_round, s.state.lock_block_id) == (0, A)
    s.sign_vote(PREVOTE, 4, 1, None)
    s.sign_vote(PRECOMMIT, 4, 1, None)  # a nil precommit does not unlock
    assert (s.state.lock_round, s.state.lock_block_id) == (0, A)
    s.sign_vote(PRECOMMIT, 4, 2, B)
    assert (s.state.lock_round, s.state.lock_block_id) == (2, B)
    s.sign_vote(PREVOTE, 5, 0, A)  # a new height starts unlocked
    assert (s.state.lock_round, s.state.lock_block_id) == (-1, None)


def test_last_message_rebuilds_what_was_signed() -> None:
    s = Signer(KEY, CHAIN_ID)
    assert s.last_message() is None
    p = s.sign_proposal(2, 1, A, 0)
    assert s.last_message() == p
    v = s.sign_vote(PRECOMMIT, 2, 1, None)
    assert s.last_message() == v
    assert verify_message(CHAIN_ID, v)


def test_sign_state_round_trip_and_rejects_garbage() -> None:
    s = Signer(KEY, CHAIN_ID)
    s.sign_vote(PRECOMMIT, 9, 2, A)
    data = s.state.encode()
    assert SignState.decode(data) == s.state
    assert SignState.decode(SignState().encode()) == SignState()
    for bad in (data[:-1], data + b"\x00", b"", b"\xc1", "text"):
        with pytest.raises(MalformedMessage):
            SignState.decode(bad)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_sign_state_decode(data: bytes) -> None:
    try:
        state = SignState.decode(data)
    except MalformedMessage:
        return
    assert state.encode() == data


def test_signer_needs_a_real_key_and_chain() -> None:
    with pytest.raises(UsageError):
        Signer(b"x" * 32, CHAIN_ID)  # type: ignore[arg-type]
    with pytest.raises(MalformedMessage):
        Signer(KEY, "")
