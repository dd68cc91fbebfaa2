"""The chaos run's mix of orders and returns: which orders get a return, how each return is
made to end, and how its end is checked against ``GET /returns/{return_id}``."""

import asyncio
from collections import Counter

import pytest

from contracts.activities import LOST_PARCEL_REASON, ReturnOutcome
from infra.config.settings import Settings
from ops.chaos import ChaosError, ChaosOptions, ChaosReport, render_text, run_chaos
from ops.chaos.load import (
    EXPIRING_RETURN_DEADLINE_S,
    RETURN_EVENTS,
    ReturnSeen,
    chaos_order,
    chaos_return,
)
from ops.chaos.runner import (
    AuditFigures,
    DuplicateFigures,
    EventFigures,
    OrderFigures,
    ReturnFigures,
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


def _report(returns: ReturnFigures | None) -> ChaosReport:
    return ChaosReport(
        run_id="r",
        started_at="2026-12-06T00:00:00+00:00",
        seed=7,
        duration_s=160.0,
        orders=OrderFigures(
            placed=200,
            accepted=200,
            refused={},
            completed=160,
            cancelled=40,
            failed=0,
            lost=0,
            lost_orders=[],
            sagas_per_s=1.25,
        ),
        returns=returns,
        faults=[],
        faults_planned=[],
        events=EventFigures(published=1403, consumed=3723, dead_letters=0, outbox_pending=0),
        duplicates=DuplicateFigures(
            order_retries=0,
            orders_answered_existing=0,
            return_retries=3,
            returns_answered_existing=1,
            events_redelivered=0,
        ),
        audit=AuditFigures(
            checked_orders=200,
            in_flight=0,
            violations=[],
            counts={"over_refunded": 0, "restock_mismatch": 0, "return_refund_mismatch": 0},
        ),
        passed=True,
        problems=[],
    )


def test_the_report_counts_returns_by_outcome_beside_the_orders() -> None:
    returns = ReturnFigures(
        asked=48,
        not_asked=0,
        accepted=48,
        refused={},
        completed=33,
        expired=10,
        rejected=5,
        other=0,
        lost=0,
        lost_returns=[],
        expected={"COMPLETED": 33, "EXPIRED": 10, "REJECTED": 5},
        unexpected=[],
        events_seen=243,
        events_expected=243,
    )
    text = render_text(_report(returns))
    assert "| completed / expired / rejected / otherwise | 33 / 10 / 5 / 0 |" in text
    assert "| return events seen (GET /returns) / expected | 243 / 243 |" in text
    assert "| returns sent again / answered with the existing saga | 3 / 1 |" in text
    assert "(return checks: over_refunded 0, restock_mismatch 0, return_refund_mismatch 0)" in text
    # A report written before returns were in the mix reads, and shows no returns.
    older = _report(None).model_dump(mode="json", exclude={"returns"})
    assert "| returns |" not in render_text(ChaosReport.model_validate(older))
