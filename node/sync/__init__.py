"""Catching up with the chain.

- `blocksync`  fetching committed blocks with their certificates from peers, each certificate
               checked before the block is applied
- `statesync`  joining from a certified snapshot of the state instead of replaying from genesis
"""
