"""The activity contract between the orchestrator and the services, and the saga's own API.

The orchestrator calls each activity by the name and task queue published here; the
service that owns the data registers an activity under that name on that queue
(``@activity.defn(name=CHARGE_PAYMENT)``). Each activity takes one input model and
returns one result model, so fields can be added without breaking callers or histories.

Every activity is **idempotent by (order id, step)**: Temporal runs activities at least
once, so a service that receives the same call again for the same order returns the
result of the first call instead of acting twice, and an undo for something that never
happened succeeds and says so (``refunded=False``). Business refusals are raised as
``ApplicationError(type=PAYMENT_DECLINED, non_retryable=True)`` with the names of
``contracts.errors``; any other error is technical and is retried.

The workflow side (``OrderSaga``) is described here too: its input and result, its
signals, its status query and its operator updates.

So is the second saga, ``ReturnSaga`` (workflow id ``return-<return_id>``): a customer
sends back items of a dispatched order. Its activities are **idempotent by return id**
(one return of an order is one saga), and it answers the same ``status`` query and
operator updates as ``OrderSaga``.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.envelope import CountryCode, CurrencyCode
from contracts.events.common import Money, OrderLine, PricedLine, StockLine

__all__ = [
    "AUTHORIZE_RETURN",
    "CANCEL_ORDER",
    "CANCEL_ORDER_SIGNAL",
    "CANCEL_SHIPMENT",
    "CHARGE_PAYMENT",
    "COMPLETE_ORDER",
    "COMPLETE_RETURN",
    "DEFAULT_DISPATCH_DEADLINE_SECONDS",
    "DEFAULT_RETURN_DEADLINE_DAYS",
    "DEFAULT_RETURN_WINDOW_DAYS",
    "EXPIRE_RETURN",
    "IDENTIFIER_PATTERN",
    "ISSUE_RETURN_LABEL",
    "LOST_PARCEL_REASON",
    "OPEN_INCIDENT",
    "ORDER_SAGA_WORKFLOW",
    "PLACE_ORDER",
    "REFUND_PAYMENT",
    "REFUND_RETURN",
    "RELEASE_STOCK",
    "RESERVE_STOCK",
    "RESOLVE_INCIDENT",
    "RESOLVE_MANUALLY_UPDATE",
    "RESTOCK",
    "RETRY_NOW_UPDATE",
    "RETURN_RECEIVED_SIGNAL",
    "RETURN_SAGA_WORKFLOW",
    "SCHEDULE_SHIPMENT",
    "SHIPMENT_DISPATCHED_SIGNAL",
    "STATUS_QUERY",
    "VOID_RETURN_LABEL",
    "AuthorizeReturnInput",
    "AuthorizeReturnResult",
    "CancelCause",
    "CancelOrderInput",
    "CancelOrderRequest",
    "CancelOrderResult",
    "CancelShipmentInput",
    "CancelShipmentResult",
    "ChargePaymentInput",
    "ChargePaymentResult",
    "CompleteOrderInput",
    "CompleteOrderResult",
    "CompleteReturnInput",
    "CompleteReturnResult",
    "ExpireReturnInput",
    "ExpireReturnResult",
    "Identifier",
    "IncidentKind",
    "IncidentOpened",
    "IncidentRecorded",
    "IncidentResolved",
    "IssueReturnLabelInput",
    "IssueReturnLabelResult",
    "ManualResolution",
    "OperatorActionResult",
    "Order",
    "OrderSagaInput",
    "OrderSagaResult",
    "PlaceOrderInput",
    "PlaceOrderResult",
    "RefundPaymentInput",
    "RefundPaymentResult",
    "RefundReturnInput",
    "RefundReturnResult",
    "ReleaseStockInput",
    "ReleaseStockResult",
    "ReserveStockInput",
    "ReserveStockResult",
    "ResolveManuallyRequest",
    "RestockInput",
    "RestockResult",
    "RetryNowRequest",
    "ReturnLine",
    "ReturnOutcome",
    "ReturnReceived",
    "ReturnRequest",
    "ReturnSagaInput",
    "ReturnSagaResult",
    "ReturnStatus",
    "SagaNote",
    "SagaPhase",
    "SagaStatus",
    "ScheduleShipmentInput",
    "ScheduleShipmentResult",
    "ShipmentDispatched",
    "ShippingAddress",
    "StepPhase",
    "StepState",
    "VoidReturnLabelInput",
    "VoidReturnLabelResult",
    "return_workflow_id",
    "saga_workflow_id",
]

# --- Activity names (task queue in the comment) ---------------------------------------

PLACE_ORDER = "order.place"
"""Orchestrator queue: record the order and emit ``order.placed``."""
COMPLETE_ORDER = "order.complete"
"""Orchestrator queue: mark the order completed and emit ``order.completed``."""
CANCEL_ORDER = "order.cancel"
"""Orchestrator queue: mark the order cancelled and emit ``order.cancelled``."""
CHARGE_PAYMENT = "payment.charge"
"""Payment queue: charge the customer; emits ``payment.completed`` or ``payment.failed``."""
REFUND_PAYMENT = "payment.refund"
"""Payment queue: refund the order's charge, if there was one; emits ``payment.refunded``."""
RESERVE_STOCK = "inventory.reserve"
"""Inventory queue: reserve the items; emits ``inventory.reserved`` or ``.unavailable``."""
RELEASE_STOCK = "inventory.release"
"""Inventory queue: release the order's reservation, if any; emits ``inventory.released``."""
SCHEDULE_SHIPMENT = "shipping.schedule"
"""Shipping queue: book a carrier; emits ``shipping.scheduled`` or ``shipping.failed``."""
CANCEL_SHIPMENT = "shipping.cancel"
"""Shipping queue: cancel the order's shipment, if any; emits ``shipping.cancelled``."""
OPEN_INCIDENT = "incident.open"
"""Orchestrator queue (local): record an incident the saga opened and emit
``saga.incident_opened``; idempotent by incident id."""
RESOLVE_INCIDENT = "incident.resolve"
"""Orchestrator queue (local): record the incident's end and emit ``saga.incident_resolved``;
idempotent by incident id."""

# --- Workflow, signals, query, updates ------------------------------------------------

ORDER_SAGA_WORKFLOW = "OrderSaga"
SHIPMENT_DISPATCHED_SIGNAL = "shipment_dispatched"
CANCEL_ORDER_SIGNAL = "cancel_order"
STATUS_QUERY = "status"
RETRY_NOW_UPDATE = "retry_now"
RESOLVE_MANUALLY_UPDATE = "resolve_manually"

DEFAULT_DISPATCH_DEADLINE_SECONDS = 48 * 3600


def saga_workflow_id(order_id: str) -> str:
    """The id of the saga of ``order_id``: one saga per order, found by its order."""
    return f"order-{order_id}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- The order ------------------------------------------------------------------------


class ShippingAddress(_Model):
    """Where the order goes; only the country is needed to choose a carrier."""

    country: CountryCode
    name: str | None = None
    line1: str | None = None
    city: str | None = None
    postal_code: str | None = None


class Order(_Model):
    """An order as the customer placed it."""

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    items: list[OrderLine] = Field(min_length=1)
    currency: CurrencyCode
    payment_token: str = Field(min_length=1)
    shipping_address: ShippingAddress

    @property
    def total(self) -> Money:
        """What the customer pays: the sum of the lines, in the order's currency."""
        amount = sum(line.quantity * line.unit_price_minor for line in self.items)
        return Money(amount_minor=amount, currency=self.currency)

    @property
    def stock_lines(self) -> list[StockLine]:
        """The items as inventory and shipping see them: SKU and quantity."""
        return [StockLine(sku=line.sku, quantity=line.quantity) for line in self.items]


# --- Orchestrator queue ---------------------------------------------------------------


class PlaceOrderInput(_Model):
    """Input of ``order.place``; idempotent by order id."""

    order: Order


class PlaceOrderResult(_Model):
    """Result of ``order.place``."""

    order_id: str


class CompleteOrderInput(_Model):
    """Input of ``order.complete``; idempotent by order id."""

    order_id: str
    payment_id: str
    reservation_id: str
    shipment_id: str


class CompleteOrderResult(_Model):
    """Result of ``order.complete``."""

    completed: bool


class CancelCause(StrEnum):
    """Why a saga turned back: a step failed, someone asked, or the workflow was cancelled."""

    STEP_FAILED = "step_failed"
    CANCEL_REQUESTED = "cancel_requested"
    """The ``cancel_order`` signal: the customer (or support on their behalf)."""
    WORKFLOW_CANCELLED = "workflow_cancelled"
    """A cancellation of the saga's workflow itself (Temporal's cancel)."""


class CancelOrderInput(_Model):
    """Input of ``order.cancel``; idempotent by order id (a second call changes nothing)."""

    order_id: str
    reason: str
    failed_step: str | None = None
    cause: CancelCause | None = None
    """Why the saga turned back (absent in requests from before it was sent)."""


class CancelOrderResult(_Model):
    """Result of ``order.cancel``: ``cancelled`` is false when it was already cancelled."""

    cancelled: bool


# --- Payment queue --------------------------------------------------------------------


class ChargePaymentInput(_Model):
    """Input of ``payment.charge``; idempotent by order id: one charge per order."""

    order_id: str
    customer_id: str
    amount: Money
    payment_token: str


class ChargePaymentResult(_Model):
    """Result of ``payment.charge``."""

    payment_id: str


class RefundPaymentInput(_Model):
    """Input of ``payment.refund``; idempotent by order id, safe when nothing was charged."""

    order_id: str
    reason: str
    payment_token: str | None = None
    """The card charged, for the processor (absent in requests from before it was sent)."""


class RefundPaymentResult(_Model):
    """Result of ``payment.refund``: ``refunded`` is false when there was nothing to refund."""

    refunded: bool
    payment_id: str | None = None


# --- Inventory queue ------------------------------------------------------------------


class ReserveStockInput(_Model):
    """Input of ``inventory.reserve``; idempotent by order id: one reservation per order."""

    order_id: str
    items: list[StockLine] = Field(min_length=1)


class ReserveStockResult(_Model):
    """Result of ``inventory.reserve``."""

    reservation_id: str


class ReleaseStockInput(_Model):
    """Input of ``inventory.release``; idempotent by order id, safe when nothing was reserved."""

    order_id: str
    reason: str


class ReleaseStockResult(_Model):
    """Result of ``inventory.release``: ``released`` is false when nothing was reserved."""

    released: bool


# --- Shipping queue -------------------------------------------------------------------


class ScheduleShipmentInput(_Model):
    """Input of ``shipping.schedule``; idempotent by order id: one shipment per order."""

    order_id: str
    country: CountryCode
    items: list[StockLine] = Field(min_length=1)


class ScheduleShipmentResult(_Model):
    """Result of ``shipping.schedule``."""

    shipment_id: str
    carrier: str


class CancelShipmentInput(_Model):
    """Input of ``shipping.cancel``; idempotent by order id, safe when nothing was booked."""

    order_id: str
    reason: str


class CancelShipmentResult(_Model):
    """Result of ``shipping.cancel``: ``cancelled`` is false when there was no shipment."""

    cancelled: bool


# --- The workflow ---------------------------------------------------------------------


class OrderSagaInput(_Model):
    """Input of ``OrderSaga``."""

    order: Order
    dispatch_deadline_seconds: int = Field(default=DEFAULT_DISPATCH_DEADLINE_SECONDS, gt=0)
    """How long the carrier has to dispatch once the shipment is scheduled."""


class SagaPhase(StrEnum):
    """Where a saga is: going forward, undoing, or finished one way or the other."""

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class StepPhase(StrEnum):
    """Where one step of a saga is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


class ManualResolution(_Model):
    """An operator settled a stuck step or compensation by hand."""

    operator: str
    reason: str
    at: datetime


class StepState(_Model):
    """One step as the status query reports it.

    ``attempts`` counts the attempts the saga knows of: a round of retries that ran out
    counts all its attempts, a round ended early (an error that cannot be retried, a
    time-out) counts one, and so does the attempt that succeeded; retries inside a round
    that then succeeds are not seen by the saga. ``stuck`` is set while the step (or its
    compensation) keeps failing past its policy's attempts; it is still being retried.

    Not frozen: the saga runner keeps one per step, updates it in place and hands out copies.
    """

    model_config = ConfigDict(frozen=False, extra="forbid")

    name: str
    state: StepPhase = StepPhase.PENDING
    attempts: int = 0
    last_error: str | None = None
    compensation_attempts: int = 0
    compensation_last_error: str | None = None
    stuck: bool = False
    parked_since: datetime | None = None
    """Set while the step (or its compensation) is parked: its attempts reached the policy's
    limit and none is made until an operator acts or the policy's ``park_for`` passes."""
    parked_reason: str | None = None
    incident_id: str | None = None
    """The incident open for the current stuck episode, if the saga opened one."""
    resolution: ManualResolution | None = None
    updated_at: datetime | None = None


class IncidentKind(StrEnum):
    """Why a saga opened an incident."""

    STUCK = "stuck"
    """A forward step's attempts ran out; it is still retried, with backoff."""
    PARKED = "parked"
    """A step's attempts reached its policy's limit: no more attempts until an operator acts
    (or its ``park_for`` passes)."""
    COMPENSATION_FAILING = "compensation-failing"
    """A compensation keeps failing; it is never given up."""


class IncidentOpened(_Model):
    """Input of ``incident.open``: one incident, opened once per stuck episode of a step.

    ``incident_id`` is ``<workflow id>/<step>/<episode>``: the same for every redelivery."""

    incident_id: str
    saga_type: str
    """The saga's workflow type (``OrderSaga``, ``ReturnSaga``)."""
    workflow_id: str
    order_id: str
    step: str
    compensating: bool
    kind: IncidentKind
    attempts: int
    last_error: str | None = None
    opened_at: datetime


class IncidentResolved(_Model):
    """Input of ``incident.resolve``: how the incident ended."""

    incident_id: str
    saga_type: str
    workflow_id: str
    order_id: str
    step: str
    resolution: str
    """What ended it: ``recovered`` (an attempt succeeded), ``resolved-manually by <who>:
    <why>``, ``turned-back`` (the saga gave the step up and compensates), ``saga-ended``."""
    resolved_at: datetime


class IncidentRecorded(_Model):
    """Result of ``incident.open`` and ``incident.resolve``."""

    incident_id: str
    recorded: bool
    """False when it had been recorded before (a retried call)."""


class SagaNote(_Model):
    """Something the saga was asked and refused or ignored, and why."""

    at: datetime
    kind: str
    detail: str


class SagaStatus(_Model):
    """The answer of the ``status`` query."""

    order_id: str
    customer_id: str
    status: SagaPhase
    current_step: str | None
    steps: list[StepState]
    failure_reason: str | None = None
    failed_step: str | None = None
    notes: list[SagaNote] = Field(default_factory=list)


class OrderSagaResult(_Model):
    """What ``OrderSaga`` returns when it ends (completed, or cancelled and undone)."""

    order_id: str
    status: SagaPhase
    failure_reason: str | None = None
    failed_step: str | None = None
    payment_id: str | None = None
    reservation_id: str | None = None
    shipment_id: str | None = None
    tracking_number: str | None = None


class ShipmentDispatched(_Model):
    """Signal ``shipment_dispatched``: the carrier picked the parcel up."""

    order_id: str
    shipment_id: str
    tracking_number: str


class CancelOrderRequest(_Model):
    """Signal ``cancel_order``: the customer (or support) asks to cancel before dispatch."""

    reason: str
    requested_by: str


class RetryNowRequest(_Model):
    """Update ``retry_now``: stop waiting and try a stuck step or compensation again now."""

    step: str
    operator: str
    reason: str = ""
    """Why (for example: the payment processor is back); empty in requests from before it."""


class ResolveManuallyRequest(_Model):
    """Update ``resolve_manually``: an operator settled a stuck step by hand.

    For a stuck compensation, the saga counts it as compensated and goes on undoing the
    others. For a stuck forward step, the operator owns that step's outcome: the step
    counts as failed and the saga undoes the steps before it; past the saga's point of no
    return (its pivot), where nothing is undone, the step counts as done by hand and the
    saga goes on.
    """

    step: str
    reason: str = Field(min_length=1)
    operator: str = Field(min_length=1)


class OperatorActionResult(_Model):
    """What an operator update did."""

    step: str
    detail: str


# --- The return saga ------------------------------------------------------------------
#
# Activity names (task queue in the docstring). Each is idempotent by return id.

AUTHORIZE_RETURN = "order.authorize_return"
"""Orchestrator queue: check the return against the order and hold its quantities; emits
``return.authorized``, or ``return.rejected`` and then raises ``RETURN_REJECTED``."""
EXPIRE_RETURN = "order.expire_return"
"""Orchestrator queue: the compensation of ``order.authorize_return``: release the return's
held quantities; emits ``return.expired``. Safe when nothing was authorized."""
COMPLETE_RETURN = "order.complete_return"
"""Orchestrator queue: mark the return completed and emit ``return.completed``."""
ISSUE_RETURN_LABEL = "shipping.issue_return_label"
"""Shipping queue: issue a prepaid return label; emits ``shipping.return_label_issued``."""
VOID_RETURN_LABEL = "shipping.void_return_label"
"""Shipping queue: void the return's label, if any; emits ``shipping.return_label_voided``."""
RESTOCK = "inventory.restock"
"""Inventory queue: put the returned items back into stock; emits ``inventory.restocked``."""
REFUND_RETURN = "payment.refund_return"
"""Payment queue: refund the return's amount against the order's charge, never more than
was charged minus earlier refunds; emits ``payment.refunded.v2`` naming the return."""

RETURN_SAGA_WORKFLOW = "ReturnSaga"
RETURN_RECEIVED_SIGNAL = "return_received"

DEFAULT_RETURN_WINDOW_DAYS = 30
"""How long after its dispatch an order can be returned."""
DEFAULT_RETURN_DEADLINE_DAYS = 14
"""How long the customer's parcel has to reach the warehouse once the label is issued."""

LOST_PARCEL_REASON = "test:lost-parcel"
"""The test card of the expired path: the carrier simulator never delivers a return whose
``reason`` is exactly this, so the saga reaches its deadline."""

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$"
"""What an id may be: ASCII letters, digits and ``._@:-``, not starting with a sign."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)
]
"""An order or return id, at most 64 characters: ids end up in workflow ids, URLs, Kafka
keys and log lines, and nothing else is safe in all of them (as the API checks order ids)."""


def return_workflow_id(return_id: str) -> str:
    """The id of the saga of ``return_id``: one saga per return, found by its return id."""
    return f"return-{return_id}"


ReturnLine: TypeAlias = StockLine
"""One line of a return: a SKU and how many of it (more than zero) come back. The same
record as inventory's ``StockLine``, so the lines pass to shipping and inventory as they are."""


class ReturnRequest(_Model):
    """A customer's return: which items of which order come back, and why."""

    return_id: Identifier
    order_id: Identifier
    items: list[ReturnLine] = Field(min_length=1)
    reason: str = ""
    """The customer's words; ``LOST_PARCEL_REASON`` makes the carrier simulator lose it."""


class ReturnSagaInput(_Model):
    """Input of ``ReturnSaga``."""

    request: ReturnRequest
    customer_id: str
    """The order's customer, for the saga's search attributes and status."""
    window_seconds: int = Field(default=DEFAULT_RETURN_WINDOW_DAYS * 24 * 3600, gt=0)
    """How long after its dispatch the order can be returned."""
    deadline_seconds: int = Field(default=DEFAULT_RETURN_DEADLINE_DAYS * 24 * 3600, gt=0)
    """How long the parcel has to arrive once the label is issued; then the return expires."""


class AuthorizeReturnInput(_Model):
    """Input of ``order.authorize_return``; idempotent by return id."""

    request: ReturnRequest
    requested_at: datetime
    """When the customer asked (the saga's start): the window is measured to it, so a
    retry decides as the first attempt did."""
    window_seconds: int = Field(gt=0)


class AuthorizeReturnResult(_Model):
    """Result of ``order.authorize_return``: the return's lines priced as they were bought."""

    return_id: str
    order_id: str
    lines: list[PricedLine] = Field(min_length=1)
    amount: Money
    """What the refund will be: the sum of the lines."""
    payment_id: str
    """The order's charge, which the refund goes against."""


class ExpireReturnInput(_Model):
    """Input of ``order.expire_return``; idempotent by return id."""

    order_id: str
    return_id: str
    reason: str


class ExpireReturnResult(_Model):
    """Result of ``order.expire_return``: ``expired`` is false when nothing was held."""

    expired: bool


class CompleteReturnInput(_Model):
    """Input of ``order.complete_return``; idempotent by return id."""

    order_id: str
    return_id: str
    refund_id: str
    amount: Money


class CompleteReturnResult(_Model):
    """Result of ``order.complete_return``."""

    completed: bool


class IssueReturnLabelInput(_Model):
    """Input of ``shipping.issue_return_label``; idempotent by return id: one label each."""

    order_id: str
    return_id: str
    items: list[ReturnLine] = Field(min_length=1)
    reason: str = ""
    """The customer's reason (``ReturnRequest.reason``): ``LOST_PARCEL_REASON`` makes the
    carrier simulator never deliver the parcel (absent in requests from before it was sent)."""


class IssueReturnLabelResult(_Model):
    """Result of ``shipping.issue_return_label``."""

    label_id: str
    tracking_number: str


class VoidReturnLabelInput(_Model):
    """Input of ``shipping.void_return_label``; idempotent by return id, safe without a label."""

    order_id: str
    return_id: str
    reason: str


class VoidReturnLabelResult(_Model):
    """Result of ``shipping.void_return_label``: ``voided`` is false when there was no label."""

    voided: bool


class ReturnReceived(_Model):
    """Signal ``return_received``: the parcel reached the warehouse."""

    order_id: str
    return_id: str
    label_id: str


class RestockInput(_Model):
    """Input of ``inventory.restock``; idempotent by return id: restocked once."""

    order_id: str
    return_id: str
    items: list[ReturnLine] = Field(min_length=1)


class RestockResult(_Model):
    """Result of ``inventory.restock``: the lines put back into stock."""

    restocked: list[ReturnLine]


class RefundReturnInput(_Model):
    """Input of ``payment.refund_return``; idempotent by return id: one refund per return."""

    order_id: str
    return_id: str
    amount: Money


class RefundReturnResult(_Model):
    """Result of ``payment.refund_return``."""

    refund_id: str
    amount: Money
    """What was refunded."""


class ReturnOutcome(StrEnum):
    """How a return ended, or that it has not yet."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    """Restocked and refunded."""
    REJECTED = "REJECTED"
    """Refused at authorization: nothing was held, sent back or refunded."""
    EXPIRED = "EXPIRED"
    """The parcel did not arrive by the deadline: the label was voided, nothing refunded."""
    CANCELLED = "CANCELLED"
    """Undone for another reason (a step failed for good, or the workflow was cancelled)."""


class ReturnSagaResult(_Model):
    """What ``ReturnSaga`` returns when it ends."""

    return_id: str
    order_id: str
    outcome: ReturnOutcome
    failure_reason: str | None = None
    failed_step: str | None = None
    refund_id: str | None = None
    amount: Money | None = None
    """What was refunded, when the return completed."""


class ReturnStatus(SagaStatus):
    """The answer of a return saga's ``status`` query: the saga's steps, and the return."""

    return_id: str
    outcome: ReturnOutcome
