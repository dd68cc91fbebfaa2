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
    "ShippingReturnLabelIssued",
    "ShippingReturnLabelIssuedData",
    "ShippingReturnLabelVoided",
    "ShippingReturnLabelVoidedData",
    "ShippingReturnReceived",
    "ShippingReturnReceivedData",
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


class _ReturnLabelData(EventData):
    """What the events of a return label carry: the return and the label."""

    return_id: str = Field(min_length=1)
    label_id: str = Field(min_length=1)


class ShippingReturnLabelIssuedData(_ReturnLabelData):
    """A prepaid return label was issued to the customer."""

    tracking_number: str = Field(min_length=1)


class ShippingReturnLabelIssued(Event[ShippingReturnLabelIssuedData]):
    EVENT_TYPE = "shipping.return_label_issued.v1"


class ShippingReturnLabelVoidedData(_ReturnLabelData):
    """A return label was voided: the compensation of ``shipping.return_label_issued``."""

    reason: str = Field(min_length=1)


class ShippingReturnLabelVoided(Event[ShippingReturnLabelVoidedData]):
    EVENT_TYPE = "shipping.return_label_voided.v1"


class ShippingReturnReceivedData(_ReturnLabelData):
    """The returned parcel reached the warehouse under the label ``label_id``."""


class ShippingReturnReceived(Event[ShippingReturnReceivedData]):
    EVENT_TYPE = "shipping.return_received.v1"
