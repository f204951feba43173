"""A commit certificate has one shape: each field at its bounds is accepted, one past them refused.

A certificate arrives from peers (block sync, observers) and is trusted after `verify`; what it
may hold is checked when it is built or decoded, so a malformed one never reaches `verify`.
"""

import pytest

from consensus.certificate import CERTIFICATE_BYTES_MAX, CommitCertificate
from consensus.errors import MalformedMessage
from consensus.messages import HEIGHT_MAX, PRECOMMIT, PREVOTE, ROUND_MAX
from consensus.signing import Signer, verify_message
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set
from consensus.validators import VALIDATORS_MAX

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
BLOCK = block_id("decided")
ENTRY = (b"k" * 32, b"s" * 64)


def make(height=7, round_=0, block=BLOCK, precommits=(ENTRY,)) -> CommitCertificate:
    return CommitCertificate(height, round_, block, precommits)


@pytest.mark.parametrize("height", [1, HEIGHT_MAX])
def test_height_bounds_are_accepted(height: int) -> None:
    assert make(height=height).height == height


@pytest.mark.parametrize("height", [0, -1, HEIGHT_MAX + 1, True, 7.0, "7", None])
def test_height_outside_bounds_or_not_an_int_is_refused(height: object) -> None:
    with pytest.raises(MalformedMessage):
        make(height=height)


@pytest.mark.parametrize("round_", [0, ROUND_MAX])
def test_round_bounds_are_accepted(round_: int) -> None:
    assert make(round_=round_).round == round_


@pytest.mark.parametrize("round_", [-1, ROUND_MAX + 1, False, 0.0, "0"])
def test_round_outside_bounds_or_not_an_int_is_refused(round_: object) -> None:
    with pytest.raises(MalformedMessage):
        make(round_=round_)


@pytest.mark.parametrize("block", [b"x" * 31, b"x" * 33, b"", bytearray(32), "x" * 32, None])
def test_block_id_must_be_32_bytes(block: object) -> None:
    with pytest.raises(MalformedMessage):
        make(block=block)


@pytest.mark.parametrize("count", [1, VALIDATORS_MAX])
def test_one_to_validators_max_precommits_are_accepted(count: int) -> None:
    precommits = tuple((i.to_bytes(32, "big"), b"s" * 64) for i in range(count))
    assert len(make(precommits=precommits).precommits) == count


@pytest.mark.parametrize("count", [0, VALIDATORS_MAX + 1])
def test_no_precommits_or_more_than_validators_max_are_refused(count: int) -> None:
    precommits = tuple((i.to_bytes(32, "big"), b"s" * 64) for i in range(count))
    with pytest.raises(MalformedMessage):
        make(precommits=precommits)


@pytest.mark.parametrize("entry", [
    (b"k" * 32,),                         # no signature
    (b"k" * 32, b"s" * 64, b"x"),         # a third element
    (b"k" * 31, b"s" * 64),               # short key
    (b"k" * 33, b"s" * 64),               # long key
    (bytearray(32), b"s" * 64),           # key not bytes
    (b"k" * 32, b"s" * 63),               # short signature
    (b"k" * 32, b"s" * 65),               # long signature
    (b"k" * 32, bytearray(64)),           # signature not bytes
    (b"s" * 64, b"k" * 32),               # the two swapped
])
def test_each_precommit_is_a_32_byte_key_and_a_64_byte_signature(entry: tuple) -> None:
    with pytest.raises(MalformedMessage):
        make(precommits=(ENTRY, entry))


def test_from_votes_keeps_only_precommits_for_that_block_height_and_round() -> None:
    def signer(i: int) -> Signer:  # a fresh one per vote: the double-sign guard is not under test
        return Signer(KEYS[i], CHAIN_ID)

    wanted = [signer(i).sign_vote(PRECOMMIT, 7, 2, BLOCK) for i in (0, 1)]
    noise = [
        signer(2).sign_vote(PREVOTE, 7, 2, BLOCK),                # another kind
        signer(2).sign_vote(PRECOMMIT, 7, 2, block_id("other")),  # another block
        signer(3).sign_vote(PRECOMMIT, 8, 2, BLOCK),              # another height
        signer(3).sign_vote(PRECOMMIT, 7, 3, BLOCK),              # another round
    ]
    cert = CommitCertificate.from_votes(7, 2, BLOCK, noise + wanted)
    assert cert.precommits == tuple(sorted((v.validator, v.signature) for v in wanted))


def test_votes_are_the_signed_precommits_again() -> None:
    votes = [Signer(k, CHAIN_ID).sign_vote(PRECOMMIT, 7, 1, BLOCK) for k in KEYS[:3]]
    cert = CommitCertificate.from_votes(7, 1, BLOCK, votes)
    again = cert.votes()
    assert sorted(again, key=lambda v: v.validator) == sorted(votes, key=lambda v: v.validator)
    assert all(verify_message(CHAIN_ID, v) for v in again)


def test_decode_refuses_what_is_not_bytes_or_is_oversized_before_parsing() -> None:
    cert = CommitCertificate.from_votes(
        7, 0, BLOCK, [Signer(k, CHAIN_ID).sign_vote(PRECOMMIT, 7, 0, BLOCK) for k in KEYS[:3]])
    for bad in (bytearray(cert.encode()), memoryview(cert.encode()), cert.encode().hex()):
        with pytest.raises(MalformedMessage, match="bytes of bounded length"):
            CommitCertificate.decode(bad)
    with pytest.raises(MalformedMessage, match="bytes of bounded length"):
        CommitCertificate.decode(cert.encode() + b"\x00" * CERTIFICATE_BYTES_MAX)
