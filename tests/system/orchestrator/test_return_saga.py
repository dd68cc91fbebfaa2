"""ReturnSaga on Temporal's time-skipping server, every path, with stand-in services.

Each test asserts the order in which the services' activities were called, the result, the
status query, the search attributes and the memo. The deadlines are real durations (a
30-day window, a 14-day parcel deadline) skipped by the test server. Re-record the replay
histories with ``SAGA_RECORD_HISTORIES=1 pytest tests/system/orchestrator -k return_saga``.
"""

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import CancelledError

from contracts.activities import (
    AUTHORIZE_RETURN,
    COMPLETE_RETURN,
    EXPIRE_RETURN,
    ISSUE_RETURN_LABEL,
    LOST_PARCEL_REASON,
    REFUND_RETURN,
    RESTOCK,
    VOID_RETURN_LABEL,
    CompleteReturnInput,
    ExpireReturnInput,
    RefundReturnInput,
    ResolveManuallyRequest,
    RetryNowRequest,
    ReturnOutcome,
    ReturnReceived,
    ReturnRequest,
    ReturnSagaResult,
    ReturnStatus,
    SagaPhase,
    StepPhase,
    VoidReturnLabelInput,
)
from contracts.errors import RETURN_REJECTED
from contracts.events.common import Money
from contracts.events.returns import ReturnRejectionCode
from orchestrator.workflows import ReturnSaga, ReturnSteps
from orchestrator.workflows.return_saga import PARCEL_DEADLINE_REASON, manual_refund_id
from tests.support.saga_harness import (
    ReturnHarness,
    make_return,
    parcel_of,
    record_history,
)

Handle = WorkflowHandle[ReturnSaga, object]

FORWARD = [AUTHORIZE_RETURN, ISSUE_RETURN_LABEL]
AFTER_PARCEL = [RESTOCK, REFUND_RETURN, COMPLETE_RETURN]
DAY = timedelta(days=1)


async def status_of(handle: Handle) -> ReturnStatus:
    return await handle.query(ReturnSaga.status)


async def wait_for(
    handle: Handle, condition: Callable[[ReturnStatus], bool], seconds: float = 10.0
) -> ReturnStatus:
    """Poll the status query until ``condition`` holds (real time, no time skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            status = await status_of(handle)
            if condition(status):
                return status
            await asyncio.sleep(0.05)


def waiting_for_parcel(status: ReturnStatus) -> bool:
    return status.current_step == ReturnSteps.AWAIT_PARCEL


def states(status: ReturnStatus) -> dict[str, StepPhase]:
    return {step.name: step.state for step in status.steps}


def step_of(status: ReturnStatus, name: str) -> StepPhase:
    return states(status)[name]


async def result_of(handle: Handle) -> ReturnSagaResult:
    result = await handle.result()
    assert isinstance(result, ReturnSagaResult)
    return result


async def search_attributes(handle: Handle) -> dict[str, str]:
    described = await handle.describe()
    return {
        name: str(described.typed_search_attributes.get(SearchAttributeKey.for_keyword(name)))
        for name in ("OrderId", "CustomerId", "SagaStatus", "SagaStep")
    }


async def memo(handle: Handle) -> dict[str, object]:
    return dict(await (await handle.describe()).memo())


def completed_after_parcel(calls: list[str]) -> bool:
    """Forward, restock and refund once each, then ``order.complete_return`` (a local
    activity: it runs again when a signal makes Temporal retry its workflow task)."""
    done = [*FORWARD, RESTOCK, REFUND_RETURN]
    return calls[: len(done)] == done and set(calls[len(done) :]) == {COMPLETE_RETURN}


async def start_returned(returns: ReturnHarness, request: ReturnRequest | None = None) -> Handle:
    """A return of a just-dispatched order, started and waiting for its parcel."""
    if request is None:
        now = await returns.env.get_current_time()
        request = make_return(returns.stand_ins.dispatched_order(now))
    handle = await returns.start(request)
    await wait_for(handle, waiting_for_parcel)
    return handle


async def test_a_return_completes_once_its_parcel_is_back(returns: ReturnHarness) -> None:
    """Authorized, label issued, parcel received: restocked, refunded, completed."""
    dispatched = await returns.env.get_current_time()
    request = make_return(returns.stand_ins.dispatched_order(dispatched), ("SKU-1", 2))
    handle = await start_returned(returns, request)
    waiting = await status_of(handle)
    assert (waiting.status, waiting.outcome) == (SagaPhase.RUNNING, ReturnOutcome.RUNNING)
    assert waiting.return_id == request.return_id

    await handle.signal(ReturnSaga.return_received, parcel_of(request))
    result = await result_of(handle)

    stand_ins = returns.stand_ins
    assert stand_ins.calls == [*FORWARD, *AFTER_PARCEL]
    refunded = Money(amount_minor=2 * 1250, currency="EUR")
    assert result == ReturnSagaResult(
        return_id=request.return_id,
        order_id=request.order_id,
        outcome=ReturnOutcome.COMPLETED,
        refund_id=f"rf-{request.return_id}",
        amount=refunded,
    )
    assert stand_ins.inputs[REFUND_RETURN] == [
        RefundReturnInput(order_id=request.order_id, return_id=request.return_id, amount=refunded)
    ]
    assert stand_ins.inputs[COMPLETE_RETURN][0] == CompleteReturnInput(
        order_id=request.order_id,
        return_id=request.return_id,
        refund_id=f"rf-{request.return_id}",
        amount=refunded,
    )
    status = await status_of(handle)
    assert (status.status, status.outcome) == (SagaPhase.COMPLETED, ReturnOutcome.COMPLETED)
    assert set(states(status).values()) == {StepPhase.DONE}
    assert await search_attributes(handle) == {
        "OrderId": request.order_id,
        "CustomerId": "c-42",
        "SagaStatus": "COMPLETED",
        "SagaStep": ReturnSteps.COMPLETE_RETURN,
    }
    assert await memo(handle) == {"saga_status": "COMPLETED"}
    await record_history(handle, "returns/completed")


async def _rejected_with(
    returns: ReturnHarness, code: ReturnRejectionCode
) -> tuple[ReturnRequest, Handle, bool]:
    """Start a return that the stand-in order service refuses with ``code``, and whether an
    earlier return of the order was run first."""
    stand_ins = returns.stand_ins
    now = await returns.env.get_current_time()
    order_id = stand_ins.dispatched_order(now)
    lines: list[tuple[str, int]] = [("SKU-1", 1)]
    earlier = False
    if code is ReturnRejectionCode.UNKNOWN_ORDER:
        order_id = "o-nobody-bought-this"
    elif code is ReturnRejectionCode.NOT_DISPATCHED:
        order_id = stand_ins.dispatched_order(None)
    elif code is ReturnRejectionCode.WINDOW_CLOSED:
        stand_ins.orders[order_id].dispatched_at = now - timedelta(days=40)
    elif code is ReturnRejectionCode.UNKNOWN_ITEM:
        lines = [("SKU-NOT-BOUGHT", 1)]
    elif code is ReturnRejectionCode.MORE_THAN_BOUGHT:
        # A pending return holds one of the two SKU-1 bought: two more are too many.
        # An earlier return took one of the two SKU-1 bought: two more are too many. (It
        # runs to its end: a saga left waiting would let the test server's clock jump to its
        # deadline whenever the server is idle.)
        took_one = make_return(order_id, ("SKU-1", 1))
        handle = await start_returned(returns, took_one)
        await handle.signal(ReturnSaga.return_received, parcel_of(took_one))
        assert (await result_of(handle)).outcome is ReturnOutcome.COMPLETED
        # Once a workflow has ended the test server may skip its clock to the ended run's
        # (stale) execution timeout: dispatched again "now", the window cannot be the reason.
        stand_ins.orders[order_id].dispatched_at = await returns.env.get_current_time()
        earlier = True
        lines = [("SKU-1", 2)]
    request = make_return(order_id, *lines)
    return request, await returns.start(request), earlier


@pytest.mark.parametrize("code", list(ReturnRejectionCode))
async def test_a_refused_return_ends_rejected_with_nothing_undone(
    returns: ReturnHarness, code: ReturnRejectionCode
) -> None:
    """Every refusal of the order service is an answer: REJECTED, no retry, nothing undone."""
    request, handle, earlier = await _rejected_with(returns, code)

    result = await result_of(handle)

    earlier_calls = [*FORWARD, *AFTER_PARCEL] if earlier else []
    assert returns.stand_ins.calls == [*earlier_calls, AUTHORIZE_RETURN]
    assert result.outcome is ReturnOutcome.REJECTED
    assert result.failed_step == ReturnSteps.AUTHORIZE_RETURN
    assert result.failure_reason is not None
    assert result.failure_reason.startswith(f"{RETURN_REJECTED}: {code.value}: ")
    assert (result.refund_id, result.amount) == (None, None)
    status = await status_of(handle)
    assert (status.status, status.outcome) == (SagaPhase.CANCELLED, ReturnOutcome.REJECTED)
    assert states(status) == {
        ReturnSteps.AUTHORIZE_RETURN: StepPhase.FAILED,
        ReturnSteps.ISSUE_RETURN_LABEL: StepPhase.SKIPPED,
        ReturnSteps.AWAIT_PARCEL: StepPhase.SKIPPED,
        ReturnSteps.RESTOCK: StepPhase.SKIPPED,
        ReturnSteps.REFUND: StepPhase.SKIPPED,
        ReturnSteps.COMPLETE_RETURN: StepPhase.SKIPPED,
    }
    assert status.steps[0].attempts == 1
    assert await search_attributes(handle) == {
        "OrderId": request.order_id,
        "CustomerId": "c-42",
        "SagaStatus": "REJECTED",
        "SagaStep": ReturnSteps.AUTHORIZE_RETURN,
    }
    assert await memo(handle) == {
        "saga_status": "REJECTED",
        "failure_reason": result.failure_reason,
        "failed_step": ReturnSteps.AUTHORIZE_RETURN,
    }
    if earlier:
        await record_history(handle, "returns/rejected")


async def test_a_parcel_that_never_arrives_expires_the_return(returns: ReturnHarness) -> None:
    """14 days without the parcel (skipped): the label is voided, the return expired. The
    lost-parcel test card reaches shipping (where the carrier simulator loses the parcel)."""
    started = await returns.env.get_current_time()
    request = make_return(returns.stand_ins.dispatched_order(started), reason=LOST_PARCEL_REASON)
    handle = await returns.start(request)

    result = await result_of(handle)

    stand_ins = returns.stand_ins
    assert stand_ins.calls == [*FORWARD, VOID_RETURN_LABEL, EXPIRE_RETURN]
    assert await returns.env.get_current_time() - started >= timedelta(days=14)
    assert result.outcome is ReturnOutcome.EXPIRED
    assert (result.failed_step, result.failure_reason) == (
        ReturnSteps.AWAIT_PARCEL,
        PARCEL_DEADLINE_REASON,
    )
    ids = {"order_id": request.order_id, "return_id": request.return_id}
    assert stand_ins.inputs[ISSUE_RETURN_LABEL][0].reason == LOST_PARCEL_REASON
    assert stand_ins.inputs[VOID_RETURN_LABEL] == [
        VoidReturnLabelInput(**ids, reason=PARCEL_DEADLINE_REASON)
    ]
    assert stand_ins.inputs[EXPIRE_RETURN] == [
        ExpireReturnInput(**ids, reason=PARCEL_DEADLINE_REASON)
    ]
    assert request.return_id not in stand_ins.held  # its quantities are free again
    status = await status_of(handle)
    assert (status.status, status.outcome) == (SagaPhase.CANCELLED, ReturnOutcome.EXPIRED)
    assert step_of(status, ReturnSteps.AUTHORIZE_RETURN) is StepPhase.COMPENSATED
    assert step_of(status, ReturnSteps.ISSUE_RETURN_LABEL) is StepPhase.COMPENSATED
    assert step_of(status, ReturnSteps.AWAIT_PARCEL) is StepPhase.FAILED
    attributes = await search_attributes(handle)
    assert (attributes["SagaStatus"], attributes["SagaStep"]) == (
        "EXPIRED",
        ReturnSteps.AWAIT_PARCEL,
    )
    assert (await memo(handle))["saga_status"] == "EXPIRED"
    await record_history(handle, "returns/parcel_deadline")


async def test_a_parcel_on_day_13_is_still_in_time(returns: ReturnHarness) -> None:
    """The deadline is 14 days: a parcel that arrives on day 13 completes the return."""
    started = await returns.env.get_current_time()
    request = make_return(returns.stand_ins.dispatched_order(started))
    handle = await start_returned(returns, request)

    await returns.env.sleep(13 * DAY)
    await handle.signal(ReturnSaga.return_received, parcel_of(request))
    result = await result_of(handle)

    # Measured by the saga (the test server's clock may jump once the workflow has ended).
    received = next(
        s for s in (await status_of(handle)).steps if s.name == ReturnSteps.AWAIT_PARCEL
    )
    assert received.updated_at is not None
    assert 13 * DAY <= received.updated_at - started < 14 * DAY
    assert result.outcome is ReturnOutcome.COMPLETED
    assert completed_after_parcel(returns.stand_ins.calls)


@pytest.mark.parametrize(
    ("days_after_dispatch", "outcome"),
    [(29, ReturnOutcome.COMPLETED), (31, ReturnOutcome.REJECTED)],
)
async def test_the_return_window_is_measured_from_dispatch_to_the_request(
    returns: ReturnHarness, days_after_dispatch: int, outcome: ReturnOutcome
) -> None:
    """An order dispatched 29 days before the return is asked can be returned; 31 days, not
    (the 30-day default window, with the days skipped by the test server)."""
    dispatched = await returns.env.get_current_time()
    request = make_return(returns.stand_ins.dispatched_order(dispatched))
    await returns.env.sleep(days_after_dispatch * DAY)

    handle = await returns.start(request)
    if outcome is ReturnOutcome.COMPLETED:
        await wait_for(handle, waiting_for_parcel)
        await handle.signal(ReturnSaga.return_received, parcel_of(request))
    result = await result_of(handle)

    authorize = returns.stand_ins.inputs[AUTHORIZE_RETURN][0]
    assert authorize.requested_at - dispatched >= days_after_dispatch * DAY
    assert authorize.window_seconds == 30 * 24 * 3600
    assert result.outcome is outcome
    if outcome is ReturnOutcome.REJECTED:
        assert result.failure_reason is not None
        assert ReturnRejectionCode.WINDOW_CLOSED.value in result.failure_reason
        assert returns.stand_ins.calls == [AUTHORIZE_RETURN]


async def test_parcels_of_other_returns_or_labels_are_ignored(returns: ReturnHarness) -> None:
    """Another return's parcel and another label are rejected, a second parcel ignored."""
    now = await returns.env.get_current_time()
    request = make_return(returns.stand_ins.dispatched_order(now))
    handle = await start_returned(returns, request)
    right = parcel_of(request)
    other_return = ReturnReceived(
        order_id=request.order_id, return_id="r-someone-else", label_id=right.label_id
    )
    other_label = right.model_copy(update={"label_id": "lbl-someone-else"})

    await handle.signal(ReturnSaga.return_received, other_return)
    await handle.signal(ReturnSaga.return_received, other_label)
    await wait_for(handle, lambda status: len(status.notes) == 2)
    assert waiting_for_parcel(await status_of(handle))
    await handle.signal(ReturnSaga.return_received, right)
    await handle.signal(ReturnSaga.return_received, right)
    result = await result_of(handle)

    assert result.outcome is ReturnOutcome.COMPLETED
    assert completed_after_parcel(returns.stand_ins.calls)
    notes = (await status_of(handle)).notes
    assert [note.kind for note in notes] == [
        "delivery-rejected",
        "delivery-rejected",
        "delivery-ignored",
    ]
    assert "r-someone-else" in notes[0].detail
    assert "lbl-someone-else" in notes[1].detail
    await record_history(handle, "returns/foreign_parcel")


async def skip_until_stuck(returns: ReturnHarness, handle: Handle, step: str) -> ReturnStatus:
    """Skip time, a second at a time, until ``step`` is flagged stuck."""
    async with asyncio.timeout(30):
        while True:
            status = await status_of(handle)
            if next(state for state in status.steps if state.name == step).stuck:
                return status
            await returns.env.sleep(timedelta(seconds=1))


async def test_a_refund_that_keeps_failing_is_stuck_until_an_operator_resolves_it(
    returns: ReturnHarness,
) -> None:
    """Past the parcel nothing turns back: the failing refund is retried in rounds and shown
    stuck; an operator who refunded by hand resolves it and the return completes."""
    stand_ins = returns.stand_ins
    stand_ins.failures_before_success[REFUND_RETURN] = 1_000
    now = await returns.env.get_current_time()
    request = make_return(stand_ins.dispatched_order(now))
    handle = await start_returned(returns, request)
    await handle.signal(ReturnSaga.return_received, parcel_of(request))

    stuck = await skip_until_stuck(returns, handle, ReturnSteps.REFUND)

    refund = next(step for step in stuck.steps if step.name == ReturnSteps.REFUND)
    assert (stuck.status, stuck.outcome, stuck.current_step) == (
        SagaPhase.RUNNING,
        ReturnOutcome.RUNNING,
        ReturnSteps.REFUND,
    )
    assert (refund.state, refund.attempts) == (StepPhase.RUNNING, 5)
    assert refund.last_error == f"Unavailable: {REFUND_RETURN} is unavailable (call 5)"
    assert (await search_attributes(handle))["SagaStep"] == ReturnSteps.REFUND
    with pytest.raises(WorkflowUpdateFailedError):  # only a stuck step can be resolved
        await handle.execute_update(
            ReturnSaga.resolve_manually,
            ResolveManuallyRequest(step=ReturnSteps.RESTOCK, reason="-", operator="ops-ann"),
        )

    await handle.execute_update(
        ReturnSaga.resolve_manually,
        ResolveManuallyRequest(
            step=ReturnSteps.REFUND, reason="refunded by hand at the PSP", operator="ops-ann"
        ),
    )
    result = await result_of(handle)

    assert result.outcome is ReturnOutcome.COMPLETED
    assert result.failure_reason is None
    calls = stand_ins.calls
    assert calls[:4] == [*FORWARD, RESTOCK, REFUND_RETURN]
    assert VOID_RETURN_LABEL not in calls and EXPIRE_RETURN not in calls
    assert set(calls[3:-1]) == {REFUND_RETURN} and calls[-1] == COMPLETE_RETURN
    assert stand_ins.inputs[COMPLETE_RETURN][-1].refund_id == manual_refund_id(request.return_id)
    status = await status_of(handle)
    assert (status.status, status.outcome) == (SagaPhase.COMPLETED, ReturnOutcome.COMPLETED)
    refund = next(step for step in status.steps if step.name == ReturnSteps.REFUND)
    assert (refund.state, refund.stuck) == (StepPhase.DONE, False)
    assert refund.resolution is not None
    assert refund.resolution.operator == "ops-ann"
    assert [note.kind for note in status.notes] == ["resolved-manually"]
    await record_history(handle, "returns/refund_resolved")


async def test_retry_now_ends_the_backoff_of_a_stuck_refund(returns: ReturnHarness) -> None:
    """A refund stuck after a round of 5 failures waits 30 s; retry_now tries it at once."""
    stand_ins = returns.stand_ins
    stand_ins.failures_before_success[REFUND_RETURN] = 5
    now = await returns.env.get_current_time()
    request = make_return(stand_ins.dispatched_order(now))
    handle = await start_returned(returns, request)
    await handle.signal(ReturnSaga.return_received, parcel_of(request))
    await skip_until_stuck(returns, handle, ReturnSteps.REFUND)
    before = await returns.env.get_current_time()

    answer = await handle.execute_update(
        ReturnSaga.retry_now,
        RetryNowRequest(step=ReturnSteps.REFUND, operator="ops-bob", reason="PSP is back"),
    )
    status = await wait_for(handle, lambda status: status.status is SagaPhase.COMPLETED)

    assert await returns.env.get_current_time() - before < timedelta(seconds=30)
    assert answer.detail == f"{ReturnSteps.REFUND}: retry now, asked by ops-bob: PSP is back"
    assert stand_ins.calls[:-1] == [*FORWARD, RESTOCK, *[REFUND_RETURN] * 6]
    assert status.outcome is ReturnOutcome.COMPLETED
    assert [note.kind for note in status.notes] == ["retry-now"]
    assert (await result_of(handle)).refund_id == f"rf-{request.return_id}"
    await record_history(handle, "returns/refund_retry_now")


async def test_a_workflow_cancel_before_the_parcel_undoes_the_return(
    returns: ReturnHarness,
) -> None:
    """Cancelled while waiting: the label is voided and the return expired, then cancelled."""
    handle = await start_returned(returns)

    await handle.cancel()

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert returns.stand_ins.calls == [*FORWARD, VOID_RETURN_LABEL, EXPIRE_RETURN]
    status = await status_of(handle)
    assert (status.status, status.outcome) == (SagaPhase.CANCELLED, ReturnOutcome.CANCELLED)
    assert status.failure_reason == "the workflow was cancelled"
    assert (await search_attributes(handle))["SagaStatus"] == "CANCELLED"
    await record_history(handle, "returns/workflow_cancel")


async def test_a_workflow_cancel_after_the_parcel_is_refused(returns: ReturnHarness) -> None:
    """Past the parcel the return only goes forward: the cancel is noted, the refund made."""
    stand_ins = returns.stand_ins
    gate = stand_ins.gate(RESTOCK, 1)
    now = await returns.env.get_current_time()
    request = make_return(stand_ins.dispatched_order(now))
    handle = await start_returned(returns, request)
    await handle.signal(ReturnSaga.return_received, parcel_of(request))
    await asyncio.wait_for(gate.reached.wait(), 10)

    await handle.cancel()
    await wait_for(handle, lambda status: any(n.kind == "workflow-cancel" for n in status.notes))
    gate.release.set()
    result = await result_of(handle)

    assert result.outcome is ReturnOutcome.COMPLETED
    assert completed_after_parcel(stand_ins.calls)
    assert [note.kind for note in (await status_of(handle)).notes] == ["workflow-cancel"]
    await record_history(handle, "returns/cancel_after_parcel")
