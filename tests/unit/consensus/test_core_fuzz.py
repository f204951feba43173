"""Fuzz the core with arbitrary sequences of inputs: it may drop, count and act, never raise.

The h11 rule: peer input that is wrong is the peer's problem (counted and dropped), so any exception
escaping the core on peer input is a bug in the core.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.actions import Broadcast, Decide, PersistSignState
from consensus.core import TendermintCore
from consensus.messages import PRECOMMIT, PREVOTE, Vote, encode_message
from consensus.signing import Signer
from consensus.testing.fixtures import CHAIN_ID, block_id, signing_keys, validator_set
from consensus.timeouts import Step

KEYS = signing_keys(4)
VALIDATORS = validator_set(KEYS)
BLOCKS = [block_id("a"), block_id("b"), None]

operation = st.one_of(
    st.tuples(st.just("vote"), st.integers(0, 3), st.sampled_from([PREVOTE, PRECOMMIT]), st.integers(1, 4),
              st.integers(0, 4), st.sampled_from(BLOCKS), st.booleans()),
    st.tuples(st.just("proposal"), st.integers(0, 3), st.integers(1, 4), st.integers(0, 4),
              st.sampled_from(BLOCKS[:2]), st.integers(-1, 3)),
    st.tuples(st.just("timeout"), st.integers(1, 4), st.integers(0, 4), st.sampled_from(list(Step)[:3])),
    st.tuples(st.just("validity"), st.integers(1, 4), st.sampled_from(BLOCKS[:2]), st.booleans()),
    st.tuples(st.just("propose"), st.integers(1, 4), st.integers(0, 4), st.sampled_from(BLOCKS[:2])),
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("next-height")),
)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 4), st.lists(operation, max_size=60))
def test_core_never_raises_on_any_input_sequence(me: int, operations: list) -> None:
    signer = Signer(KEYS[me], CHAIN_ID) if me < 4 else None  # 4 = observer
    core = TendermintCore(CHAIN_ID, VALIDATORS, signer, 1)
    actions = core.start()
    for op in operations:
        kind = op[0]
        if kind == "vote":
            _, who, vote_kind, height, round_, block, forge = op
            vote = Signer(KEYS[who], CHAIN_ID).sign_vote(vote_kind, height, round_, block)
            if forge:
                vote = Vote(vote.kind, vote.height, vote.round, vote.block_id, vote.validator, bytes(64))
            actions += core.receive_bytes(encode_message(vote))
        elif kind == "proposal":
            _, who, height, round_, block, pol = op
            if pol < round_:
                actions += core.receive(Signer(KEYS[who], CHAIN_ID).sign_proposal(height, round_, block, pol))
        elif kind == "timeout":
            actions += core.on_timeout(op[1], op[2], op[3])
        elif kind == "validity":
            actions += core.block_validity(op[1], op[2], op[3])
        elif kind == "propose":
            actions += core.propose(op[1], op[2], op[3])
        elif kind == "bytes":
            actions += core.receive_bytes(op[1])
        else:
            actions += core.start_height(core.height + 1, VALIDATORS)
    decided: dict[int, bytes] = {}
    persisted = None
    for action in actions:
        if isinstance(action, Decide):
            assert decided.setdefault(action.height, action.block_id) == action.block_id
            action.certificate.verify(CHAIN_ID, VALIDATORS, height=action.height, block_id=action.block_id)
        elif isinstance(action, PersistSignState):
            persisted = action.state
        elif isinstance(action, Broadcast) and signer is not None and action.message.signer == signer.public_key:
            assert persisted is not None
            assert (persisted.height, persisted.round) >= (action.message.height, action.message.round)
    if signer is None:
        assert not any(isinstance(a, PersistSignState) for a in actions)
