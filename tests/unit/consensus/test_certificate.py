"""Commit certificates verify alone and name what is wrong with a bad one."""

import pytest

from consensus.certificate import CommitCertificate
from consensus.errors import InvalidCertificate, MalformedMessage
from consensus.messages import PRECOMMIT
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
BLOCK = block_id("decided")


def certificate(signers: int = 3, block: bytes = BLOCK, round_: int = 0) -> CommitCertificate:
    votes = [Signer(k, CHAIN_ID).sign_vote(PRECOMMIT, 7, round_, block) for k in KEYS[:signers]]
    return CommitCertificate.from_votes(7, round_, block, votes)


def test_valid_certificate_verifies_and_round_trips() -> None:
    cert = certificate()
    cert.verify(CHAIN_ID, VALIDATORS, height=7, block_id=BLOCK)
    assert CommitCertificate.decode(cert.encode()) == cert
    assert [v.validator for v in cert.votes()] == [k for k, _ in cert.precommits]


def test_not_enough_power() -> None:
    with pytest.raises(InvalidCertificate, match="not more than 2/3"):
        certificate(2).verify(CHAIN_ID, VALIDATORS)


def test_wrong_block_or_height() -> None:
    with pytest.raises(InvalidCertificate, match="different block"):
        certificate().verify(CHAIN_ID, VALIDATORS, block_id=block_id("other"))
    with pytest.raises(InvalidCertificate, match="height"):
        certificate().verify(CHAIN_ID, VALIDATORS, height=8)


def test_signatures_for_another_block_do_not_count() -> None:
    cert = certificate()
    forged = CommitCertificate(cert.height, cert.round, block_id("other"), cert.precommits)
    with pytest.raises(InvalidCertificate, match="bad signature"):
        forged.verify(CHAIN_ID, VALIDATORS)
    with pytest.raises(InvalidCertificate, match="bad signature"):
        cert.verify("other-chain", VALIDATORS)


def test_duplicate_and_unknown_signers() -> None:
    cert = certificate()
    doubled = CommitCertificate(7, 0, BLOCK, cert.precommits + cert.precommits[:1])
    with pytest.raises(InvalidCertificate, match="duplicate"):
        doubled.verify(CHAIN_ID, VALIDATORS)
    stranger = signing_keys(1, seed=99)[0]
    vote = Signer(stranger, CHAIN_ID).sign_vote(PRECOMMIT, 7, 0, BLOCK)
    with pytest.raises(InvalidCertificate, match="unknown"):
        CommitCertificate(7, 0, BLOCK, cert.precommits + ((vote.validator, vote.signature),)).verify(
            CHAIN_ID, VALIDATORS)


def test_decode_rejects_non_canonical_and_garbage() -> None:
    cert = certificate()
    unsorted = CommitCertificate(7, 0, BLOCK, tuple(reversed(cert.precommits)))
    with pytest.raises(MalformedMessage):
        CommitCertificate.decode(unsorted.encode())
    data = cert.encode()
    for bad in (data[:-1], data + b"\x00", b"", b"\x90"):
        with pytest.raises(MalformedMessage):
            CommitCertificate.decode(bad)
