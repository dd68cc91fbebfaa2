"""A bulk repair's pacing: jittered waits, bounded, at the rate on average."""

import itertools
from random import Random

import pytest

from orchestrator.api.pacing import jittered_waits


@pytest.mark.parametrize("rate", [0.5, 2.0, 50.0])
def test_each_wait_is_within_half_and_one_and_a_half_intervals(rate: float) -> None:
    interval = 1 / rate
    waits = list(itertools.islice(jittered_waits(rate, Random(7)), 1000))

    assert all(0.5 * interval <= wait <= 1.5 * interval for wait in waits)
    # Spread, not a fixed step: waits near both bounds and many different ones.
    assert min(waits) < 0.6 * interval
    assert max(waits) > 1.4 * interval
    assert len(set(waits)) == len(waits)


def test_the_rate_holds_on_average() -> None:
    """A thousand actions at 2 per second take about 500 s of waits (999 waits), within 3 %;
    never less than half nor more than one and a half of that."""
    waits = list(itertools.islice(jittered_waits(2.0, Random(2026)), 999))
    total = sum(waits)

    assert 0.97 * 999 / 2 <= total <= 1.03 * 999 / 2
    assert 0.5 * 999 / 2 <= total <= 1.5 * 999 / 2


def test_the_same_seed_gives_the_same_waits() -> None:
    def first(seed: int) -> list[float]:
        return list(itertools.islice(jittered_waits(4.0, Random(seed)), 20))

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_a_rate_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        next(jittered_waits(0, Random(1)))
