"""``OrderSaga``: one order through payment, stock and shipping, undone when a step fails.

Mostly a declaration of steps on ``orchestrator.saga``; the workflow adds the order's
signals, its status query and the operator updates. Forward:

    place order → charge payment → reserve stock → schedule shipment
    → wait for the carrier's ``shipment_dispatched`` (the point of no return) → complete

A failure turns the saga back, undoing what was done in reverse order and ending with
``order.cancel``: a declined payment undoes only the order; missing stock refunds; an
unsupported destination releases the stock and refunds; a dispatch deadline that passes
cancels the shipment, releases, refunds; a ``cancel_order`` signal before dispatch undoes
whatever was done. After dispatch, cancel requests are refused (and recorded).
"""

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts import task_queues
    from contracts.activities import (
        CANCEL_ORDER,
        CANCEL_ORDER_SIGNAL,
        CANCEL_SHIPMENT,
        CHARGE_PAYMENT,
        COMPLETE_ORDER,
        ORDER_SAGA_WORKFLOW,
        PLACE_ORDER,
        REFUND_PAYMENT,
        RELEASE_STOCK,
        RESERVE_STOCK,
        SCHEDULE_SHIPMENT,
        SHIPMENT_DISPATCHED_SIGNAL,
        STATUS_QUERY,
        CancelOrderInput,
        CancelOrderRequest,
        CancelOrderResult,
        CancelShipmentInput,
        CancelShipmentResult,
        ChargePaymentInput,
        ChargePaymentResult,
        CompleteOrderInput,
        CompleteOrderResult,
        Order,
        OrderSagaInput,
        OrderSagaResult,
        PlaceOrderInput,
        PlaceOrderResult,
        RefundPaymentInput,
        RefundPaymentResult,
        ReleaseStockInput,
        ReleaseStockResult,
        ReserveStockInput,
        ReserveStockResult,
        SagaPhase,
        SagaStatus,
        ScheduleShipmentInput,
        ScheduleShipmentResult,
        ShipmentDispatched,
    )
    from contracts.errors import DESTINATION_UNSUPPORTED, PAYMENT_DECLINED, STOCK_UNAVAILABLE
    from contracts.search_attributes import (
        CUSTOMER_ID_KEY,
        ORDER_ID_KEY,
        SAGA_STATUS_KEY,
        SAGA_STEP_KEY,
    )
    from orchestrator.saga import (
        ActivityCall,
        OperatedSaga,
        SagaContext,
        SagaDefinition,
        SagaRunner,
        Step,
        WaitStep,
    )
    from orchestrator.workflows._policies import service_policy

__all__ = [
    "CUSTOMER_ID_KEY",
    "ORDER_ID_KEY",
    "ORDER_SAGA",
    "OUTCOME_MEMO_PATCH",
    "OrderSaga",
    "Steps",
    "start_attributes",
]

OUTCOME_MEMO_PATCH = "outcome-memo"
"""``workflow.patched`` id of the outcome memo (``saga_status``, ``failure_reason``...)."""

Context = SagaContext[OrderSagaInput]


class Steps:
    """The names of the saga's steps, as the status query and ``SagaStep`` show them."""

    PLACE_ORDER = "place_order"
    CHARGE_PAYMENT = "charge_payment"
    RESERVE_STOCK = "reserve_stock"
    SCHEDULE_SHIPMENT = "schedule_shipment"
    AWAIT_DISPATCH = "await_dispatch"
    COMPLETE_ORDER = "complete_order"


def _order_id(ctx: Context) -> str:
    return ctx.input.order.order_id


def _charge_input(ctx: Context) -> ChargePaymentInput:
    order = ctx.input.order
    return ChargePaymentInput(
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount=order.total,
        payment_token=order.payment_token,
    )


def _complete_input(ctx: Context) -> CompleteOrderInput:
    return CompleteOrderInput(
        order_id=_order_id(ctx),
        payment_id=ctx.result(Steps.CHARGE_PAYMENT, ChargePaymentResult).payment_id,
        reservation_id=ctx.result(Steps.RESERVE_STOCK, ReserveStockResult).reservation_id,
        shipment_id=ctx.result(Steps.SCHEDULE_SHIPMENT, ScheduleShipmentResult).shipment_id,
    )


def _dispatch_mismatch(ctx: Context, signal: ShipmentDispatched) -> str | None:
    shipment = ctx.result(Steps.SCHEDULE_SHIPMENT, ScheduleShipmentResult)
    if signal.order_id != _order_id(ctx):
        return f"dispatch of order {signal.order_id!r}, not of this order"
    if signal.shipment_id != shipment.shipment_id:
        return f"dispatch of shipment {signal.shipment_id!r}, not {shipment.shipment_id!r}"
    return None


def _undo(
    name: str,
    task_queue: str,
    make_input: Callable[..., ReleaseStockInput | CancelShipmentInput],
    result: type[BaseModel],
) -> ActivityCall:
    """A compensation told only the order and why the saga turns back."""
    return ActivityCall(
        name=name,
        task_queue=task_queue,
        input=lambda ctx: make_input(order_id=_order_id(ctx), reason=ctx.failure_reason),
        result=result,
    )


ORDER_SAGA = SagaDefinition(
    name=ORDER_SAGA_WORKFLOW,
    incidents=True,
    steps=[
        Step(
            name=Steps.PLACE_ORDER,
            action=ActivityCall(
                name=PLACE_ORDER,
                task_queue=task_queues.ORCHESTRATOR,
                local=True,
                input=lambda ctx: PlaceOrderInput(order=ctx.input.order),
                result=PlaceOrderResult,
            ),
            compensation=ActivityCall(
                name=CANCEL_ORDER,
                task_queue=task_queues.ORCHESTRATOR,
                local=True,
                input=lambda ctx: CancelOrderInput(
                    order_id=_order_id(ctx),
                    reason=ctx.failure_reason,
                    failed_step=ctx.failed_step,
                    cause=ctx.failure_cause,
                ),
                result=CancelOrderResult,
            ),
            policy=service_policy(),
        ),
        Step(
            name=Steps.CHARGE_PAYMENT,
            action=ActivityCall(
                name=CHARGE_PAYMENT,
                task_queue=task_queues.PAYMENT,
                input=_charge_input,
                result=ChargePaymentResult,
            ),
            compensation=ActivityCall(
                name=REFUND_PAYMENT,
                task_queue=task_queues.PAYMENT,
                input=lambda ctx: RefundPaymentInput(
                    order_id=_order_id(ctx),
                    reason=ctx.failure_reason,
                    payment_token=ctx.input.order.payment_token,
                ),
                result=RefundPaymentResult,
            ),
            policy=service_policy(PAYMENT_DECLINED),
        ),
        Step(
            name=Steps.RESERVE_STOCK,
            action=ActivityCall(
                name=RESERVE_STOCK,
                task_queue=task_queues.INVENTORY,
                input=lambda ctx: ReserveStockInput(
                    order_id=_order_id(ctx), items=ctx.input.order.stock_lines
                ),
                result=ReserveStockResult,
            ),
            compensation=_undo(
                RELEASE_STOCK, task_queues.INVENTORY, ReleaseStockInput, ReleaseStockResult
            ),
            policy=service_policy(STOCK_UNAVAILABLE),
        ),
        Step(
            name=Steps.SCHEDULE_SHIPMENT,
            action=ActivityCall(
                name=SCHEDULE_SHIPMENT,
                task_queue=task_queues.SHIPPING,
                input=lambda ctx: ScheduleShipmentInput(
                    order_id=_order_id(ctx),
                    country=ctx.input.order.shipping_address.country,
                    items=ctx.input.order.stock_lines,
                ),
                result=ScheduleShipmentResult,
            ),
            compensation=_undo(
                CANCEL_SHIPMENT, task_queues.SHIPPING, CancelShipmentInput, CancelShipmentResult
            ),
            policy=service_policy(DESTINATION_UNSUPPORTED),
        ),
        WaitStep(
            name=Steps.AWAIT_DISPATCH,
            result=ShipmentDispatched,
            timeout=lambda ctx: timedelta(seconds=ctx.input.dispatch_deadline_seconds),
            timeout_reason="the carrier did not dispatch the shipment before the deadline",
            accept=_dispatch_mismatch,
            pivot=True,
            owner=task_queues.SHIPPING,
        ),
        Step(
            name=Steps.COMPLETE_ORDER,
            action=ActivityCall(
                name=COMPLETE_ORDER,
                task_queue=task_queues.ORCHESTRATOR,
                local=True,
                input=_complete_input,
                result=CompleteOrderResult,
            ),
            policy=service_policy(),
        ),
    ],
)
"""The order saga's steps, their compensations and their failure policies."""


def start_summary(order: Order) -> str:
    """The saga's summary in the Temporal Web UI (its static user metadata), set at start."""
    items = sum(line.quantity for line in order.items)
    total = order.total
    return (
        f"order {order.order_id}: {items} item(s), total {total.amount_minor} {total.currency} "
        f"(minor units), customer {order.customer_id}, to {order.shipping_address.country}"
    )


def start_attributes(order: Order) -> TypedSearchAttributes:
    """The search attributes to start an order's saga with, so the saga upserts none of
    them before it moves (a saga started without them upserts them itself)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(ORDER_ID_KEY, order.order_id),
            SearchAttributePair(CUSTOMER_ID_KEY, order.customer_id),
            SearchAttributePair(SAGA_STATUS_KEY, SagaPhase.RUNNING.value),
            SearchAttributePair(SAGA_STEP_KEY, ORDER_SAGA.steps[0].name),
        ]
    )


@workflow.defn(name=ORDER_SAGA_WORKFLOW)
class OrderSaga(OperatedSaga):
    """The saga of one order; its id is ``saga_workflow_id(order_id)``."""

    definition: SagaDefinition = ORDER_SAGA

    @workflow.init
    def __init__(self, saga_input: OrderSagaInput) -> None:
        order = saga_input.order
        self._runner = SagaRunner(
            self.definition,
            saga_input,
            search_attributes=[
                ORDER_ID_KEY.value_set(order.order_id),
                CUSTOMER_ID_KEY.value_set(order.customer_id),
            ],
            label=f"order {order.order_id}",
            order_id=order.order_id,
        )

    @workflow.run
    async def run(self, saga_input: OrderSagaInput) -> OrderSagaResult:
        """Run the order through the saga; raises ``CancelledError`` if cancelled."""
        try:
            outcome = await self._runner.run()
        finally:
            self._remember_outcome()
        ctx = self._runner.context
        payment = ctx.result_or_none(Steps.CHARGE_PAYMENT, ChargePaymentResult)
        reservation = ctx.result_or_none(Steps.RESERVE_STOCK, ReserveStockResult)
        shipment = ctx.result_or_none(Steps.SCHEDULE_SHIPMENT, ScheduleShipmentResult)
        dispatch = ctx.result_or_none(Steps.AWAIT_DISPATCH, ShipmentDispatched)
        return OrderSagaResult(
            order_id=saga_input.order.order_id,
            status=outcome.phase,
            failure_reason=outcome.failure.reason if outcome.failure else None,
            failed_step=outcome.failure.step if outcome.failure else None,
            payment_id=payment.payment_id if payment else None,
            reservation_id=reservation.reservation_id if reservation else None,
            shipment_id=shipment.shipment_id if shipment else None,
            tracking_number=dispatch.tracking_number if dispatch else None,
        )

    def _remember_outcome(self) -> None:
        """Put how the saga ended in the memo, readable in lists without a worker."""
        memo = self._outcome_memo()
        if memo is None:
            return
        # Added after sagas had run without it: the marker keeps their histories replayable.
        # A lean history is newer than the memo: it needs no marker (two history events).
        if self._runner.lean_history or workflow.patched(OUTCOME_MEMO_PATCH):
            workflow.upsert_memo(memo)

    @workflow.signal(name=SHIPMENT_DISPATCHED_SIGNAL)
    def shipment_dispatched(self, signal: ShipmentDispatched) -> None:
        """The carrier picked the parcel up; duplicates and late signals change nothing."""
        self._runner.deliver(Steps.AWAIT_DISPATCH, signal)

    @workflow.signal(name=CANCEL_ORDER_SIGNAL)
    def cancel_order(self, request: CancelOrderRequest) -> None:
        """Undo the order if it is not dispatched yet; refused (and recorded) after."""
        self._runner.request_cancel(f"cancelled by {request.requested_by}: {request.reason}")

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> SagaStatus:
        """Where the saga is, step by step, with attempts, errors and stuck flags."""
        order = self._runner.context.input.order
        failure = self._runner.failure
        return SagaStatus(
            order_id=order.order_id,
            customer_id=order.customer_id,
            status=self._runner.phase,
            current_step=self._runner.current_step,
            steps=self._runner.steps,
            failure_reason=failure.reason if failure else None,
            failed_step=failure.step if failure else None,
            notes=self._runner.notes,
        )
