"""The chaos run's mix of orders and returns: which orders get a return, how each return is
made to end, and how its end is checked against ``GET /returns/{return_id}``."""

import asyncio
from collections import Counter

import pytest

from contracts.activities import LOST_PARCEL_REASON, ReturnOutcome
from infra.config.settings import Settings
from ops.chaos import ChaosError, ChaosOptions, run_chaos
from ops.chaos.load import (
    EXPIRING_RETURN_DEADLINE_S,
    RETURN_EVENTS,
    ReturnSeen,
    chaos_order,
    chaos_return,
)

RUN = "20261206-000000-abcd"


def _returns(count: int, share: float) -> dict[int, ReturnOutcome]:
    made = {i: chaos_return(RUN, i, share) for i in range(count)}
    return {i: r.expected for i, r in made.items() if r is not None}


def test_a_share_of_the_orders_meant_to_complete_get_a_return() -> None:
    returns = _returns(200, 0.3)
    completing = [i for i in range(200) if i % 10 not in (3, 7)]
    assert set(returns) <= set(completing)  # never a declined order, nor an unserved one
    assert len(returns) == 48  # 0.3 of 160
    assert _returns(200, 0.0) == {}
    assert set(_returns(200, 1.0)) == set(completing)


def test_of_ten_returns_seven_complete_two_expire_and_one_is_rejected() -> None:
    ends = Counter(_returns(1000, 0.5).values())
    assert ends == {
        ReturnOutcome.COMPLETED: 280,
        ReturnOutcome.EXPIRED: 80,
        ReturnOutcome.REJECTED: 40,
    }


def test_an_order_with_a_return_buys_two_and_its_return_is_made_to_end_its_way() -> None:
    for index, expected in _returns(100, 0.5).items():
        order = chaos_order(RUN, index, returns=0.5)
        made = chaos_return(RUN, index, 0.5)
        assert made is not None
        assert made.order_id == order.order_id
        (bought,) = order.items
        (asked,) = made.body.items
        assert (bought.quantity, asked.sku) == (2, bought.sku)
        if expected is ReturnOutcome.REJECTED:
            assert asked.quantity == 3  # more than was bought
        else:
            assert asked.quantity == 1  # part of what was bought
        lost = (made.body.reason, made.body.deadline_seconds)
        if expected is ReturnOutcome.EXPIRED:
            assert lost == (LOST_PARCEL_REASON, EXPIRING_RETURN_DEADLINE_S)
        else:
            assert lost == (None, None)
    assert chaos_order(RUN, 0).items[0].quantity == 1  # without returns, as before


def test_a_return_is_as_made_only_with_its_ends_events_each_once() -> None:
    completed = list(RETURN_EVENTS[ReturnOutcome.COMPLETED])
    assert ReturnSeen("r", "COMPLETED", completed).problem(ReturnOutcome.COMPLETED) is None
    twice = ReturnSeen("r", "COMPLETED", [*completed, "payment.refunded"])
    assert "payment.refunded" in (twice.problem(ReturnOutcome.COMPLETED) or "")
    missing = ReturnSeen("r", "EXPIRED", ["return.authorized", "return.expired"])
    assert "shipping.return_label_voided" in (missing.problem(ReturnOutcome.EXPIRED) or "")
    other = ReturnSeen("r", "COMPLETED", completed).problem(ReturnOutcome.EXPIRED)
    assert other is not None
    assert "expected EXPIRED" in other
    assert ReturnSeen("r", None, []).problem(ReturnOutcome.REJECTED) is not None


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_of_returns_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ChaosError, match="--returns"):
        asyncio.run(run_chaos(Settings(), ChaosOptions(returns=share), say=print))
