"""A validator whose consensus key the chain rotated signs with the new key from the height the
rotation takes effect, and only with the old key's sign record carried on: the double-sign guard
must not restart empty under a new key. An observer has no key to rotate.
"""

import pytest

from consensus.actions import Broadcast
from consensus.core import TendermintCore
from consensus.errors import UsageError
from consensus.messages import PREVOTE
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, signing_keys, validator_set
from consensus.timeouts import Step

KEYS = signing_keys(4)
OLD, NEW = KEYS[0], signing_keys(1, seed=3)[0]
BEFORE = validator_set(KEYS)
AFTER = validator_set([NEW, *KEYS[1:]])


def signed_by(actions: list) -> set[bytes]:
    return {a.message.signer for a in actions if isinstance(a, Broadcast)}


def test_after_a_rotation_the_core_signs_with_the_new_key_and_the_record_carried_on() -> None:
    old = Signer(OLD, CHAIN_ID)
    core = TendermintCore(CHAIN_ID, BEFORE, old, 1)
    core.start()
    assert signed_by(core.on_timeout(1, 0, Step.PROPOSE)) == {old.public_key}
    new = Signer(NEW, CHAIN_ID, old.state)
    core.start_height(2, AFTER, new)
    assert core.signer is new and core.voting
    assert core.step == Step.PROPOSE
    actions = core.on_timeout(2, 0, Step.PROPOSE)
    prevotes = [a.message for a in actions if isinstance(a, Broadcast) and a.message.kind == PREVOTE]
    assert [p.signer for p in prevotes] == [new.public_key]


def test_a_new_key_that_does_not_carry_the_record_on_is_refused() -> None:
    old = Signer(OLD, CHAIN_ID)
    core = TendermintCore(CHAIN_ID, BEFORE, old, 1)
    core.start()
    core.on_timeout(1, 0, Step.PROPOSE)  # something signed: the record is not empty
    with pytest.raises(UsageError, match="carry"):
        core.start_height(2, AFTER, Signer(NEW, CHAIN_ID))
    assert core.signer is old


def test_an_observer_has_no_key_to_rotate() -> None:
    core = TendermintCore(CHAIN_ID, BEFORE, None, 1)
    core.start()
    with pytest.raises(UsageError, match="observer"):
        core.start_height(2, AFTER, Signer(NEW, CHAIN_ID))
    assert core.signer is None
