"""The mempool's room: transactions between a client's submission and a block.

- `pool`           admission (decode, signature, nonce, the rules' dry run on the pending state)
                   and the pending transactions a proposer takes
- `gossip_ingest`  peers' gossiped transactions, admitted in batches off the hot path
- `seen_txs`       what this node admitted, to tell a client its transaction was replaced
"""
