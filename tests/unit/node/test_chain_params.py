"""The node runs each height with the chain's block limits and, where the members voted them, the
chain's timeouts; its config fills in the rest (docs/GOVERNANCE.md, section 7)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ledger.client import Action, Signer
from node.service import Node
from node.setup.config import load_config
from node.setup.keys import load_key
from node.setup.netgen import generate


def test_voted_parameters_reach_the_node(tmp_path: Path) -> None:
    generate(tmp_path, validators=1, observers=0, members=None)  # one member, holding keys/admin.json
    config = load_config(tmp_path / "validator-0.toml")
    config = dataclasses.replace(config, consensus=dataclasses.replace(
        config.consensus, block_txs_max=3_000, timeout_propose_ms=1_234, timeout_commit_ms=77))
    node = Node(config)
    try:
        before = node.consensus_params()
        assert before.limits.txs_max == 3_000  # the config's, under the chain's default of 5,000
        assert before.timeouts.propose_ms == 1_234 and before.commit_ms == 77  # nothing voted: the config's

        member = Signer(load_key(tmp_path / "keys" / "admin.json"), node.chain_id)
        tx = member.propose([Action.set_param("block_txs_max", 2_000)], expires_at_height=50)
        tx2 = member.propose([Action.set_param("timeout_propose_ms", 4_000)], expires_at_height=50)
        tx3 = member.propose([Action.set_param("timeout_commit_ms", 500)], expires_at_height=50)
        block = node.ledger.build_block((tx, tx2, tx3), time_ms=node.ledger.tip.time_ms + 1000,
                                        proposer=bytes(node.validator_key.verify_key))
        node.ledger.validate_block(block)
        assert all(r.outcome.ok for r in node.ledger.apply_block(block, b"cert").receipts)

        after = node.consensus_params()
        assert after.limits.txs_max == 2_000  # the chain's, now under the config's
        assert after.timeouts.propose_ms == 4_000 and after.commit_ms == 500  # voted: the chain's
        assert after.timeouts.prevote_ms == config.consensus.timeout_prevote_ms  # not voted: the config's
    finally:
        node.mempool.close()
        node.ledger.close()
