"""secledger's consensus: the Tendermint BFT algorithm as a pure state machine (sans-IO).

Messages, timeouts and "is this block valid?" answers go in; actions come out. Nothing in this
package touches a socket, a clock, a thread, the disk or a random source, and it never imports
``ledger``. See docs/CONSENSUS.md for the design and the interface the node drives.
"""
