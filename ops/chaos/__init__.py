"""``saga chaos``: faults under load, then an audit of the books (issue 7)."""

from ops.chaos.faults import KILL_TARGETS, PAUSE_TARGETS, Fault, FaultKind, FaultResult
from ops.chaos.runner import ChaosError, ChaosOptions, ChaosReport, render_text, run_chaos

__all__ = [
    "KILL_TARGETS",
    "PAUSE_TARGETS",
    "ChaosError",
    "ChaosOptions",
    "ChaosReport",
    "Fault",
    "FaultKind",
    "FaultResult",
    "render_text",
    "run_chaos",
]
