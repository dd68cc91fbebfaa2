"""What an event class need not say: its version by default, and which data it carries."""

import pytest

from contracts import (
    Event,
    EventData,
    Money,
    OrderLine,
    OrderPlaced,
    OrderPlacedData,
    OrderPlacedV2,
    OrderPlacedV2Data,
    PaymentRefunded,
    PaymentRefundedData,
    model_carrying,
)

_PLACED = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "items": [OrderLine(sku="SKU-1", quantity=1, unit_price_minor=100)],
    "total": Money(amount_minor=100, currency="EUR"),
    "shipping_country": "DE",
}


def test_an_event_without_a_version_is_version_n_0_0_of_its_type() -> None:
    """``order.placed.v2`` is ``2.0.0`` unless the class says otherwise."""

    class _Placed(Event[OrderPlacedV2Data]):
        EVENT_TYPE = "order.placed.v2"

    assert _Placed.EVENT_VERSION == "2.0.0"
    assert OrderPlaced.EVENT_VERSION == "1.0.0"


def test_an_event_may_declare_a_minor_version() -> None:
    """A schema changed within its major version says so, and keeps saying it."""

    class _Placed(Event[OrderPlacedData]):
        EVENT_TYPE = "order.placed.v1"
        EVENT_VERSION = "1.1.0"

    event = _Placed(data=OrderPlacedData(**_PLACED), correlation_id="o-1", source="test")
    assert event.event_version == "1.1.0"


def test_data_finds_the_one_event_that_carries_it() -> None:
    """The runtime emits an event from its data alone: each data model has one event."""
    refunded = PaymentRefundedData(
        order_id="o-1", payment_id="pay-1", amount=Money(amount_minor=100, currency="EUR")
    )

    assert model_carrying(refunded) is PaymentRefunded
    assert model_carrying(OrderPlacedData(**_PLACED)) is OrderPlaced
    assert model_carrying(OrderPlacedV2Data(**_PLACED, channel="web")) is OrderPlacedV2


def test_data_of_no_event_of_the_catalog_finds_none() -> None:
    """Data the catalog does not know is an error, not some other event."""

    class _Stray(EventData):
        pass

    with pytest.raises(KeyError):
        model_carrying(_Stray(order_id="o-1"))
