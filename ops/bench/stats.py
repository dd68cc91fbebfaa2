"""Percentiles of measured latencies, and of Prometheus histograms scraped before and after."""

import math
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

__all__ = [
    "HistogramCounts",
    "LatencySummary",
    "histogram_counts",
    "histogram_quantile",
    "percentile",
    "subtract",
    "summarize",
]


class LatencySummary(BaseModel):
    """How long something took, over ``count`` measurements, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, interpolated between neighbours."""
    if not sorted_values:
        raise ValueError("no values")
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(seconds: Iterable[float]) -> LatencySummary | None:
    """P50, P95, P99, mean and maximum of durations in seconds; None when there are none."""
    values = sorted(seconds)
    if not values:
        return None
    return LatencySummary(
        count=len(values),
        p50_ms=round(percentile(values, 0.50) * 1000, 2),
        p95_ms=round(percentile(values, 0.95) * 1000, 2),
        p99_ms=round(percentile(values, 0.99) * 1000, 2),
        mean_ms=round(sum(values) / len(values) * 1000, 2),
        max_ms=round(values[-1] * 1000, 2),
    )


HistogramCounts = dict[float, float]
"""Cumulative counts of a histogram by upper bound (``le``), ``inf`` included."""


def histogram_counts(exposition: str, name: str) -> HistogramCounts:
    """The cumulative bucket counts of histogram ``name`` in a ``/metrics`` text, summed over
    its labels (every topic, every event type)."""
    counts: HistogramCounts = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def subtract(after: Mapping[float, float], before: Mapping[float, float]) -> HistogramCounts:
    """What a histogram counted between two scrapes."""
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def histogram_quantile(counts: Mapping[float, float], q: float) -> float | None:
    """The ``q`` quantile of a histogram, interpolated inside its bucket as Prometheus's
    ``histogram_quantile`` does; None when it counted nothing."""
    bounds = sorted(counts)
    if not bounds or counts[bounds[-1]] <= 0:
        return None
    total = counts[bounds[-1]]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = counts[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound  # above the highest finite bucket: its bound is all we know
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return previous_bound
