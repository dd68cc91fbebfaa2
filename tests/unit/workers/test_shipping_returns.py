"""Return labels and the carrier's return deliveries, on a real store (SQLite, PostgreSQL)."""

import asyncio

import pytest
from temporalio.testing import ActivityEnvironment

from contracts.activities import (
    LOST_PARCEL_REASON,
    IssueReturnLabelInput,
    ScheduleShipmentInput,
    VoidReturnLabelInput,
)
from contracts.events.common import StockLine
from infra.config.settings import Settings
from runtime import Database, Outbox
from tests.unit.workers.conftest import EventsOf
from workers.shipping.activities import ShippingActivities
from workers.shipping.carrier import CarrierSimulator
from workers.shipping.shipments import LabelStatus, ShipmentBook, parse_countries


@pytest.fixture
def shipments(db: Database) -> ShipmentBook:
    return ShipmentBook(db)


@pytest.fixture
def shipping(shipments: ShipmentBook, outbox: Outbox) -> ShippingActivities:
    return ShippingActivities(shipments, outbox, parse_countries(Settings().shipping_countries))


def _issue(order_id: str, return_id: str, reason: str = "too small") -> IssueReturnLabelInput:
    return IssueReturnLabelInput(
        order_id=order_id,
        return_id=return_id,
        items=[StockLine(sku="SKU-1001", quantity=1)],
        reason=reason,
    )


def _void(order_id: str, return_id: str) -> VoidReturnLabelInput:
    return VoidReturnLabelInput(order_id=order_id, return_id=return_id, reason="deadline passed")


def _types(events_of: EventsOf, order_id: str) -> list[str]:
    return [event.event_type for event in events_of(order_id)]


async def test_issuing_twice_issues_one_label_with_the_orders_carrier(
    shipping: ShippingActivities, shipments: ShipmentBook, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    await env.run(
        shipping.schedule,
        ScheduleShipmentInput(
            order_id="o1", country="US", items=[StockLine(sku="SKU-1001", quantity=1)]
        ),
    )

    first = await env.run(shipping.issue_return_label, _issue("o1", "r1"))
    second = await env.run(shipping.issue_return_label, _issue("o1", "r1"))

    assert second == first
    assert first.tracking_number.startswith("UPSR")
    [issued] = [e for e in events_of("o1") if e.event_type == "shipping.return_label_issued.v1"]
    assert issued.data.return_id == "r1"
    assert issued.data.label_id == first.label_id
    assert issued.data.tracking_number == first.tracking_number
    label = shipments.label("r1")
    assert label is not None and label.status is LabelStatus.ISSUED


async def test_voiding_twice_voids_once_and_voiding_nothing_is_a_no_op(
    shipping: ShippingActivities, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    issued = await env.run(shipping.issue_return_label, _issue("o2", "r2"))

    assert (await env.run(shipping.void_return_label, _void("o2", "r2"))).voided
    assert (await env.run(shipping.void_return_label, _void("o2", "r2"))).voided
    assert not (await env.run(shipping.void_return_label, _void("o2", "never-issued"))).voided

    assert _types(events_of, "o2") == [
        "shipping.return_label_issued.v1",
        "shipping.return_label_voided.v1",
    ]
    voided = events_of("o2")[1]
    assert (voided.data.label_id, voided.data.reason) == (issued.label_id, "deadline passed")


async def test_the_carrier_delivers_a_return_after_the_delay_exactly_once(
    shipping: ShippingActivities, shipments: ShipmentBook, outbox: Outbox, events_of: EventsOf
) -> None:
    carrier = CarrierSimulator(
        shipments, outbox, dispatch_delay=60, return_delay=0.2, poll_interval=0.01
    )
    issued = await ActivityEnvironment().run(shipping.issue_return_label, _issue("o3", "r3"))
    running = asyncio.create_task(carrier.run())
    try:
        await asyncio.sleep(0.1)
        assert _types(events_of, "o3") == ["shipping.return_label_issued.v1"]
        await asyncio.sleep(0.4)  # many polls after the parcel was due
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    issued_event, received = events_of("o3")
    assert received.event_type == "shipping.return_received.v1"
    assert (received.data.return_id, received.data.label_id) == ("r3", issued.label_id)
    assert received.causation_id == str(issued_event.event_id)
    assert carrier.deliver_returns_due() == 0
    label = shipments.label("r3")
    assert label is not None and label.status is LabelStatus.RECEIVED
    # The parcel is in: its label can no longer be voided.
    assert not (
        await ActivityEnvironment().run(shipping.void_return_label, _void("o3", "r3"))
    ).voided
    assert len(events_of("o3")) == 2


async def test_a_lost_parcel_and_a_voided_label_are_never_delivered(
    shipping: ShippingActivities, shipments: ShipmentBook, outbox: Outbox, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    carrier = CarrierSimulator(shipments, outbox, dispatch_delay=0, return_delay=0)
    await env.run(shipping.issue_return_label, _issue("o4", "lost", LOST_PARCEL_REASON))
    await env.run(shipping.issue_return_label, _issue("o4", "voided"))
    await env.run(shipping.void_return_label, _void("o4", "voided"))

    assert carrier.deliver_returns_due() == 0

    assert _types(events_of, "o4") == [
        "shipping.return_label_issued.v1",
        "shipping.return_label_issued.v1",
        "shipping.return_label_voided.v1",
    ]
    lost = shipments.label("lost")
    assert lost is not None and lost.status is LabelStatus.ISSUED
