"""Workers for the order saga with stand-ins of the services' activities.

The stand-in activities are registered under the contract's names on the contract's task
queues; their behaviour is driven by the order (``tok_chargeDeclined``, ``SKU-OUT``,
country ``AQ``) and by per-test knobs (failures before success, gates that hold an
activity until the test has looked at the saga).

Histories: a test that finishes a saga path calls ``record_history``; with
``SAGA_RECORD_HISTORIES=1`` in the environment it (re)writes
``tests/unit/orchestrator/histories/<path>.json``, which ``tests/unit/orchestrator/test_replay.py``
replays on every run. The fixtures that run these workers on Temporal's time-skipping test
server are in ``tests/system/orchestrator/conftest.py``.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

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
    CancelOrderInput,
    CancelOrderResult,
    CancelShipmentInput,
    CancelShipmentResult,
    ChargePaymentInput,
    ChargePaymentResult,
    CompleteOrderInput,
    CompleteOrderResult,
    Order,
    OrderSagaInput,
    PlaceOrderInput,
    PlaceOrderResult,
    RefundPaymentInput,
    RefundPaymentResult,
    ReleaseStockInput,
    ReleaseStockResult,
    ReserveStockInput,
    ReserveStockResult,
    ScheduleShipmentInput,
    ScheduleShipmentResult,
    ShippingAddress,
    saga_workflow_id,
)
from contracts.errors import DESTINATION_UNSUPPORTED, PAYMENT_DECLINED, STOCK_UNAVAILABLE
from contracts.events.common import OrderLine
from orchestrator.workflows import OrderSaga

HISTORIES = Path(__file__).parents[1] / "unit" / "orchestrator" / "histories"
"""The committed histories, beside the replay tests that replay them."""
DECLINED_TOKEN = "tok_chargeDeclined"
OUT_OF_STOCK_SKU = "SKU-OUT"
UNSUPPORTED_COUNTRY = "AQ"


def make_order(
    *,
    token: str = "tok_visa",
    sku: str = "SKU-1",
    country: str = "DE",
) -> Order:
    """An order whose fields decide what the stand-ins do."""
    return Order(
        order_id=f"o-{uuid.uuid4().hex[:12]}",
        customer_id="c-42",
        items=[
            OrderLine(sku=sku, quantity=2, unit_price_minor=1250),
            OrderLine(sku="SKU-2", quantity=1, unit_price_minor=500),
        ],
        currency="EUR",
        payment_token=token,
        shipping_address=ShippingAddress(country=country, city="Berlin"),
    )


@dataclass
class Gate:
    """Holds one activity call until the test lets it go."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def pass_through(self) -> None:
        self.reached.set()
        await self.release.wait()


@dataclass
class StandIns:
    """The services' activities, recording every call in order (``order.place``...)."""

    calls: list[str] = field(default_factory=list)
    failures_before_success: dict[str, int] = field(default_factory=dict)
    """Activity name -> how many calls fail with a technical error before one succeeds."""
    gates: dict[tuple[str, int], Gate] = field(default_factory=dict)
    """(activity name, call number from 1) -> a gate that call waits at."""

    def gate(self, name: str, call: int) -> Gate:
        return self.gates.setdefault((name, call), Gate())

    def count(self, name: str) -> int:
        return self.calls.count(name)

    async def _enter(self, name: str) -> None:
        self.calls.append(name)
        number = self.calls.count(name)
        gate = self.gates.get((name, number))
        if gate is not None:
            await gate.pass_through()
        if number <= self.failures_before_success.get(name, 0):
            raise ApplicationError(f"{name} is unavailable (call {number})", type="Unavailable")

    @activity.defn(name=PLACE_ORDER)
    async def place_order(self, request: PlaceOrderInput) -> PlaceOrderResult:
        await self._enter(PLACE_ORDER)
        return PlaceOrderResult(order_id=request.order.order_id)

    @activity.defn(name=COMPLETE_ORDER)
    async def complete_order(self, request: CompleteOrderInput) -> CompleteOrderResult:
        await self._enter(COMPLETE_ORDER)
        return CompleteOrderResult(completed=True)

    @activity.defn(name=CANCEL_ORDER)
    async def cancel_order(self, request: CancelOrderInput) -> CancelOrderResult:
        await self._enter(CANCEL_ORDER)
        return CancelOrderResult(cancelled=True)

    @activity.defn(name=CHARGE_PAYMENT)
    async def charge_payment(self, request: ChargePaymentInput) -> ChargePaymentResult:
        await self._enter(CHARGE_PAYMENT)
        if request.payment_token == DECLINED_TOKEN:
            raise ApplicationError("card declined", type=PAYMENT_DECLINED, non_retryable=True)
        return ChargePaymentResult(payment_id=f"pay-{request.order_id}")

    @activity.defn(name=REFUND_PAYMENT)
    async def refund_payment(self, request: RefundPaymentInput) -> RefundPaymentResult:
        await self._enter(REFUND_PAYMENT)
        return RefundPaymentResult(refunded=True, payment_id=f"pay-{request.order_id}")

    @activity.defn(name=RESERVE_STOCK)
    async def reserve_stock(self, request: ReserveStockInput) -> ReserveStockResult:
        await self._enter(RESERVE_STOCK)
        if any(line.sku == OUT_OF_STOCK_SKU for line in request.items):
            raise ApplicationError(
                f"{OUT_OF_STOCK_SKU} is out of stock", type=STOCK_UNAVAILABLE, non_retryable=True
            )
        return ReserveStockResult(reservation_id=f"res-{request.order_id}")

    @activity.defn(name=RELEASE_STOCK)
    async def release_stock(self, request: ReleaseStockInput) -> ReleaseStockResult:
        await self._enter(RELEASE_STOCK)
        return ReleaseStockResult(released=True)

    @activity.defn(name=SCHEDULE_SHIPMENT)
    async def schedule_shipment(self, request: ScheduleShipmentInput) -> ScheduleShipmentResult:
        await self._enter(SCHEDULE_SHIPMENT)
        if request.country == UNSUPPORTED_COUNTRY:
            raise ApplicationError(
                f"no carrier ships to {request.country}",
                type=DESTINATION_UNSUPPORTED,
                non_retryable=True,
            )
        return ScheduleShipmentResult(shipment_id=f"shp-{request.order_id}", carrier="DHL")

    @activity.defn(name=CANCEL_SHIPMENT)
    async def cancel_shipment(self, request: CancelShipmentInput) -> CancelShipmentResult:
        await self._enter(CANCEL_SHIPMENT)
        return CancelShipmentResult(cancelled=True)


@dataclass
class SagaHarness:
    """Workers for one test: the saga on its own task queue, stand-ins on the services'."""

    client: Client
    task_queue: str
    stand_ins: StandIns
    time_skipping: WorkflowEnvironment | None = None

    @property
    def env(self) -> WorkflowEnvironment:
        """The time-skipping environment the workers run on."""
        assert self.time_skipping is not None, "these workers run on a dev server"
        return self.time_skipping

    async def start(
        self, order: Order, *, dispatch_deadline_seconds: int = 48 * 3600
    ) -> WorkflowHandle[OrderSaga, object]:
        return await self.client.start_workflow(
            OrderSaga.run,
            OrderSagaInput(order=order, dispatch_deadline_seconds=dispatch_deadline_seconds),
            id=saga_workflow_id(order.order_id),
            task_queue=self.task_queue,
            execution_timeout=timedelta(days=30),
        )


def _activities_by_queue(stand_ins: StandIns) -> dict[str, list[object]]:
    return {
        task_queues.ORCHESTRATOR: [
            stand_ins.place_order,
            stand_ins.complete_order,
            stand_ins.cancel_order,
        ],
        task_queues.PAYMENT: [stand_ins.charge_payment, stand_ins.refund_payment],
        task_queues.INVENTORY: [stand_ins.reserve_stock, stand_ins.release_stock],
        task_queues.SHIPPING: [stand_ins.schedule_shipment, stand_ins.cancel_shipment],
    }


@asynccontextmanager
async def saga_workers(
    client: Client,
    stand_ins: StandIns,
    *,
    env: WorkflowEnvironment | None = None,
    workflows: list[type] | None = None,
    down: frozenset[str] = frozenset(),
) -> AsyncIterator[SagaHarness]:
    """Run the saga's worker (fresh task queue) with the orchestrator's own steps (local
    activities run where the workflow runs) and one stand-in worker per service queue,
    except the queues in ``down``: nobody picks their activities up."""
    task_queue = f"saga-{uuid.uuid4()}"
    by_queue = _activities_by_queue(stand_ins)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=task_queue,
                workflows=workflows or [OrderSaga],
                activities=by_queue.pop(task_queues.ORCHESTRATOR),  # type: ignore[arg-type]
            )
        )
        for queue, activities in by_queue.items():
            if queue in down:
                continue
            await stack.enter_async_context(
                Worker(client, task_queue=queue, activities=activities)  # type: ignore[arg-type]
            )
        yield SagaHarness(client, task_queue, stand_ins, env)


async def record_history(handle: WorkflowHandle[OrderSaga, object], path: str) -> None:
    """Write the history of ``handle`` to ``histories/<path>.json`` when asked to record."""
    if os.environ.get("SAGA_RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    (HISTORIES / f"{path}.json").write_text(history.to_json(), encoding="utf-8")
