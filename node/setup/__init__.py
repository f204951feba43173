"""What an operator sets up before a node starts: its config file, its keys, the genesis, and
whole networks of them (`netgen`, used by `secledger testnet` and the tests)."""
