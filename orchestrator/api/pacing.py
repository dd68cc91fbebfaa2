"""How a bulk repair spreads its actions: at its rate on average, each wait jittered."""

from collections.abc import Iterator
from random import Random

__all__ = ["JITTER", "jittered_waits"]

JITTER = (0.5, 1.5)
"""Each wait is drawn uniformly between these multiples of ``1 / rate``."""


def jittered_waits(rate_per_second: float, rng: Random) -> Iterator[float]:
    """The waits (seconds) between a bulk repair's actions, endlessly.

    Each is drawn uniformly in ``[0.5, 1.5] / rate_per_second``: the actions keep the
    rate on average, never come closer than half the interval nor wait more than one and a
    half, and do not fall in step with anything else that runs at a round interval (the
    sagas' own retries, another operator's bulk repair).

    Raises:
        ValueError: ``rate_per_second`` is not positive.
    """
    if rate_per_second <= 0:
        raise ValueError(f"rate_per_second must be positive, not {rate_per_second}")
    interval = 1.0 / rate_per_second
    low, high = JITTER
    while True:
        yield rng.uniform(low, high) * interval
