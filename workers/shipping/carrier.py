"""A simulated carrier that collects scheduled shipments after a delay, and brings returned
parcels to the warehouse after another."""

import asyncio
import time
import uuid

from contracts.activities import LOST_PARCEL_REASON
from contracts.events.shipping import ShippingDispatchedData, ShippingReturnReceivedData
from runtime import DomainEvents, Outbox, continue_trace
from workers.shipping.shipments import ReturnLabel, Shipment, ShipmentBook

__all__ = ["SOURCE", "CarrierSimulator"]

SOURCE = "shipping-service"


class CarrierSimulator:
    """Polls the shipments and dispatches those scheduled at least ``dispatch_delay`` ago.

    Each dispatch marks the shipment and writes ``shipping.dispatched`` in one transaction,
    and only a shipment still scheduled is dispatched, so a cancelled shipment never is and
    none is dispatched twice, even across restarts. Copies of the shipping service each run
    a carrier on the shared database: they may read the same due shipment, but the
    transactions take turns (``BEGIN IMMEDIATE``) and the second finds it no longer
    scheduled, so it dispatches nothing.

    Returns go the same way: a label issued at least ``return_delay`` ago is delivered (its
    parcel received, ``shipping.return_received``) once, unless it was voided first, or
    unless the return's reason is the test card ``LOST_PARCEL_REASON``: that parcel is lost
    and never arrives, so the return saga reaches its deadline.
    """

    def __init__(
        self,
        shipments: ShipmentBook,
        outbox: Outbox,
        *,
        dispatch_delay: float,
        return_delay: float = 5.0,
        poll_interval: float | None = None,
    ) -> None:
        self._shipments = shipments
        self._outbox = outbox
        self._events = DomainEvents(outbox, SOURCE)
        self._delay = dispatch_delay
        self._return_delay = return_delay
        shortest = min(dispatch_delay, return_delay)
        self._poll = (
            poll_interval if poll_interval is not None else min(max(shortest / 4, 0.01), 0.5)
        )

    async def run(self) -> None:
        """Dispatch due shipments and deliver due returns until cancelled."""
        while True:
            self.dispatch_due()
            self.deliver_returns_due()
            await asyncio.sleep(self._poll)

    def dispatch_due(self) -> int:
        """Dispatch every shipment that is due now; return how many were dispatched."""
        due = self._shipments.due_for_dispatch(time.time() - self._delay)
        return sum(self._dispatch(shipment) for shipment in due)

    def deliver_returns_due(self) -> int:
        """Deliver every returned parcel that is due now; return how many were delivered."""
        due = self._shipments.due_for_delivery(
            time.time() - self._return_delay, never_delivered=LOST_PARCEL_REASON
        )
        return sum(self._deliver(label) for label in due)

    def _deliver(self, label: ReturnLabel) -> bool:
        with self._shipments.transaction():
            if not self._shipments.receive(label):
                return False  # voided since it was read
            with continue_trace(
                self._trace_of(label.order_id, label.issued_event_id), "carrier return"
            ):
                self._events.emit(
                    ShippingReturnReceivedData(
                        order_id=label.order_id, return_id=label.return_id, label_id=label.label_id
                    ),
                    caused_by=label.issued_event_id,
                )
        return True

    def _dispatch(self, shipment: Shipment) -> bool:
        assert shipment.carrier is not None
        tracking_number = f"{shipment.carrier.upper()}{uuid.uuid4().int % 10**12:012d}"
        with self._shipments.transaction():
            dispatched = self._shipments.dispatch(shipment, tracking_number)
            if dispatched is None:
                return False  # cancelled since it was read
            trace = self._trace_of(shipment.order_id, shipment.scheduled_event_id)
            with continue_trace(trace, "carrier dispatch"):
                self._events.emit(
                    ShippingDispatchedData.model_validate(dispatched, from_attributes=True),
                    caused_by=shipment.scheduled_event_id,
                )
        return True

    def _trace_of(self, order_id: str, event_id: str | None) -> list[tuple[str, bytes]]:
        """The headers of the event that led here (``shipping.scheduled``, or
        ``shipping.return_label_issued``): what the carrier does is in its trace."""
        for row in self._outbox.rows_for_order(order_id):
            if row.event_id == event_id:
                return row.headers
        return []
