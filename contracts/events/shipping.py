"""Events of the shipping service."""

from typing import ClassVar

from pydantic import Field

from contracts.envelope import CountryCode, Event, EventData

__all__ = [
    "ShippingCancelled",
    "ShippingCancelledData",
    "ShippingDispatched",
    "ShippingDispatchedData",
    "ShippingFailed",
    "ShippingFailedData",
    "ShippingScheduled",
    "ShippingScheduledData",
]


class ShippingScheduledData(EventData):
    """A carrier will collect the order."""

    shipment_id: str = Field(min_length=1)
    country: CountryCode
    carrier: str = Field(min_length=1)


class ShippingScheduled(Event[ShippingScheduledData]):
    """``shipping.scheduled.v1``."""

    EVENT_TYPE: ClassVar[str] = "shipping.scheduled.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class ShippingFailedData(EventData):
    """No shipment could be scheduled (an unsupported destination, say)."""

    # Neither exists when the refusal came before a carrier was chosen.
    shipment_id: str | None = None
    carrier: str | None = None
    country: CountryCode
    reason: str = Field(min_length=1)


class ShippingFailed(Event[ShippingFailedData]):
    """``shipping.failed.v1``."""

    EVENT_TYPE: ClassVar[str] = "shipping.failed.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class ShippingCancelledData(EventData):
    """A scheduled shipment was called off: the compensation of ``shipping.scheduled``."""

    shipment_id: str = Field(min_length=1)
    country: CountryCode
    carrier: str = Field(min_length=1)


class ShippingCancelled(Event[ShippingCancelledData]):
    """``shipping.cancelled.v1``."""

    EVENT_TYPE: ClassVar[str] = "shipping.cancelled.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class ShippingDispatchedData(EventData):
    """The carrier collected the parcel."""

    shipment_id: str = Field(min_length=1)
    country: CountryCode
    carrier: str = Field(min_length=1)
    tracking_number: str = Field(min_length=1)


class ShippingDispatched(Event[ShippingDispatchedData]):
    """``shipping.dispatched.v1``."""

    EVENT_TYPE: ClassVar[str] = "shipping.dispatched.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"
