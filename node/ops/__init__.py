"""Operating a node: health and readiness probes, Prometheus metrics, logs, start-up checks.

One module per concept:
- `health`: liveness (GET /health) and the event loop's lag;
- `readiness`: readiness (GET /ready): caught up, not halted, connected to a quorum;
- `metrics`: the node's Prometheus registry and what it reads; `metrics_server`: GET /metrics;
- `logs`: text and JSON log lines; `summary`: the periodic summary and the warnings it carries;
- `startup`: the checks that stop a node before it starts, each in one named line;
- `operations`: the one object a `Node` holds, which ties the others to it.

docs/OPERATIONS.md is the operator's side of all of this.
"""

from .operations import Operations

__all__ = ["Operations"]
