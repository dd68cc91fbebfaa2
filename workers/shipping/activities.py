"""The shipping service's activities: schedule an order's shipment, cancel it; issue a
return's label, void it."""

import uuid
from collections.abc import Set

from temporalio import activity

from contracts.activities import (
    CANCEL_SHIPMENT,
    ISSUE_RETURN_LABEL,
    SCHEDULE_SHIPMENT,
    VOID_RETURN_LABEL,
    CancelShipmentInput,
    CancelShipmentResult,
    IssueReturnLabelInput,
    IssueReturnLabelResult,
    ScheduleShipmentInput,
    ScheduleShipmentResult,
    VoidReturnLabelInput,
    VoidReturnLabelResult,
)
from contracts.errors import DESTINATION_UNSUPPORTED
from contracts.events.shipping import (
    ShippingCancelledData,
    ShippingFailedData,
    ShippingReturnLabelIssuedData,
    ShippingReturnLabelVoidedData,
    ShippingScheduledData,
)
from runtime import DomainEvents, Outbox, refusal
from workers.shipping.carrier import SOURCE
from workers.shipping.shipments import LabelStatus, Shipment, ShipmentBook, ShipmentStatus

__all__ = ["ShippingActivities"]


class ShippingActivities:
    """Scheduling and cancelling, each once per order, and return labels issued and voided,
    each once per return, however often it is asked."""

    def __init__(self, shipments: ShipmentBook, outbox: Outbox, countries: Set[str]) -> None:
        self._shipments = shipments
        self._events = DomainEvents(outbox, SOURCE)
        self._countries = countries

    @activity.defn(name=SCHEDULE_SHIPMENT)
    async def schedule(self, input: ScheduleShipmentInput) -> ScheduleShipmentResult:
        """Book a carrier; a country not served is a non-retryable ``DestinationUnsupported``.

        A repeat returns the first answer (the same shipment, or the same refusal) without
        booking or publishing again.
        """
        with self._shipments.transaction():
            shipment = self._shipments.shipment(input.order_id) or self._schedule(input)
        if shipment.status is ShipmentStatus.REFUSED:
            raise refusal(
                DESTINATION_UNSUPPORTED, f"cannot ship order {shipment.order_id}: {shipment.reason}"
            )
        assert shipment.shipment_id is not None and shipment.carrier is not None
        return ScheduleShipmentResult(shipment_id=shipment.shipment_id, carrier=shipment.carrier)

    @activity.defn(name=CANCEL_SHIPMENT)
    async def cancel(self, input: CancelShipmentInput) -> CancelShipmentResult:
        """Call the shipment off; ``cancelled`` is False if none is scheduled or it left."""
        with self._shipments.transaction():
            shipment = self._shipments.shipment(input.order_id)
            if shipment is None or shipment.status in (
                ShipmentStatus.REFUSED,
                ShipmentStatus.DISPATCHED,
            ):
                return CancelShipmentResult(cancelled=False)
            if shipment.status is ShipmentStatus.SCHEDULED:
                self._shipments.cancel(shipment)
                self._events.emit(
                    ShippingCancelledData.model_validate(shipment, from_attributes=True)
                )
        return CancelShipmentResult(cancelled=True)

    @activity.defn(name=ISSUE_RETURN_LABEL)
    async def issue_return_label(self, input: IssueReturnLabelInput) -> IssueReturnLabelResult:
        """Issue the return's prepaid label; a repeat returns the same label, published once."""
        with self._shipments.transaction():
            label = self._shipments.label(input.return_id)
            if label is None:
                event_id = uuid.uuid4()
                label = self._shipments.issue_label(
                    input.order_id,
                    input.return_id,
                    [item.model_dump(mode="json") for item in input.items],
                    input.reason,
                    event_id=str(event_id),
                )
                self._events.emit(
                    ShippingReturnLabelIssuedData(
                        order_id=label.order_id,
                        return_id=label.return_id,
                        label_id=label.label_id,
                        tracking_number=label.tracking_number,
                    ),
                    event_id=event_id,
                )
        return IssueReturnLabelResult(
            label_id=label.label_id, tracking_number=label.tracking_number
        )

    @activity.defn(name=VOID_RETURN_LABEL)
    async def void_return_label(self, input: VoidReturnLabelInput) -> VoidReturnLabelResult:
        """Void the return's label; ``voided`` is False if none was issued or its parcel
        was already received."""
        with self._shipments.transaction():
            label = self._shipments.label(input.return_id)
            if label is None or label.status is LabelStatus.RECEIVED:
                return VoidReturnLabelResult(voided=False)
            if label.status is LabelStatus.ISSUED:
                self._shipments.void_label(label, input.reason)
                self._events.emit(
                    ShippingReturnLabelVoidedData(
                        order_id=label.order_id,
                        return_id=label.return_id,
                        label_id=label.label_id,
                        reason=input.reason,
                    )
                )
        return VoidReturnLabelResult(voided=True)

    def _schedule(self, input: ScheduleShipmentInput) -> Shipment:
        """Inside the caller's transaction: book the shipment, or record the refusal."""
        items = [item.model_dump(mode="json") for item in input.items]
        if input.country not in self._countries:
            reason = f"no carrier delivers to {input.country}"
            refused = self._shipments.refuse(input.order_id, input.country, items, reason)
            self._events.emit(
                ShippingFailedData(order_id=input.order_id, country=input.country, reason=reason)
            )
            return refused
        event_id = uuid.uuid4()
        shipment = self._shipments.schedule(
            input.order_id, input.country, items, event_id=str(event_id)
        )
        self._events.emit(
            ShippingScheduledData.model_validate(shipment, from_attributes=True),
            event_id=event_id,
        )
        return shipment
