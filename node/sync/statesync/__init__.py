"""State sync: a new node joins from a certified snapshot of the state instead of replaying every
block from genesis (docs/OPERATIONS.md, "State sync and archive nodes").

- `snapshot`  taking a snapshot from one LMDB read transaction: manifest + hashed, bounded chunks
- `files`     keeping the last K snapshots as files under the node home; reading them back
- `verify`    checking a fetched snapshot against the state root certified by block h + 1
- `install`   installing a verified snapshot into an empty store, atomically
- `serve`     answering peers' `get_snapshots` and `get_snapshot_chunk`
- `fetch`     asking peers for snapshots, trying the next peer when one is refused
"""
