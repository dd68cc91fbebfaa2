"""OrderSaga on Temporal's time-skipping server, every path, with stand-in services.

Each test asserts the exact order in which the services' activities were called (forward,
then compensations in reverse), the result, the status query and the search attributes.
Re-record the replay histories with ``SAGA_RECORD_HISTORIES=1 pytest tests/system/orchestrator``.
"""

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from contracts import task_queues
from contracts.activities import (
    CANCEL_ORDER,
    CANCEL_SHIPMENT,
    CHARGE_PAYMENT,
    COMPLETE_ORDER,
    PLACE_ORDER,
    REFUND_PAYMENT,
    RELEASE_STOCK,
    RESERVE_STOCK,
    SCHEDULE_SHIPMENT,
    CancelOrderRequest,
    OrderSagaInput,
    OrderSagaResult,
    ResolveManuallyRequest,
    RetryNowRequest,
    SagaPhase,
    SagaStatus,
    ShipmentDispatched,
    StepPhase,
)
from contracts.errors import DESTINATION_UNSUPPORTED, PAYMENT_DECLINED, STOCK_UNAVAILABLE
from contracts.search_attributes import SAGA_STUCK_KEY
from orchestrator.saga import SagaDefinition, Step
from orchestrator.workflows import OrderSaga, Steps
from orchestrator.workflows.order_saga import ORDER_SAGA
from tests.support.saga_harness import (
    DECLINED_TOKEN,
    OUT_OF_STOCK_SKU,
    UNSUPPORTED_COUNTRY,
    SagaHarness,
    StandIns,
    make_order,
    record_history,
    saga_workers,
)
from tests.support.temporal_history import web_ui_metadata

Handle = WorkflowHandle[OrderSaga, object]

FORWARD = [PLACE_ORDER, CHARGE_PAYMENT, RESERVE_STOCK, SCHEDULE_SHIPMENT]
UNDO_ALL = [CANCEL_SHIPMENT, RELEASE_STOCK, REFUND_PAYMENT, CANCEL_ORDER]


async def status_of(handle: Handle) -> SagaStatus:
    return await handle.query(OrderSaga.status)


async def wait_for(
    handle: Handle, condition: Callable[[SagaStatus], bool], seconds: float = 10.0
) -> SagaStatus:
    """Poll the status query until ``condition`` holds (real time, no time skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            status = await status_of(handle)
            if condition(status):
                return status
            await asyncio.sleep(0.05)


def completed_forward(calls: list[str]) -> bool:
    """The forward steps once each, then ``order.complete`` and nothing else.

    ``order.complete`` is a local activity run in the workflow task that completes the saga;
    when a signal comes in meanwhile, Temporal refuses that completion and the task runs
    again, and so does the activity (at least once, as any activity: it is idempotent)."""
    return calls[: len(FORWARD)] == FORWARD and set(calls[len(FORWARD) :]) == {COMPLETE_ORDER}


def waiting_for_dispatch(status: SagaStatus) -> bool:
    return status.current_step == Steps.AWAIT_DISPATCH


def states(status: SagaStatus) -> dict[str, StepPhase]:
    return {step.name: step.state for step in status.steps}


async def search_attributes(handle: Handle) -> dict[str, str]:
    described = await handle.describe()
    return {
        name: str(described.typed_search_attributes.get(SearchAttributeKey.for_keyword(name)))
        for name in ("OrderId", "CustomerId", "SagaStatus", "SagaStep")
    }


async def stuck_attribute(handle: Handle) -> bool | None:
    """The saga's ``SagaStuck`` search attribute, ``None`` when it never set it."""
    described = await handle.describe()
    return described.typed_search_attributes.get(SAGA_STUCK_KEY)


async def current_details(handle: Handle) -> str:
    """The saga's current details, as the Temporal Web UI reads them."""
    return (await web_ui_metadata(handle))[1]


def dispatched(order_id: str) -> ShipmentDispatched:
    return ShipmentDispatched(
        order_id=order_id, shipment_id=f"shp-{order_id}", tracking_number="TRK-1"
    )


async def result_of(handle: Handle) -> OrderSagaResult:
    result = await handle.result()
    assert isinstance(result, OrderSagaResult)
    return result


async def resolve_manually(
    handle: Handle, step: str, reason: str, operator: str
) -> OrderSagaResult:
    """An operator settles ``step`` by hand; the saga's result once it has gone on from there."""
    await handle.execute_update(
        OrderSaga.resolve_manually,
        ResolveManuallyRequest(step=step, reason=reason, operator=operator),
    )
    return await result_of(handle)


async def test_happy_path_completes_once_the_carrier_dispatches(saga: SagaHarness) -> None:
    """Forward through every step; the dispatched signal leads to order.complete."""
    order = make_order()
    handle = await saga.start(order)
    await wait_for(handle, waiting_for_dispatch)
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))

    result = await result_of(handle)

    assert saga.stand_ins.calls == [*FORWARD, COMPLETE_ORDER]
    assert result.status is SagaPhase.COMPLETED
    assert result.failure_reason is None
    assert result.payment_id == f"pay-{order.order_id}"
    assert result.tracking_number == "TRK-1"
    status = await status_of(handle)
    assert status.status is SagaPhase.COMPLETED
    assert set(states(status).values()) == {StepPhase.DONE}
    assert await search_attributes(handle) == {
        "OrderId": order.order_id,
        "CustomerId": "c-42",
        "SagaStatus": "COMPLETED",
        "SagaStep": Steps.COMPLETE_ORDER,
    }
    assert await (await handle.describe()).memo() == {"saga_status": "COMPLETED"}
    await record_history(handle, "happy_path")


async def test_a_declined_payment_cancels_only_the_order(saga: SagaHarness) -> None:
    """PaymentDeclined is a business refusal: no retry, nothing to undo but the order."""
    order = make_order(token=DECLINED_TOKEN)
    handle = await saga.start(order)

    result = await result_of(handle)

    assert saga.stand_ins.calls == [PLACE_ORDER, CHARGE_PAYMENT, CANCEL_ORDER]
    assert result.status is SagaPhase.CANCELLED
    assert result.failed_step == Steps.CHARGE_PAYMENT
    assert result.failure_reason == f"{PAYMENT_DECLINED}: card declined"
    status = await status_of(handle)
    assert states(status) == {
        Steps.PLACE_ORDER: StepPhase.COMPENSATED,
        Steps.CHARGE_PAYMENT: StepPhase.FAILED,
        Steps.RESERVE_STOCK: StepPhase.SKIPPED,
        Steps.SCHEDULE_SHIPMENT: StepPhase.SKIPPED,
        Steps.AWAIT_DISPATCH: StepPhase.SKIPPED,
        Steps.COMPLETE_ORDER: StepPhase.SKIPPED,
    }
    assert status.steps[1].attempts == 1
    assert await search_attributes(handle) == {
        "OrderId": order.order_id,
        "CustomerId": "c-42",
        "SagaStatus": "CANCELLED",
        "SagaStep": Steps.CHARGE_PAYMENT,
    }
    assert await (await handle.describe()).memo() == {
        "saga_status": "CANCELLED",
        "failure_reason": f"{PAYMENT_DECLINED}: card declined",
        "failed_step": Steps.CHARGE_PAYMENT,
    }
    await record_history(handle, "payment_declined")


async def test_missing_stock_refunds_the_payment(saga: SagaHarness) -> None:
    """StockUnavailable: refund, then cancel the order."""
    order = make_order(sku=OUT_OF_STOCK_SKU)
    handle = await saga.start(order)

    result = await result_of(handle)

    assert saga.stand_ins.calls == [
        PLACE_ORDER,
        CHARGE_PAYMENT,
        RESERVE_STOCK,
        REFUND_PAYMENT,
        CANCEL_ORDER,
    ]
    assert result.status is SagaPhase.CANCELLED
    assert result.failed_step == Steps.RESERVE_STOCK
    assert result.failure_reason is not None
    assert result.failure_reason.startswith(STOCK_UNAVAILABLE)
    assert (await search_attributes(handle))["SagaStep"] == Steps.RESERVE_STOCK
    await record_history(handle, "stock_unavailable")


async def test_an_unsupported_destination_releases_stock_and_refunds(saga: SagaHarness) -> None:
    """DestinationUnsupported: release the stock, refund, cancel the order (reverse order)."""
    order = make_order(country=UNSUPPORTED_COUNTRY)
    handle = await saga.start(order)

    result = await result_of(handle)

    assert saga.stand_ins.calls == [*FORWARD, RELEASE_STOCK, REFUND_PAYMENT, CANCEL_ORDER]
    assert result.failed_step == Steps.SCHEDULE_SHIPMENT
    assert result.failure_reason is not None
    assert result.failure_reason.startswith(DESTINATION_UNSUPPORTED)
    status = await status_of(handle)
    assert states(status)[Steps.SCHEDULE_SHIPMENT] is StepPhase.FAILED
    assert states(status)[Steps.RESERVE_STOCK] is StepPhase.COMPENSATED
    await record_history(handle, "shipping_failed")


async def test_a_missed_dispatch_deadline_undoes_everything(saga: SagaHarness) -> None:
    """48 hours without a dispatch (skipped in moments): cancel shipment, release, refund."""
    order = make_order()
    started = await saga.env.get_current_time()
    handle = await saga.start(order)

    result = await result_of(handle)

    assert saga.stand_ins.calls == [*FORWARD, *UNDO_ALL]
    assert result.status is SagaPhase.CANCELLED
    assert result.failed_step == Steps.AWAIT_DISPATCH
    assert result.failure_reason == (
        "the carrier did not dispatch the shipment before the deadline"
    )
    assert await saga.env.get_current_time() - started >= timedelta(hours=48)
    assert (await search_attributes(handle))["SagaStatus"] == "CANCELLED"
    await record_history(handle, "dispatch_deadline")


async def test_a_customer_cancel_before_dispatch_undoes_everything(saga: SagaHarness) -> None:
    """The cancel_order signal while waiting for the carrier turns the saga back."""
    order = make_order()
    handle = await saga.start(order)
    await wait_for(handle, waiting_for_dispatch)
    await handle.signal(
        OrderSaga.cancel_order, CancelOrderRequest(reason="changed my mind", requested_by="c-42")
    )

    result = await result_of(handle)

    assert saga.stand_ins.calls == [*FORWARD, *UNDO_ALL]
    assert result.status is SagaPhase.CANCELLED
    assert result.failure_reason == "cancelled by c-42: changed my mind"
    assert result.failed_step == Steps.AWAIT_DISPATCH
    await record_history(handle, "customer_cancel")


async def test_a_cancel_after_dispatch_is_refused(saga: SagaHarness) -> None:
    """Past dispatch, the saga cannot turn back: the cancel is recorded and refused."""
    order = make_order()
    handle = await saga.start(order)
    await wait_for(handle, waiting_for_dispatch)
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))
    await handle.signal(
        OrderSaga.cancel_order, CancelOrderRequest(reason="too late", requested_by="c-42")
    )

    result = await result_of(handle)

    assert completed_forward(saga.stand_ins.calls)
    assert result.status is SagaPhase.COMPLETED
    notes = (await status_of(handle)).notes
    assert [note.kind for note in notes] == ["cancel-refused"]
    assert "too late" in notes[0].detail
    await record_history(handle, "cancel_after_dispatch")


async def test_duplicate_and_foreign_dispatch_signals_change_nothing(saga: SagaHarness) -> None:
    """A dispatch of another shipment is rejected; a second dispatch is ignored."""
    order = make_order()
    handle = await saga.start(order)
    await wait_for(handle, waiting_for_dispatch)
    foreign = ShipmentDispatched(
        order_id=order.order_id, shipment_id="shp-someone-else", tracking_number="TRK-X"
    )
    await handle.signal(OrderSaga.shipment_dispatched, foreign)
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))

    result = await result_of(handle)

    assert completed_forward(saga.stand_ins.calls)
    assert result.tracking_number == "TRK-1"
    notes = (await status_of(handle)).notes
    assert [note.kind for note in notes] == ["delivery-rejected", "delivery-ignored"]
    assert "shp-someone-else" in notes[0].detail
    await record_history(handle, "duplicate_dispatch")


async def test_a_technical_failure_in_a_forward_step_is_retried(saga: SagaHarness) -> None:
    """Two technical failures of the charge, then success: the saga goes on."""
    saga.stand_ins.failures_before_success[CHARGE_PAYMENT] = 2
    order = make_order()
    handle = await saga.start(order)
    async with asyncio.timeout(10):
        while not waiting_for_dispatch(await status_of(handle)):
            await saga.env.sleep(timedelta(seconds=1))  # skips the retries' backoff
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))

    result = await result_of(handle)

    assert saga.stand_ins.calls == [
        PLACE_ORDER,
        CHARGE_PAYMENT,
        CHARGE_PAYMENT,
        CHARGE_PAYMENT,
        RESERVE_STOCK,
        SCHEDULE_SHIPMENT,
        COMPLETE_ORDER,
    ]
    assert result.status is SagaPhase.COMPLETED
    charge = (await status_of(handle)).steps[1]
    assert (charge.state, charge.stuck) == (StepPhase.DONE, False)
    await record_history(handle, "forward_retry")


async def test_a_local_step_that_keeps_failing_is_shown_stuck_like_any_step(
    saga: SagaHarness,
) -> None:
    """order.place runs as a local activity: a round of 5 failed attempts (retried in the
    worker, on real time) flags it stuck with its attempts, error and search attributes, and
    the next round goes on; the server never scheduled it as an activity."""
    stand_ins = saga.stand_ins
    stand_ins.failures_before_success[PLACE_ORDER] = 5
    gate = stand_ins.gate(PLACE_ORDER, 6)  # the second round's first call waits for the test
    order = make_order()
    handle = await saga.start(order)
    result_task = asyncio.create_task(result_of(handle))  # lets the server skip the backoff
    await asyncio.wait_for(gate.reached.wait(), 60)

    # Queries wait while the local activity holds the workflow task: asked together, both
    # are answered at the task's next heartbeat.
    status, details = await asyncio.gather(status_of(handle), current_details(handle))
    place = status.steps[0]
    assert (status.status, status.current_step) == (SagaPhase.RUNNING, Steps.PLACE_ORDER)
    assert (place.state, place.stuck, place.attempts) == (StepPhase.RUNNING, True, 5)
    assert place.last_error == f"Unavailable: {PLACE_ORDER} is unavailable (call 5)"
    attributes = await search_attributes(handle)
    assert (attributes["SagaStatus"], attributes["SagaStep"]) == ("RUNNING", Steps.PLACE_ORDER)
    assert await stuck_attribute(handle) is True
    assert details == (
        f"order {order.order_id}: RUNNING at {Steps.PLACE_ORDER}; stuck after 5 attempts: "
        f"Unavailable: {PLACE_ORDER} is unavailable (call 5)"
    )
    # Delivered early, the dispatch is kept for its step: nothing waits while time is skipped.
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))
    gate.release.set()

    result = await result_task

    assert result.status is SagaPhase.COMPLETED
    assert await stuck_attribute(handle) is False
    assert await current_details(handle) == f"order {order.order_id}: COMPLETED"
    assert stand_ins.calls[:7] == [*[PLACE_ORDER] * 6, CHARGE_PAYMENT]
    history = await handle.fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert PLACE_ORDER not in scheduled
    assert CHARGE_PAYMENT in scheduled


async def test_a_failing_compensation_is_retried_and_shown_stuck(saga: SagaHarness) -> None:
    """The refund fails 7 times: the status shows it stuck, then it succeeds."""
    stand_ins = saga.stand_ins
    stand_ins.failures_before_success[REFUND_PAYMENT] = 7
    # The first call of the second round waits until the test has looked at the status.
    gate = stand_ins.gate(REFUND_PAYMENT, 6)
    order = make_order(sku=OUT_OF_STOCK_SKU)
    handle = await saga.start(order)
    result_task = asyncio.create_task(result_of(handle))  # lets the server skip time
    await asyncio.wait_for(gate.reached.wait(), 20)

    status = await status_of(handle)
    refund = status.steps[1]
    assert status.status is SagaPhase.COMPENSATING
    assert status.current_step == Steps.CHARGE_PAYMENT
    assert refund.state is StepPhase.COMPENSATING
    assert refund.stuck is True
    assert refund.compensation_attempts == 5
    assert (
        refund.compensation_last_error == f"Unavailable: {REFUND_PAYMENT} is unavailable (call 5)"
    )
    assert (await search_attributes(handle))["SagaStatus"] == "COMPENSATING"
    assert await stuck_attribute(handle) is True
    details = await current_details(handle)
    assert details.startswith(
        f"order {order.order_id}: COMPENSATING {Steps.CHARGE_PAYMENT} (turned back at "
        f"{Steps.RESERVE_STOCK}: "
    )
    assert details.endswith(
        f"; stuck after 5 attempts: Unavailable: {REFUND_PAYMENT} is unavailable (call 5)"
    )
    # A dispatch arriving now is too late to matter.
    await handle.signal(OrderSaga.shipment_dispatched, dispatched(order.order_id))
    gate.release.set()

    result = await result_task

    assert stand_ins.calls == [
        PLACE_ORDER,
        CHARGE_PAYMENT,
        RESERVE_STOCK,
        *[REFUND_PAYMENT] * 8,
        CANCEL_ORDER,
    ]
    assert result.status is SagaPhase.CANCELLED
    final = await status_of(handle)
    assert (final.steps[1].state, final.steps[1].stuck) == (StepPhase.COMPENSATED, False)
    assert [note.kind for note in final.notes] == ["delivery-ignored"]
    assert await stuck_attribute(handle) is False
    assert await current_details(handle) == (
        f"order {order.order_id}: CANCELLED at {Steps.RESERVE_STOCK}, {result.failure_reason}"
    )
    await record_history(handle, "compensation_retried")


async def test_a_workflow_cancel_during_compensation_does_not_cut_it_short(
    saga: SagaHarness,
) -> None:
    """Cancelling the workflow while it refunds: the refund and order.cancel still run."""
    gate = saga.stand_ins.gate(REFUND_PAYMENT, 1)
    order = make_order(sku=OUT_OF_STOCK_SKU)
    handle = await saga.start(order)
    await asyncio.wait_for(gate.reached.wait(), 10)

    await handle.cancel()
    await wait_for(handle, lambda status: any(n.kind == "workflow-cancel" for n in status.notes))
    gate.release.set()

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    assert saga.stand_ins.calls == [
        PLACE_ORDER,
        CHARGE_PAYMENT,
        RESERVE_STOCK,
        REFUND_PAYMENT,
        CANCEL_ORDER,
    ]
    status = await status_of(handle)
    assert status.status is SagaPhase.CANCELLED
    assert states(status)[Steps.CHARGE_PAYMENT] is StepPhase.COMPENSATED
    await record_history(handle, "cancel_during_compensation")


async def test_a_workflow_cancel_before_dispatch_undoes_everything(saga: SagaHarness) -> None:
    """Cancelling the workflow while it waits for the carrier compensates, then cancels."""
    order = make_order()
    handle = await saga.start(order)
    await wait_for(handle, waiting_for_dispatch)

    await handle.cancel()

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert saga.stand_ins.calls == [*FORWARD, *UNDO_ALL]
    status = await status_of(handle)
    assert status.failure_reason == "the workflow was cancelled"
    assert (await search_attributes(handle))["SagaStatus"] == "CANCELLED"
    await record_history(handle, "workflow_cancel")


async def skip_until_stuck(saga: SagaHarness, handle: Handle, step: str) -> SagaStatus:
    """Skip time, a second at a time, until ``step`` is flagged stuck."""
    async with asyncio.timeout(30):
        while True:
            status = await status_of(handle)
            if next(state for state in status.steps if state.name == step).stuck:
                return status
            await saga.env.sleep(timedelta(seconds=1))


async def test_retry_now_ends_the_backoff_of_a_stuck_compensation(saga: SagaHarness) -> None:
    """A stuck refund waits 30 s before its next round; retry_now makes it try at once."""
    stand_ins = saga.stand_ins
    stand_ins.failures_before_success[REFUND_PAYMENT] = 5
    handle = await saga.start(make_order(sku=OUT_OF_STOCK_SKU))
    await skip_until_stuck(saga, handle, Steps.CHARGE_PAYMENT)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            OrderSaga.retry_now, RetryNowRequest(step=Steps.PLACE_ORDER, operator="ops-ann")
        )
    before = await saga.env.get_current_time()

    answer = await handle.execute_update(
        OrderSaga.retry_now, RetryNowRequest(step=Steps.CHARGE_PAYMENT, operator="ops-ann")
    )
    status = await wait_for(handle, lambda status: status.status is SagaPhase.CANCELLED)

    # The sixth refund ran without the 30 s backoff having passed.
    assert await saga.env.get_current_time() - before < timedelta(seconds=30)
    assert answer.detail == f"{Steps.CHARGE_PAYMENT}: retry now, asked by ops-ann"
    assert stand_ins.calls == [
        PLACE_ORDER,
        CHARGE_PAYMENT,
        RESERVE_STOCK,
        *[REFUND_PAYMENT] * 6,
        CANCEL_ORDER,
    ]
    assert states(status)[Steps.CHARGE_PAYMENT] is StepPhase.COMPENSATED
    assert [note.kind for note in status.notes] == ["retry-now"]
    await result_of(handle)
    await record_history(handle, "retry_now")


async def test_resolve_manually_lets_the_saga_go_on(saga: SagaHarness) -> None:
    """A release that never succeeds is settled by an operator; refund and cancel follow."""
    stand_ins = saga.stand_ins
    stand_ins.failures_before_success[RELEASE_STOCK] = 1_000
    handle = await saga.start(make_order(country=UNSUPPORTED_COUNTRY))
    await skip_until_stuck(saga, handle, Steps.RESERVE_STOCK)

    result = await resolve_manually(
        handle, Steps.RESERVE_STOCK, reason="released by hand in the WMS", operator="ops-bob"
    )

    assert result.status is SagaPhase.CANCELLED
    assert stand_ins.calls == [
        *FORWARD,
        *[RELEASE_STOCK] * 5,
        REFUND_PAYMENT,
        CANCEL_ORDER,
    ]
    reserve = (await status_of(handle)).steps[2]
    assert reserve.state is StepPhase.COMPENSATED
    assert reserve.resolution is not None
    assert (reserve.resolution.operator, reserve.resolution.reason) == (
        "ops-bob",
        "released by hand in the WMS",
    )
    assert reserve.compensation_attempts == 5
    await record_history(handle, "resolve_manually")


async def test_a_forward_step_out_of_time_budget_is_compensated_too(saga: SagaHarness) -> None:
    """A charge failing for 5 minutes fails the step; as it may have charged, it is refunded."""
    saga.stand_ins.failures_before_success[CHARGE_PAYMENT] = 1_000
    handle = await saga.start(make_order())

    result = await result_of(handle)

    calls = saga.stand_ins.calls
    assert calls[0] == PLACE_ORDER
    assert set(calls[1:-2]) == {CHARGE_PAYMENT}
    assert len(calls[1:-2]) >= 15  # several rounds of five attempts
    assert calls[-2:] == [REFUND_PAYMENT, CANCEL_ORDER]
    assert result.failed_step == Steps.CHARGE_PAYMENT
    assert result.failure_reason is not None
    assert result.failure_reason.startswith(
        f"{Steps.CHARGE_PAYMENT} did not succeed within 0:05:00"
    )
    charge = (await status_of(handle)).steps[1]
    assert charge.state is StepPhase.COMPENSATED
    assert charge.attempts >= 15
    await record_history(handle, "forward_budget_exhausted")


def _impatient_for_payment() -> SagaDefinition:
    steps = list(ORDER_SAGA.steps)
    charge = steps[1]
    assert isinstance(charge, Step)
    quick = dataclasses.replace(charge.action, pickup_timeout=timedelta(seconds=2))
    steps[1] = dataclasses.replace(charge, action=quick)
    return dataclasses.replace(ORDER_SAGA, steps=steps)


@workflow.defn(name="OrderSaga")
class ImpatientOrderSaga(OrderSaga):
    """The order saga with a 2 s pickup timeout on the charge (a minute in production)."""

    definition = _impatient_for_payment()

    @workflow.run
    async def run(self, saga_input: OrderSagaInput) -> OrderSagaResult:
        return await super().run(saga_input)


async def test_a_step_whose_service_is_down_shows_stuck_and_can_be_settled(
    workflow_env: WorkflowEnvironment,
) -> None:
    """Nobody polls the payment queue: the charge is flagged stuck, naming the queue, once its
    pickup timeout passes; an operator settles it and the saga undoes the order."""
    stand_ins = StandIns()
    async with saga_workers(
        workflow_env.client,
        stand_ins,
        env=workflow_env,
        workflows=[ImpatientOrderSaga],
        down=frozenset({task_queues.PAYMENT}),
    ) as saga:
        handle = await saga.start(make_order())
        status = await skip_until_stuck(saga, handle, Steps.CHARGE_PAYMENT)
        charge = status.steps[1]
        assert status.status is SagaPhase.RUNNING
        assert charge.state is StepPhase.RUNNING
        assert charge.last_error == (
            f"{CHARGE_PAYMENT} was not picked up within 0:00:02: "
            f"is a worker of task queue '{task_queues.PAYMENT}' running?"
        )
        assert stand_ins.calls == [PLACE_ORDER]

        result = await resolve_manually(
            handle, Steps.CHARGE_PAYMENT, reason="payment provider gone", operator="ops-cy"
        )

    assert result.status is SagaPhase.CANCELLED
    assert result.failed_step == Steps.CHARGE_PAYMENT
    assert "resolved manually by ops-cy" in (result.failure_reason or "")
    assert stand_ins.calls == [PLACE_ORDER, CANCEL_ORDER]
