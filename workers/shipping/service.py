"""The shipping service process: its composition root."""

from contracts.task_queues import SHIPPING
from runtime import ServiceContext, ServiceParts, run_service
from workers.shipping.activities import ShippingActivities
from workers.shipping.carrier import CarrierSimulator
from workers.shipping.queries import database_path
from workers.shipping.shipments import ShipmentBook, parse_countries

__all__ = ["build", "main"]


def build(context: ServiceContext) -> ServiceParts:
    """The shipping service's activities and the carrier that collects what they schedule and
    delivers the returns they issue labels for."""
    shipments = ShipmentBook(context.db)
    shipping = ShippingActivities(
        shipments, context.outbox, parse_countries(context.settings.shipping_countries)
    )
    carrier = CarrierSimulator(
        shipments,
        context.outbox,
        dispatch_delay=context.settings.carrier_dispatch_delay_seconds,
        return_delay=context.settings.carrier_return_delay_seconds,
    )
    return ServiceParts(
        activities=[
            shipping.schedule,
            shipping.cancel,
            shipping.issue_return_label,
            shipping.void_return_label,
        ],
        background=[carrier.run],
    )


def main() -> None:
    """Run the shipping service until SIGTERM."""
    run_service(
        "shipping",
        task_queue=SHIPPING,
        database=database_path,
        migrations=ShipmentBook.MIGRATIONS,
        build=build,
    )
