"""A deterministic fault simulator for the consensus core (after TigerBeetle's VOPR and
FoundationDB's simulation testing): one seed drives the network, the clock, crashes and Byzantine
validators; checkers compare every decision of every node. See consensus/testing/sim.py.
"""

from consensus.testing.sim import InvariantViolation, SimConfig, SimResult, Simulation, run_seed

__all__ = ["InvariantViolation", "SimConfig", "SimResult", "Simulation", "run_seed"]
