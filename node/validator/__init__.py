"""The validator's room: what a node needs to take part in consensus safely.

- `driver`          runs the pure Tendermint core (`consensus/`) against real time and peers:
                    timers, proposals, votes, persist-before-send
- `sign_guard`      the double-sign guard: what this key signed, on disk before any message leaves
- `consensus_wal`   the consensus messages of the current height, replayed after a restart
- `validator_sets`  the validator set (and this node's keys) at each height, as governance changes it
- `evidence_pool`   evidence of validators that signed conflicting messages
- `byzantine`       deliberately faulty behaviour, switched on only by tests
"""
