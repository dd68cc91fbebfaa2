"""The shipping activities and the carrier simulator against a real SQLite database."""

import asyncio

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contracts.activities import CancelShipmentInput, ScheduleShipmentInput
from contracts.errors import DESTINATION_UNSUPPORTED
from contracts.events.common import StockLine
from infra.config.settings import ConfigurationError, Settings
from runtime import Database, Outbox
from tests.support.activities import refused_each_time
from tests.unit.workers.conftest import EventsOf
from workers.shipping.activities import ShippingActivities
from workers.shipping.carrier import CarrierSimulator
from workers.shipping.shipments import ShipmentBook, ShipmentStatus, parse_countries

COUNTRIES = parse_countries(Settings().shipping_countries)


@pytest.fixture
def shipments(db: Database) -> ShipmentBook:
    return ShipmentBook(db)


@pytest.fixture
def shipping(shipments: ShipmentBook, outbox: Outbox) -> ShippingActivities:
    return ShippingActivities(shipments, outbox, COUNTRIES)


def _schedule(order_id: str, country: str = "DE") -> ScheduleShipmentInput:
    return ScheduleShipmentInput(
        order_id=order_id, country=country, items=[StockLine(sku="SKU-1001", quantity=2)]
    )


def _cancel(order_id: str) -> CancelShipmentInput:
    return CancelShipmentInput(order_id=order_id, reason="customer cancelled")


def test_the_default_countries_are_common_ones_without_antarctica() -> None:
    assert {"DE", "US", "FR", "GB", "JP"} <= COUNTRIES
    assert len(COUNTRIES) >= 20
    assert "AQ" not in COUNTRIES


def test_a_bad_country_list_is_a_configuration_error() -> None:
    assert parse_countries(" de, fr ,,US") == {"DE", "FR", "US"}
    with pytest.raises(ConfigurationError, match="SAGA_SHIPPING_COUNTRIES"):
        parse_countries("DE,Germany")


async def test_scheduling_twice_schedules_once(
    shipping: ShippingActivities, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    first = await env.run(shipping.schedule, _schedule("o1"))
    second = await env.run(shipping.schedule, _schedule("o1"))

    assert second == first
    assert first.carrier == "DHL"
    [event] = events_of("o1")
    assert event.event_type == "shipping.scheduled.v1"
    assert event.source == "shipping-service"
    assert event.data.shipment_id == first.shipment_id


async def test_an_unsupported_destination_is_refused_once(
    shipping: ShippingActivities, events_of: EventsOf
) -> None:
    await refused_each_time(shipping.schedule, _schedule("o2", "AQ"), DESTINATION_UNSUPPORTED)

    [event] = events_of("o2")
    assert event.event_type == "shipping.failed.v1"
    assert event.data.country == "AQ"
    assert event.data.shipment_id is None


async def test_the_carrier_dispatches_after_the_delay_exactly_once(
    shipping: ShippingActivities, shipments: ShipmentBook, outbox: Outbox, events_of: EventsOf
) -> None:
    carrier = CarrierSimulator(shipments, outbox, dispatch_delay=0.2, poll_interval=0.01)
    scheduled = await ActivityEnvironment().run(shipping.schedule, _schedule("o3"))
    running = asyncio.create_task(carrier.run())
    try:
        await asyncio.sleep(0.1)
        assert [e.event_type for e in events_of("o3")] == ["shipping.scheduled.v1"]
        await asyncio.sleep(0.4)  # many polls after the shipment was due
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    scheduled_event, dispatched = events_of("o3")
    assert dispatched.event_type == "shipping.dispatched.v1"
    assert dispatched.data.shipment_id == scheduled.shipment_id
    assert dispatched.data.carrier == "DHL"
    assert dispatched.data.tracking_number
    assert dispatched.causation_id == str(scheduled_event.event_id)
    shipment = shipments.shipment("o3")
    assert shipment is not None
    assert shipment.status is ShipmentStatus.DISPATCHED
    assert shipment.tracking_number == dispatched.data.tracking_number
    assert carrier.dispatch_due() == 0


async def test_cancel_before_dispatch_cancels_once_and_nothing_is_dispatched(
    shipping: ShippingActivities, shipments: ShipmentBook, outbox: Outbox, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    carrier = CarrierSimulator(shipments, outbox, dispatch_delay=0.0)
    await env.run(shipping.schedule, _schedule("o4"))

    assert (await env.run(shipping.cancel, _cancel("o4"))).cancelled
    assert (await env.run(shipping.cancel, _cancel("o4"))).cancelled
    assert carrier.dispatch_due() == 0

    events = events_of("o4")
    assert [e.event_type for e in events] == ["shipping.scheduled.v1", "shipping.cancelled.v1"]
    assert events[1].data.shipment_id == events[0].data.shipment_id


async def test_cancel_after_dispatch_is_refused_without_an_event(
    shipping: ShippingActivities, shipments: ShipmentBook, outbox: Outbox, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    await env.run(shipping.schedule, _schedule("o5"))
    assert CarrierSimulator(shipments, outbox, dispatch_delay=0.0).dispatch_due() == 1

    assert not (await env.run(shipping.cancel, _cancel("o5"))).cancelled
    assert [e.event_type for e in events_of("o5")] == [
        "shipping.scheduled.v1",
        "shipping.dispatched.v1",
    ]


async def test_cancel_of_nothing_scheduled_is_a_no_op(
    shipping: ShippingActivities, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    assert not (await env.run(shipping.cancel, _cancel("o6"))).cancelled

    with pytest.raises(ApplicationError):
        await env.run(shipping.schedule, _schedule("o7", "AQ"))
    assert not (await env.run(shipping.cancel, _cancel("o7"))).cancelled

    assert events_of("o6") == []
    assert [e.event_type for e in events_of("o7")] == ["shipping.failed.v1"]
