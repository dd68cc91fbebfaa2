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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts import task_queues
from contracts.activities import (
    AUTHORIZE_RETURN,
    CANCEL_ORDER,
    CANCEL_SHIPMENT,
    CHARGE_PAYMENT,
    COMPLETE_ORDER,
    COMPLETE_RETURN,
    EXPIRE_RETURN,
    ISSUE_RETURN_LABEL,
    OPEN_INCIDENT,
    PLACE_ORDER,
    REFUND_PAYMENT,
    REFUND_RETURN,
    RELEASE_STOCK,
    RESERVE_STOCK,
    RESOLVE_INCIDENT,
    RESTOCK,
    SCHEDULE_SHIPMENT,
    VOID_RETURN_LABEL,
    AuthorizeReturnInput,
    AuthorizeReturnResult,
    CancelOrderInput,
    CancelOrderResult,
    CancelShipmentInput,
    CancelShipmentResult,
    ChargePaymentInput,
    ChargePaymentResult,
    CompleteOrderInput,
    CompleteOrderResult,
    CompleteReturnInput,
    CompleteReturnResult,
    ExpireReturnInput,
    ExpireReturnResult,
    IncidentOpened,
    IncidentRecorded,
    IncidentResolved,
    IssueReturnLabelInput,
    IssueReturnLabelResult,
    Order,
    OrderSagaInput,
    PlaceOrderInput,
    PlaceOrderResult,
    RefundPaymentInput,
    RefundPaymentResult,
    RefundReturnInput,
    RefundReturnResult,
    ReleaseStockInput,
    ReleaseStockResult,
    ReserveStockInput,
    ReserveStockResult,
    RestockInput,
    RestockResult,
    ReturnLine,
    ReturnReceived,
    ReturnRequest,
    ReturnSagaInput,
    ScheduleShipmentInput,
    ScheduleShipmentResult,
    ShippingAddress,
    VoidReturnLabelInput,
    VoidReturnLabelResult,
    return_workflow_id,
    saga_workflow_id,
)
from contracts.errors import (
    DESTINATION_UNSUPPORTED,
    PAYMENT_DECLINED,
    RETURN_REJECTED,
    STOCK_UNAVAILABLE,
)
from contracts.events.common import Money, OrderLine, PricedLine
from contracts.events.returns import ReturnRejectionCode
from orchestrator.workflows import OrderSaga, ReturnSaga

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
class CallLog:
    """Every stand-in call in order, with per-test knobs: technical failures, gates."""

    calls: list[str] = field(default_factory=list)
    failures_before_success: dict[str, int] = field(default_factory=dict)
    """Activity name -> how many calls fail with a technical error before one succeeds."""
    gates: dict[tuple[str, int], Gate] = field(default_factory=dict)
    """(activity name, call number from 1) -> a gate that call waits at."""

    incidents: list[IncidentOpened | IncidentResolved] = field(default_factory=list)
    """Every incident the saga opened and resolved, in order (apart from ``calls``)."""

    def gate(self, name: str, call: int) -> Gate:
        return self.gates.setdefault((name, call), Gate())

    @activity.defn(name=OPEN_INCIDENT)
    async def open_incident(self, incident: IncidentOpened) -> IncidentRecorded:
        self.incidents.append(incident)
        return IncidentRecorded(incident_id=incident.incident_id, recorded=True)

    @activity.defn(name=RESOLVE_INCIDENT)
    async def resolve_incident(self, incident: IncidentResolved) -> IncidentRecorded:
        self.incidents.append(incident)
        return IncidentRecorded(incident_id=incident.incident_id, recorded=True)

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


@dataclass
class StandIns(CallLog):
    """The services' activities of the order saga, recording every call in order."""

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
            stand_ins.open_incident,
            stand_ins.resolve_incident,
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


async def record_history(handle: WorkflowHandle[Any, Any], path: str) -> None:
    """Write the history of ``handle`` to ``histories/<path>.json`` when asked to record
    (``returns/<path>`` for the return saga's)."""
    if os.environ.get("SAGA_RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    target = HISTORIES / f"{path}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(history.to_json(), encoding="utf-8")


# --- The return saga ------------------------------------------------------------------


@dataclass
class BoughtOrder:
    """An order as the stand-in order service knows it: what was bought, and when (if ever)
    it was dispatched."""

    lines: list[OrderLine]
    dispatched_at: datetime | None
    currency: str = "EUR"


@dataclass
class ReturnStandIns(CallLog):
    """The return saga's activities: a small order service that authorizes returns as the
    real one does (dispatched, within the window measured to ``requested_at``, no more than
    bought minus what earlier returns hold), and the shipping, inventory and payment steps.

    Test switches: the orders it knows (``orders``: leave one out for ``UNKNOWN_ORDER``, no
    dispatch time for ``NOT_DISPATCHED``), ``failures_before_success`` (a refund that fails
    technically: ``{REFUND_RETURN: 1_000}``), gates. A lost parcel is a test that never sends
    ``return_received``. Every input is kept in ``inputs`` by activity name.
    """

    orders: dict[str, BoughtOrder] = field(default_factory=dict)
    held: dict[str, dict[str, int]] = field(default_factory=dict)
    """Return id -> SKU -> quantity its authorization holds (released when it expires)."""
    order_of: dict[str, str] = field(default_factory=dict)
    """Return id -> its order, for the returns that hold quantities."""
    inputs: dict[str, list[Any]] = field(default_factory=dict)

    async def _called(self, name: str, request: Any) -> None:
        self.inputs.setdefault(name, []).append(request)
        await self._enter(name)

    def dispatched_order(self, dispatched_at: datetime | None) -> str:
        """Add an order of 2 x SKU-1 at 12.50 and 1 x SKU-2 at 5.00; its id."""
        order_id = f"o-{uuid.uuid4().hex[:12]}"
        self.orders[order_id] = BoughtOrder(
            lines=[
                OrderLine(sku="SKU-1", quantity=2, unit_price_minor=1250),
                OrderLine(sku="SKU-2", quantity=1, unit_price_minor=500),
            ],
            dispatched_at=dispatched_at,
        )
        return order_id

    def _refuse(self, code: ReturnRejectionCode, detail: str) -> ApplicationError:
        return ApplicationError(
            f"{code.value}: {detail}", code.value, type=RETURN_REJECTED, non_retryable=True
        )

    def _authorize(self, request: AuthorizeReturnInput) -> AuthorizeReturnResult:
        ask = request.request
        order = self.orders.get(ask.order_id)
        if order is None:
            raise self._refuse(ReturnRejectionCode.UNKNOWN_ORDER, f"no order {ask.order_id}")
        if order.dispatched_at is None:
            raise self._refuse(ReturnRejectionCode.NOT_DISPATCHED, "never dispatched")
        if request.requested_at - order.dispatched_at > timedelta(seconds=request.window_seconds):
            raise self._refuse(
                ReturnRejectionCode.WINDOW_CLOSED,
                f"dispatched {request.requested_at - order.dispatched_at} before the request",
            )
        bought = {line.sku: line for line in order.lines}
        taken: dict[str, int] = {}
        for return_id, lines in self.held.items():
            if return_id != ask.return_id and self.order_of.get(return_id) == ask.order_id:
                for sku, quantity in lines.items():
                    taken[sku] = taken.get(sku, 0) + quantity
        priced = []
        for line in ask.items:
            if line.sku not in bought:
                raise self._refuse(ReturnRejectionCode.UNKNOWN_ITEM, f"{line.sku} not bought")
            left = bought[line.sku].quantity - taken.get(line.sku, 0)
            if line.quantity > left:
                raise self._refuse(
                    ReturnRejectionCode.MORE_THAN_BOUGHT,
                    f"{line.quantity} x {line.sku}, {left} left",
                )
            unit = Money(amount_minor=bought[line.sku].unit_price_minor, currency=order.currency)
            priced.append(PricedLine(sku=line.sku, quantity=line.quantity, unit_price=unit))
        self.held[ask.return_id] = {line.sku: line.quantity for line in ask.items}
        self.order_of[ask.return_id] = ask.order_id
        amount = sum(line.quantity * line.unit_price.amount_minor for line in priced)
        return AuthorizeReturnResult(
            return_id=ask.return_id,
            order_id=ask.order_id,
            lines=priced,
            amount=Money(amount_minor=amount, currency=order.currency),
            payment_id=f"pay-{ask.order_id}",
        )

    @activity.defn(name=AUTHORIZE_RETURN)
    async def authorize_return(self, request: AuthorizeReturnInput) -> AuthorizeReturnResult:
        await self._called(AUTHORIZE_RETURN, request)
        return self._authorize(request)

    @activity.defn(name=EXPIRE_RETURN)
    async def expire_return(self, request: ExpireReturnInput) -> ExpireReturnResult:
        await self._called(EXPIRE_RETURN, request)
        return ExpireReturnResult(expired=self.held.pop(request.return_id, None) is not None)

    @activity.defn(name=COMPLETE_RETURN)
    async def complete_return(self, request: CompleteReturnInput) -> CompleteReturnResult:
        await self._called(COMPLETE_RETURN, request)
        return CompleteReturnResult(completed=True)

    @activity.defn(name=ISSUE_RETURN_LABEL)
    async def issue_return_label(self, request: IssueReturnLabelInput) -> IssueReturnLabelResult:
        await self._called(ISSUE_RETURN_LABEL, request)
        return IssueReturnLabelResult(
            label_id=return_label_id(request.return_id), tracking_number="RTN-1"
        )

    @activity.defn(name=VOID_RETURN_LABEL)
    async def void_return_label(self, request: VoidReturnLabelInput) -> VoidReturnLabelResult:
        await self._called(VOID_RETURN_LABEL, request)
        return VoidReturnLabelResult(voided=True)

    @activity.defn(name=RESTOCK)
    async def restock(self, request: RestockInput) -> RestockResult:
        await self._called(RESTOCK, request)
        return RestockResult(restocked=request.items)

    @activity.defn(name=REFUND_RETURN)
    async def refund_return(self, request: RefundReturnInput) -> RefundReturnResult:
        await self._called(REFUND_RETURN, request)
        return RefundReturnResult(refund_id=f"rf-{request.return_id}", amount=request.amount)


def return_label_id(return_id: str) -> str:
    """The label the stand-in shipping service issues for ``return_id``."""
    return f"lbl-{return_id}"


def make_return(order_id: str, *lines: tuple[str, int], reason: str = "") -> ReturnRequest:
    """A return of ``order_id``: by default one SKU-1 of the stand-ins' orders."""
    return ReturnRequest(
        return_id=f"r-{uuid.uuid4().hex[:12]}",
        order_id=order_id,
        items=[ReturnLine(sku=sku, quantity=quantity) for sku, quantity in lines or [("SKU-1", 1)]],
        reason=reason,
    )


def parcel_of(request: ReturnRequest) -> ReturnReceived:
    """The warehouse's ``return_received`` for ``request``'s parcel."""
    return ReturnReceived(
        order_id=request.order_id,
        return_id=request.return_id,
        label_id=return_label_id(request.return_id),
    )


@dataclass
class ReturnHarness:
    """Workers for one return saga test, on the time-skipping server."""

    client: Client
    task_queue: str
    stand_ins: ReturnStandIns
    env: WorkflowEnvironment

    async def start(
        self, request: ReturnRequest, **limits: int
    ) -> WorkflowHandle[ReturnSaga, object]:
        """Start the return's saga; ``limits``: ``window_seconds``, ``deadline_seconds``."""
        return await self.client.start_workflow(
            ReturnSaga.run,
            ReturnSagaInput(request=request, customer_id="c-42", **limits),
            id=return_workflow_id(request.return_id),
            task_queue=self.task_queue,
            # No execution timeout: the test server keeps a finished workflow's timeout timer
            # and may skip its clock to it, which would move the return window's clock.
        )


@asynccontextmanager
async def return_workers(
    env: WorkflowEnvironment, stand_ins: ReturnStandIns
) -> AsyncIterator[ReturnHarness]:
    """The return saga's worker (fresh task queue) with the order service's return steps as
    its local activities, and one stand-in worker per service queue."""
    task_queue = f"returns-{uuid.uuid4()}"
    client = env.client
    by_queue: dict[str, list[object]] = {
        task_queue: [
            stand_ins.authorize_return,
            stand_ins.expire_return,
            stand_ins.complete_return,
            stand_ins.open_incident,
            stand_ins.resolve_incident,
        ],
        task_queues.SHIPPING: [stand_ins.issue_return_label, stand_ins.void_return_label],
        task_queues.INVENTORY: [stand_ins.restock],
        task_queues.PAYMENT: [stand_ins.refund_return],
    }
    async with AsyncExitStack() as stack:
        for queue, activities in by_queue.items():
            workflows = [ReturnSaga] if queue == task_queue else []
            await stack.enter_async_context(
                Worker(client, task_queue=queue, workflows=workflows, activities=activities)  # type: ignore[arg-type]
            )
        yield ReturnHarness(client, task_queue, stand_ins, env)
