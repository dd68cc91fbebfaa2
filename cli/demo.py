"""One demo order through the running stack, reported as it goes."""

import asyncio
import uuid
from collections.abc import Callable

from temporalio.client import WorkflowHandle

from contracts.activities import (
    ORDER_SAGA_WORKFLOW,
    STATUS_QUERY,
    Order,
    OrderSagaInput,
    OrderSagaResult,
    SagaStatus,
    ShippingAddress,
    saga_workflow_id,
)
from contracts.events.common import OrderLine
from contracts.task_queues import ORCHESTRATOR
from infra.config.databases import database_for
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from orchestrator.queries import database_path
from orchestrator.timeline import Timeline, TimelineEntry
from orchestrator.workflows.order_saga import start_attributes
from runtime import open_reader, wait_for_temporal

__all__ = ["demo_order", "run_demo", "web_ui_link"]


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


def web_ui_link(settings: Settings, workflow_id: str) -> str:
    """The saga's page in the Temporal Web UI."""
    namespace = settings.temporal_namespace
    return f"{settings.temporal_ui_url}/namespaces/{namespace}/workflows/{workflow_id}"


async def run_demo(
    settings: Settings, order: Order, *, say: Callable[[str], None] = print
) -> tuple[OrderSagaResult, list[TimelineEntry]]:
    """Start ``order``'s saga, report each step as it moves, and return its end and events."""
    client = await wait_for_temporal(
        temporal_connection(settings),
        settings.temporal_namespace,
        wait_seconds=10,
        data_converter=data_converter(settings),
    )
    workflow_id = saga_workflow_id(order.order_id)
    handle: WorkflowHandle[object, OrderSagaResult] = await client.start_workflow(
        ORDER_SAGA_WORKFLOW,
        OrderSagaInput(order=order, dispatch_deadline_seconds=settings.dispatch_deadline_seconds),
        id=workflow_id,
        task_queue=ORCHESTRATOR,
        search_attributes=start_attributes(order),
        result_type=OrderSagaResult,
    )
    say(f"order {order.order_id}: saga {workflow_id} started")
    say(f"  Web UI: {web_ui_link(settings, workflow_id)}")
    result_task = asyncio.ensure_future(handle.result())
    seen: dict[str, str] = {}

    async def report_steps() -> None:
        status = await handle.query(STATUS_QUERY, result_type=SagaStatus)
        for step in status.steps:
            if seen.get(step.name) != step.state:
                seen[step.name] = step.state
                if step.state != "pending":
                    say(f"  {step.name:<20} {step.state}")

    while not result_task.done():
        await report_steps()
        await asyncio.wait({result_task}, timeout=0.2)
    await report_steps()  # the last moves, between the previous look and the end
    result = result_task.result()
    say(
        f"order {order.order_id}: {result.status}"
        + (f" ({result.failure_reason})" if result.failure_reason else "")
    )
    events = await _events(
        settings, order.order_id, expected_last=("order.completed.v1", "order.cancelled.v1")
    )
    say("  events:")
    for entry in events:
        say(f"    {entry.timestamp:%H:%M:%S.%f}"[:-3] + f"  {entry.event_type:<26} {entry.source}")
    return result, events


async def _events(
    settings: Settings, order_id: str, *, expected_last: tuple[str, ...], wait_seconds: float = 10
) -> list[TimelineEntry]:
    """The order's timeline, once the projector has caught up with the saga's last event."""
    where = database_for(settings, "orchestrator", database_path(settings.run_dir))
    timeline = Timeline(open_reader(where))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        events = [entry for _, entry in timeline.events_for(order_id)]
        if (events and events[-1].event_type in expected_last) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.1)
