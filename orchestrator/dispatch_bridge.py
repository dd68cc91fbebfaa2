"""Events back into the sagas: the carrier's ``shipping.dispatched`` becomes the order saga's
signal, its ``shipping.return_received`` the return saga's."""

import logging

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.activities import (
    RETURN_RECEIVED_SIGNAL,
    SHIPMENT_DISPATCHED_SIGNAL,
    ReturnReceived,
    ShipmentDispatched,
    return_workflow_id,
    saga_workflow_id,
)
from contracts.envelope import AnyEvent
from contracts.events.shipping import ShippingDispatched, ShippingReturnReceived
from runtime import Database

__all__ = ["DispatchBridge"]

log = logging.getLogger(__name__)


class DispatchBridge:
    """Signals the waiting saga when its shipment was dispatched, or its return received.

    A saga that is already past that point ignores the signal, and a saga that has ended (or
    never existed) cannot be signalled: both are fine, the event changes nothing.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    async def on_event(self, event: AnyEvent, db: Database) -> None:
        """Handler of the bridge's consumer."""
        if isinstance(event, ShippingDispatched):
            order_id = event.data.order_id
            signalled = await self._signal(
                saga_workflow_id(order_id),
                SHIPMENT_DISPATCHED_SIGNAL,
                ShipmentDispatched(
                    order_id=order_id,
                    shipment_id=event.data.shipment_id,
                    tracking_number=event.data.tracking_number,
                ),
            )
            if not signalled:
                log.info(
                    "saga of order %s has ended: dispatch of %s ignored", order_id, event.event_id
                )
        elif isinstance(event, ShippingReturnReceived):
            return_id = event.data.return_id
            signalled = await self._signal(
                return_workflow_id(return_id),
                RETURN_RECEIVED_SIGNAL,
                ReturnReceived(
                    order_id=event.data.order_id,
                    return_id=return_id,
                    label_id=event.data.label_id,
                ),
            )
            if not signalled:
                log.info(
                    "saga of return %s has ended: receipt of %s ignored", return_id, event.event_id
                )

    async def _signal(self, workflow_id: str, signal: str, arg: object) -> bool:
        """Signal the workflow; False if it does not exist or has ended."""
        try:
            await self._client.get_workflow_handle(workflow_id).signal(signal, arg)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        return True
