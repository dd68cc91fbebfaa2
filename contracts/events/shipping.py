"""Events of the shipping service."""

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


class _ShipmentData(EventData):
    """What the events of a scheduled shipment carry: its id, destination and carrier."""

    shipment_id: str = Field(min_length=1)
    country: CountryCode
    carrier: str = Field(min_length=1)


class ShippingScheduledData(_ShipmentData):
    """A carrier will collect the order."""


class ShippingScheduled(Event[ShippingScheduledData]):
    EVENT_TYPE = "shipping.scheduled.v1"


class ShippingFailedData(EventData):
    """No shipment could be scheduled (an unsupported destination, say)."""

    # Neither exists when the refusal came before a carrier was chosen.
    shipment_id: str | None = None
    carrier: str | None = None
    country: CountryCode
    reason: str = Field(min_length=1)


class ShippingFailed(Event[ShippingFailedData]):
    EVENT_TYPE = "shipping.failed.v1"


class ShippingCancelledData(_ShipmentData):
    """A scheduled shipment was called off: the compensation of ``shipping.scheduled``."""


class ShippingCancelled(Event[ShippingCancelledData]):
    EVENT_TYPE = "shipping.cancelled.v1"


class ShippingDispatchedData(_ShipmentData):
    """The carrier collected the parcel."""

    tracking_number: str = Field(min_length=1)


class ShippingDispatched(Event[ShippingDispatchedData]):
    EVENT_TYPE = "shipping.dispatched.v1"
