"""Every saga path end to end: the real Kafka broker, the real Temporal server, every process.

For each order the test checks the saga's final status, the exact sequence of event types
published on Kafka for that order, and each service's own records.
"""

import asyncio
import os
import signal
import uuid
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle

from contracts.activities import (
    CANCEL_ORDER_SIGNAL,
    ORDER_SAGA_WORKFLOW,
    STATUS_QUERY,
    CancelOrderRequest,
    Order,
    OrderSagaInput,
    OrderSagaResult,
    SagaStatus,
    ShippingAddress,
    saga_workflow_id,
)
from contracts.events.common import OrderLine
from contracts.task_queues import ORCHESTRATOR
from infra.config.settings import Settings
from infra.engines.processes import ProcessTable
from infra.engines.stack import Stack
from orchestrator.choreography import AuditLog, Notifications
from runtime import SchemaRegistry, open_database
from tests.support.bus import domain_partitions, reader, records_to_end
from tests.support.saga_paths import (
    CANCELLED,
    CHARGED,
    COMPLETED,
    HAPPY_EVENTS,
    SAGA_PATHS,
    SagaPath,
)
from workers.inventory.stock import StockBook
from workers.payment.ledger import PaymentLedger
from workers.shipping.shipments import ShipmentBook


def _order(token: str = "tok_visa", country: str = "DE", quantity: int = 2) -> Order:
    return Order(
        order_id=f"e2e-{uuid.uuid4().hex[:12]}",
        customer_id="cust-e2e",
        items=[
            OrderLine(sku="E2E-A", quantity=quantity, unit_price_minor=1250),
            OrderLine(sku="E2E-B", quantity=1, unit_price_minor=900),
        ],
        currency="EUR",
        payment_token=token,
        shipping_address=ShippingAddress(country=country),
    )


async def _start(
    client: Client, order: Order, deadline: int = 600
) -> WorkflowHandle[object, OrderSagaResult]:
    return await client.start_workflow(
        ORDER_SAGA_WORKFLOW,
        OrderSagaInput(order=order, dispatch_deadline_seconds=deadline),
        id=saga_workflow_id(order.order_id),
        task_queue=ORCHESTRATOR,
        result_type=OrderSagaResult,
    )


async def _events_on_kafka(
    stack: Settings, order_ids: set[str], last: set[str]
) -> dict[str, list[str]]:
    """Every event published for the orders, per order, in the order they happened (framed
    records decoded through the stack's registry)."""
    partitions = domain_partitions()
    async with (
        SchemaRegistry.from_settings(stack) as schemas,
        reader(stack.kafka_bootstrap_servers, partitions) as consumer,
    ):
        for _ in range(100):
            await consumer.seek_to_beginning(*partitions)
            found: dict[str, list[tuple[object, str]]] = {}
            async for record in records_to_end(consumer, partitions):
                if record.key is not None and record.key.decode(errors="replace") in order_ids:
                    event = await schemas.decode(record.value, record.headers)
                    found.setdefault(event.correlation_id, []).append(
                        (event.timestamp, event.event_type)
                    )
            per_order = {o: [t for _, t in sorted(found.get(o, []))] for o in order_ids}
            if all(events and events[-1] in last for events in per_order.values()):
                return per_order
            await asyncio.sleep(0.2)  # outbox relays may still be publishing the last events
    return per_order


@dataclass(frozen=True)
class _Path:
    path: SagaPath
    order: Order

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.path.status

    @property
    def events(self) -> list[str]:
        return self.path.events


_PATHS = [_Path(p, _order(p.token, p.country, p.quantity)) for p in SAGA_PATHS]


async def _run_path(client: Client, path: _Path) -> OrderSagaResult:
    handle = await _start(client, path.order, path.path.deadline or 600)
    if path.path.customer_cancels:
        for _ in range(200):
            status = await handle.query(STATUS_QUERY, result_type=SagaStatus)
            if any(s.name.startswith("schedule") and s.state == "done" for s in status.steps):
                break
            await asyncio.sleep(0.05)
        await handle.signal(
            CANCEL_ORDER_SIGNAL,
            CancelOrderRequest(reason="changed my mind", requested_by="cust-e2e"),
        )
    return await handle.result()


async def test_every_saga_path_end_to_end(stack: Settings, temporal_client: Client) -> None:
    """Each path ends in its status, with its exact events, and books that balance."""
    stock = StockBook(open_database(stack.run_dir / "inventory.db"))
    results = await asyncio.wait_for(
        asyncio.gather(*(_run_path(temporal_client, path) for path in _PATHS)), timeout=180
    )
    for path, result in zip(_PATHS, results, strict=True):
        assert result.status == path.status, (path.name, result)

    events = await _events_on_kafka(
        stack, {p.order.order_id for p in _PATHS}, {COMPLETED, CANCELLED}
    )
    for path in _PATHS:
        assert events[path.order.order_id] == path.events, path.name

    ledger = PaymentLedger(open_database(stack.run_dir / "payment.db"))
    shipments = ShipmentBook(open_database(stack.run_dir / "shipping.db"))
    for path in _PATHS:
        entries = ledger.entries(path.order.order_id)
        charged = sum(amount for kind, amount in entries if kind == "charge")
        refunded = sum(amount for kind, amount in entries if kind == "refund")
        shipment = shipments.shipment(path.order.order_id)
        if path.status == "COMPLETED":
            assert [kind for kind, _ in entries] == ["charge"], path.name
            assert charged == path.order.total.amount_minor
            assert shipment is not None and shipment.status == "dispatched"
        else:
            assert charged == refunded, (path.name, entries)
            assert shipment is None or shipment.status in ("cancelled", "refused"), path.name
    # Every cancelled order gave its stock back: what is missing is exactly the completed ones.
    completed = [p for p in _PATHS if p.status == "COMPLETED"]
    assert stock.on_hand("E2E-A") == 1000 - sum(p.order.items[0].quantity for p in completed)
    assert stock.on_hand("E2E-B") == 1000 - len(completed)
    # tok_flaky: two transient failures, and still exactly one charge and one payment.completed.
    flaky = next(p for p in _PATHS if p.name == "flaky card")
    assert ledger.attempts(flaky.order.order_id) == 3
    assert events[flaky.order.order_id].count(CHARGED) == 1

    # Choreography: the audit log has every event, the customer heard how each order ended.
    audit = AuditLog(open_database(stack.run_dir / "audit.db"))
    notifications = Notifications(open_database(stack.run_dir / "notifications.db"))
    for _ in range(50):
        if all(audit.event_types_for(p.order.order_id) == p.events for p in _PATHS):
            break
        await asyncio.sleep(0.2)
    for path in _PATHS:
        assert audit.event_types_for(path.order.order_id) == path.events, path.name
        kinds = [kind for kind, _ in notifications.for_order(path.order.order_id)]
        assert kinds == ["order-completed" if path.status == "COMPLETED" else "order-cancelled"]


async def test_a_killed_service_restarts_and_the_saga_finishes_once(
    stack: Settings, temporal_client: Client
) -> None:
    """SIGKILL the payment service during a saga, start it again: one charge, one event each."""
    table = ProcessTable(stack.run_dir)
    payment = table.get("payment")
    assert payment is not None and payment.is_alive()
    order = _order("tok_flaky")  # two transient failures keep the saga in the payment step
    handle = await _start(temporal_client, order)
    for _ in range(200):
        status = await handle.query(STATUS_QUERY, result_type=SagaStatus)
        if status.current_step and "payment" in status.current_step:
            break
        await asyncio.sleep(0.05)
    os.kill(payment.pid, signal.SIGKILL)
    for _ in range(500):  # the kernel frees its port once it has ended
        if not payment.is_alive():
            break
        await asyncio.sleep(0.02)
    await asyncio.to_thread(Stack(stack, say=lambda _: None).up)  # starts only what is missing
    restarted = table.get("payment")
    assert restarted is not None and restarted.pid != payment.pid

    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.status == "COMPLETED"
    events = await _events_on_kafka(stack, {order.order_id}, {COMPLETED})
    assert events[order.order_id] == HAPPY_EVENTS
    ledger = PaymentLedger(open_database(stack.run_dir / "payment.db"))
    assert [kind for kind, _ in ledger.entries(order.order_id)] == ["charge"]
