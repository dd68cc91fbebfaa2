"""Events of the order service: the saga's start, its two endings, and operators' repairs."""

from pydantic import Field

from contracts.envelope import CountryCode, Event, EventData
from contracts.events.common import Money, OrderLine

__all__ = [
    "OrderCancelled",
    "OrderCancelledData",
    "OrderCompleted",
    "OrderCompletedData",
    "OrderPlaced",
    "OrderPlacedData",
    "OrderPlacedV2",
    "OrderPlacedV2Data",
    "OrderRepaired",
    "OrderRepairedData",
]


class OrderPlacedData(EventData):
    """A customer placed an order; only the country of the address travels (no PII)."""

    customer_id: str = Field(min_length=1)
    items: list[OrderLine] = Field(min_length=1)
    total: Money
    shipping_country: CountryCode


class OrderPlaced(Event[OrderPlacedData]):
    """The saga starts."""

    EVENT_TYPE = "order.placed.v1"


class OrderPlacedV2Data(OrderPlacedData):
    """``order.placed`` data of version 2: adds the sales channel, when it is known."""

    channel: str | None = None


class OrderPlacedV2(Event[OrderPlacedV2Data]):
    """The saga starts, and says through which channel."""

    EVENT_TYPE = "order.placed.v2"


class OrderCompletedData(EventData):
    """Every step succeeded: the ids of what each service holds for the order."""

    payment_id: str = Field(min_length=1)
    reservation_id: str = Field(min_length=1)
    shipment_id: str = Field(min_length=1)


class OrderCompleted(Event[OrderCompletedData]):
    """The saga ended with the order fulfilled."""

    EVENT_TYPE = "order.completed.v1"


class OrderCancelledData(EventData):
    """The order was cancelled and every completed step compensated."""

    reason: str = Field(min_length=1)
    failed_step: str | None = None
    """The saga step that failed (``charge_payment``), or none when the customer cancelled."""


class OrderCancelled(Event[OrderCancelledData]):
    """The saga ended without fulfilling the order."""

    EVENT_TYPE = "order.cancelled.v1"


class OrderRepairedData(EventData):
    """An operator acted on the order's saga: what, on which step, who, and why."""

    action: str = Field(pattern=r"^(retry_now|resolve_manually)$")
    step: str = Field(min_length=1)
    operator: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    detail: str
    """What the saga answered."""


class OrderRepaired(Event[OrderRepairedData]):
    """An operator retried or settled a stuck step of the saga."""

    EVENT_TYPE = "order.repaired.v1"
