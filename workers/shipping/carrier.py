"""A simulated carrier that collects scheduled shipments after a delay."""

import asyncio
import time
import uuid

from contracts.events.shipping import ShippingDispatchedData
from runtime import DomainEvents, Outbox, continue_trace
from workers.shipping.shipments import Shipment, ShipmentBook

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
    """

    def __init__(
        self,
        shipments: ShipmentBook,
        outbox: Outbox,
        *,
        dispatch_delay: float,
        poll_interval: float | None = None,
    ) -> None:
        self._shipments = shipments
        self._outbox = outbox
        self._events = DomainEvents(outbox, SOURCE)
        self._delay = dispatch_delay
        self._poll = (
            poll_interval if poll_interval is not None else min(max(dispatch_delay / 4, 0.01), 0.5)
        )

    async def run(self) -> None:
        """Dispatch due shipments until cancelled."""
        while True:
            self.dispatch_due()
            await asyncio.sleep(self._poll)

    def dispatch_due(self) -> int:
        """Dispatch every shipment that is due now; return how many were dispatched."""
        due = self._shipments.due_for_dispatch(time.time() - self._delay)
        return sum(self._dispatch(shipment) for shipment in due)

    def _dispatch(self, shipment: Shipment) -> bool:
        assert shipment.carrier is not None
        tracking_number = f"{shipment.carrier.upper()}{uuid.uuid4().int % 10**12:012d}"
        with self._shipments.transaction():
            dispatched = self._shipments.dispatch(shipment, tracking_number)
            if dispatched is None:
                return False  # cancelled since it was read
            with continue_trace(self._scheduled_trace(shipment), "carrier dispatch"):
                self._events.emit(
                    ShippingDispatchedData.model_validate(dispatched, from_attributes=True),
                    caused_by=shipment.scheduled_event_id,
                )
        return True

    def _scheduled_trace(self, shipment: Shipment) -> list[tuple[str, bytes]]:
        """The headers of the shipment's ``shipping.scheduled``: the dispatch is in its trace."""
        for row in self._outbox.rows_for_order(shipment.order_id):
            if row.event_id == shipment.scheduled_event_id:
                return row.headers
        return []
