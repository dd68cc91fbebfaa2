"""Events back into the saga: the carrier's ``shipping.dispatched`` becomes a signal."""

import logging

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.activities import SHIPMENT_DISPATCHED_SIGNAL, ShipmentDispatched, saga_workflow_id
from contracts.envelope import AnyEvent
from contracts.events.shipping import ShippingDispatched
from runtime import Database

__all__ = ["DispatchBridge"]

log = logging.getLogger(__name__)


class DispatchBridge:
    """Signals the waiting saga when its shipment was dispatched.

    A saga that is already past that point ignores the signal, and a saga that has ended
    cannot be signalled: both are fine, the event changes nothing.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    async def on_event(self, event: AnyEvent, db: Database) -> None:
        """Handler of the bridge's consumer."""
        if not isinstance(event, ShippingDispatched):
            return
        order_id = event.data.order_id
        handle = self._client.get_workflow_handle(saga_workflow_id(order_id))
        try:
            await handle.signal(
                SHIPMENT_DISPATCHED_SIGNAL,
                ShipmentDispatched(
                    order_id=order_id,
                    shipment_id=event.data.shipment_id,
                    tracking_number=event.data.tracking_number,
                ),
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("saga of order %s has ended: dispatch of %s ignored", order_id, event.event_id)
