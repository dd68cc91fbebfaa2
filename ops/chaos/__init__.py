"""``saga chaos``: faults under load, then an audit of the books (issue 7; the cluster
topology's plan: issue 14)."""

from ops.chaos.faults import (
    CLUSTER_ENGINE_TARGETS,
    KAFKA_BROKER,
    KAFKA_CONTROLLER,
    KILL_TARGETS,
    PAUSE_TARGETS,
    Fault,
    FaultKind,
    FaultResult,
    kill_targets,
    pause_targets,
)
from ops.chaos.runner import ChaosError, ChaosOptions, ChaosReport, render_text, run_chaos

__all__ = [
    "CLUSTER_ENGINE_TARGETS",
    "KAFKA_BROKER",
    "KAFKA_CONTROLLER",
    "KILL_TARGETS",
    "PAUSE_TARGETS",
    "ChaosError",
    "ChaosOptions",
    "ChaosReport",
    "Fault",
    "FaultKind",
    "FaultResult",
    "kill_targets",
    "pause_targets",
    "render_text",
    "run_chaos",
]
