"""The saga's paths as the end-to-end tests drive them: what to order, how it ends, and the
exact events each order publishes, in order."""

from dataclasses import dataclass

PLACED, COMPLETED, CANCELLED = "order.placed.v1", "order.completed.v1", "order.cancelled.v1"
REPAIRED = "order.repaired.v1"
CHARGED, DECLINED, REFUNDED = "payment.completed.v1", "payment.failed.v1", "payment.refunded.v1"
RESERVED, NO_STOCK, RELEASED = (
    "inventory.reserved.v1",
    "inventory.unavailable.v1",
    "inventory.released.v1",
)
SCHEDULED, NOT_SHIPPABLE, SHIP_CANCELLED, DISPATCHED = (
    "shipping.scheduled.v1",
    "shipping.failed.v1",
    "shipping.cancelled.v1",
    "shipping.dispatched.v1",
)
ENDS = frozenset({COMPLETED, CANCELLED})
HAPPY_EVENTS = [PLACED, CHARGED, RESERVED, SCHEDULED, DISPATCHED, COMPLETED]


@dataclass(frozen=True)
class SagaPath:
    """One way an order goes: the order's knobs, its final status and its events."""

    name: str
    status: str
    events: list[str]
    token: str = "tok_visa"
    country: str = "DE"
    quantity: int = 2
    """Of the first line; more than the 1,000 in stock is refused."""
    deadline: int | None = None
    """Dispatch deadline in seconds; the stack's carrier takes longer than a short one."""
    customer_cancels: bool = False
    """The customer cancels once the shipment is scheduled, before the carrier dispatches."""


UNDONE_AFTER_SCHEDULING = [
    PLACED,
    CHARGED,
    RESERVED,
    SCHEDULED,
    SHIP_CANCELLED,
    RELEASED,
    REFUNDED,
    CANCELLED,
]

SAGA_PATHS = [
    SagaPath("happy", "COMPLETED", HAPPY_EVENTS),
    SagaPath("declined", "CANCELLED", [PLACED, DECLINED, CANCELLED], token="tok_chargeDeclined"),
    SagaPath(
        "no stock", "CANCELLED", [PLACED, CHARGED, NO_STOCK, REFUNDED, CANCELLED], quantity=5000
    ),
    SagaPath(
        "unsupported destination",
        "CANCELLED",
        [PLACED, CHARGED, RESERVED, NOT_SHIPPABLE, RELEASED, REFUNDED, CANCELLED],
        country="AQ",
    ),
    SagaPath("dispatch deadline", "CANCELLED", UNDONE_AFTER_SCHEDULING, deadline=1),
    SagaPath("customer cancels", "CANCELLED", UNDONE_AFTER_SCHEDULING, customer_cancels=True),
    SagaPath("flaky card", "COMPLETED", HAPPY_EVENTS, token="tok_flaky"),
]
