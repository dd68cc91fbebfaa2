"""One demo order (and, with ``--return``, a return of part of it) through the running
stack, reported as it goes."""

import asyncio
import uuid
from collections.abc import Callable
from typing import TypeVar

from temporalio.client import Client, WorkflowHandle

from contracts.activities import (
    ORDER_SAGA_WORKFLOW,
    RETURN_SAGA_WORKFLOW,
    STATUS_QUERY,
    Order,
    OrderSagaInput,
    OrderSagaResult,
    ReturnRequest,
    ReturnSagaInput,
    ReturnSagaResult,
    ReturnStatus,
    SagaStatus,
    ShippingAddress,
    return_workflow_id,
    saga_workflow_id,
)
from contracts.events.common import OrderLine, StockLine
from contracts.task_queues import ORCHESTRATOR
from infra.config.databases import database_for
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from orchestrator.queries import database_path
from orchestrator.timeline import Timeline, TimelineEntry
from orchestrator.workflows.order_saga import start_attributes, start_summary
from orchestrator.workflows.return_saga import start_attributes as return_start_attributes
from orchestrator.workflows.return_saga import start_summary as return_start_summary
from runtime import open_reader, wait_for_temporal

__all__ = ["demo_order", "demo_return", "run_demo", "run_return_demo", "web_ui_link"]

_Result = TypeVar("_Result")
_DAY_SECONDS = 24 * 3600
_RETURN_END_EVENTS = ("return.completed.v1", "return.rejected.v1", "return.expired.v1")


def demo_order(payment_token: str = "tok_visa", country: str = "DE") -> Order:
    """A small order: two lines, in euros."""
    return Order(
        order_id=f"demo-{uuid.uuid4().hex[:12]}",
        customer_id="demo-customer",
        items=[
            OrderLine(sku="SKU-1001", quantity=2, unit_price_minor=1999),
            OrderLine(sku="SKU-1002", quantity=1, unit_price_minor=4500),
        ],
        currency="EUR",
        payment_token=payment_token,
        shipping_address=ShippingAddress(country=country),
    )


def demo_return(order: Order) -> ReturnRequest:
    """A return of part of ``order``: one of its first line's items."""
    return ReturnRequest(
        return_id=f"demo-return-{uuid.uuid4().hex[:12]}",
        order_id=order.order_id,
        items=[StockLine(sku=order.items[0].sku, quantity=1)],
        reason="demo: one was enough",
    )


def web_ui_link(settings: Settings, workflow_id: str) -> str:
    """The saga's page in the Temporal Web UI."""
    namespace = settings.temporal_namespace
    return f"{settings.temporal_ui_url}/namespaces/{namespace}/workflows/{workflow_id}"


async def run_demo(
    settings: Settings, order: Order, *, say: Callable[[str], None] = print
) -> tuple[OrderSagaResult, list[TimelineEntry]]:
    """Start ``order``'s saga, report each step as it moves, and return its end and events."""
    client = await _client(settings)
    workflow_id = saga_workflow_id(order.order_id)
    handle: WorkflowHandle[object, OrderSagaResult] = await client.start_workflow(
        ORDER_SAGA_WORKFLOW,
        OrderSagaInput(order=order, dispatch_deadline_seconds=settings.dispatch_deadline_seconds),
        id=workflow_id,
        task_queue=ORCHESTRATOR,
        search_attributes=start_attributes(order),
        static_summary=start_summary(order),
        result_type=OrderSagaResult,
    )
    say(f"order {order.order_id}: saga {workflow_id} started")
    say(f"  Web UI: {web_ui_link(settings, workflow_id)}")
    result = await _until_ended(handle, SagaStatus, say)
    say(
        f"order {order.order_id}: {result.status}"
        + (f" ({result.failure_reason})" if result.failure_reason else "")
    )
    events = await _events(
        settings, order.order_id, expected_last=("order.completed.v1", "order.cancelled.v1")
    )
    _say_events(events, say)
    return result, events


async def run_return_demo(
    settings: Settings, order: Order, *, say: Callable[[str], None] = print
) -> tuple[ReturnSagaResult, list[TimelineEntry]]:
    """Run ``order``'s saga to its end, then return part of it (:func:`demo_return`): report
    each step of the return's saga as it moves, and return its end and the return's events.

    An order that did not complete is returned all the same: its return is rejected.
    """
    await run_demo(settings, order, say=say)
    client = await _client(settings)
    request = demo_return(order)
    saga_input = ReturnSagaInput(
        request=request,
        customer_id=order.customer_id,
        window_seconds=settings.return_window_days * _DAY_SECONDS,
        deadline_seconds=settings.return_deadline_days * _DAY_SECONDS,
    )
    workflow_id = return_workflow_id(request.return_id)
    handle: WorkflowHandle[object, ReturnSagaResult] = await client.start_workflow(
        RETURN_SAGA_WORKFLOW,
        saga_input,
        id=workflow_id,
        task_queue=ORCHESTRATOR,
        search_attributes=return_start_attributes(saga_input),
        static_summary=return_start_summary(saga_input),
        result_type=ReturnSagaResult,
    )
    lines = ", ".join(f"{line.quantity} x {line.sku}" for line in request.items)
    say(f"return {request.return_id} of order {order.order_id} ({lines}): saga started")
    say(f"  Web UI: {web_ui_link(settings, workflow_id)}")
    result = await _until_ended(handle, ReturnStatus, say)
    amount = result.amount
    say(
        f"return {request.return_id}: {result.outcome.value}"
        + (f", refunded {amount.amount_minor} {amount.currency}" if amount is not None else "")
        + (f" ({result.failure_reason})" if result.failure_reason else "")
    )
    events = await _events(
        settings, order.order_id, expected_last=_RETURN_END_EVENTS, return_id=request.return_id
    )
    _say_events(events, say)
    return result, events


async def _client(settings: Settings) -> Client:
    return await wait_for_temporal(
        temporal_connection(settings),
        settings.temporal_namespace,
        wait_seconds=10,
        data_converter=data_converter(settings),
    )


async def _until_ended(
    handle: WorkflowHandle[object, _Result],
    status_type: type[SagaStatus],
    say: Callable[[str], None],
) -> _Result:
    """The saga's result, once it has ended; each step's moves said as they happen."""
    result_task = asyncio.ensure_future(handle.result())
    seen: dict[str, str] = {}

    async def report_steps() -> None:
        status = await handle.query(STATUS_QUERY, result_type=status_type)
        for step in status.steps:
            if seen.get(step.name) != step.state:
                seen[step.name] = step.state
                if step.state != "pending":
                    say(f"  {step.name:<20} {step.state}")

    while not result_task.done():
        await report_steps()
        await asyncio.wait({result_task}, timeout=0.2)
    await report_steps()  # the last moves, between the previous look and the end
    return result_task.result()


def _say_events(events: list[TimelineEntry], say: Callable[[str], None]) -> None:
    say("  events:")
    for entry in events:
        say(f"    {entry.timestamp:%H:%M:%S.%f}"[:-3] + f"  {entry.event_type:<26} {entry.source}")


async def _events(
    settings: Settings,
    order_id: str,
    *,
    expected_last: tuple[str, ...],
    return_id: str | None = None,
    wait_seconds: float = 10,
) -> list[TimelineEntry]:
    """The order's timeline (only the events of ``return_id``, when given), once the projector
    has caught up with the saga's last event (one of ``expected_last``)."""
    where = database_for(settings, "orchestrator", database_path(settings.run_dir))
    timeline = Timeline(open_reader(where))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        events = [entry for _, entry in timeline.events_for(order_id)]
        if return_id is not None:
            events = [entry for entry in events if entry.data.get("return_id") == return_id]
        if (events and events[-1].event_type in expected_last) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.1)
