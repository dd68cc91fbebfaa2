"""``saga bench``: the running stack against Temporal's and Kafka's own ceilings."""

from ops.bench.report import BenchReport, render_markdown, render_text
from ops.bench.runner import BenchError, BenchOptions, BenchRun, run_bench

__all__ = [
    "BenchError",
    "BenchOptions",
    "BenchReport",
    "BenchRun",
    "render_markdown",
    "render_text",
    "run_bench",
]
