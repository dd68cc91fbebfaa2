"""The envelope fills in what a producer should not have to spell out, and checks the rest."""

from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar
from uuid import UUID

import pytest
from pydantic import ValidationError

from contracts import (
    Event,
    Money,
    OrderPlaced,
    OrderPlacedData,
    PaymentCompleted,
    PaymentCompletedData,
)
from tests.support.samples import ORDER_ID, TOTAL, order_placed_data


def _payment(**envelope: object) -> PaymentCompleted:
    return PaymentCompleted.model_validate(
        {
            "data": PaymentCompletedData(order_id=ORDER_ID, payment_id="pay-1", amount=TOTAL),
            "correlation_id": ORDER_ID,
            "source": "payment-service",
            **envelope,
        }
    )


def test_an_event_needs_only_its_data_correlation_and_source() -> None:
    """Id, type, version and timestamp default to a fresh UUID4, the class's own and now."""
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    event = OrderPlaced(data=order_placed_data(), correlation_id=ORDER_ID, source="order-service")

    assert isinstance(event.event_id, UUID)
    assert event.event_id.version == 4
    assert event.event_type == "order.placed.v1"
    assert event.event_version == "1.0.0"
    assert event.causation_id is None
    assert before <= event.timestamp <= datetime.now(UTC)
    assert event.timestamp.tzinfo is UTC


def test_every_event_gets_its_own_id() -> None:
    """Two events built alike still have different ids."""
    assert _payment().event_id != _payment().event_id


def test_the_envelope_serialises_with_camel_case_names() -> None:
    """Dumped, the envelope uses the design's camelCase names and the data its snake_case."""
    dumped = _payment(causation_id="cmd-1").model_dump()

    assert set(dumped) == {
        "eventId",
        "eventType",
        "eventVersion",
        "timestamp",
        "source",
        "correlationId",
        "causationId",
        "data",
    }
    assert dumped["causationId"] == "cmd-1"
    assert set(dumped["data"]) == {"order_id", "payment_id", "amount"}


def test_camel_case_names_are_accepted_too() -> None:
    """A record read off the wire, with camelCase keys, validates into the same event."""
    event = _payment()

    assert PaymentCompleted.model_validate(event.model_dump()) == event


def test_another_event_type_is_refused() -> None:
    """A class only carries its own event type."""
    with pytest.raises(ValidationError, match=r"carries 'payment\.completed\.v1'"):
        _payment(event_type="payment.failed.v1")


def test_another_event_version_is_refused() -> None:
    """A class only carries its own schema version."""
    with pytest.raises(ValidationError, match=r"is version 1\.0\.0"):
        _payment(event_version="2.0.0")


def test_a_naive_timestamp_is_refused() -> None:
    """A timestamp without a time zone is ambiguous, so it is refused."""
    with pytest.raises(ValidationError, match="timezone-aware"):
        _payment(timestamp=datetime(2025, 1, 1, 12, 0))  # noqa: DTZ001 - the point of the test


def test_timestamps_are_kept_in_utc_at_millisecond_precision() -> None:
    """What Avro's timestamp-millis keeps is what the model keeps."""
    plus_two = timezone(timedelta(hours=2))
    event = _payment(timestamp=datetime(2025, 1, 1, 14, 0, 0, 123456, tzinfo=plus_two))

    assert event.timestamp == datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC


def test_the_correlation_id_must_be_the_order_id() -> None:
    """An event correlated with another order than its data's is refused."""
    with pytest.raises(ValidationError, match="is not the order id"):
        _payment(correlation_id="order-other")


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", ""])
def test_a_currency_is_three_upper_case_letters(currency: str) -> None:
    """Money's currency is an ISO 4217 code."""
    with pytest.raises(ValidationError, match="currency"):
        Money(amount_minor=100, currency=currency)


def test_money_is_never_negative() -> None:
    """Amounts are minor units, zero or more."""
    with pytest.raises(ValidationError, match="amount_minor"):
        Money(amount_minor=-1, currency="EUR")


@pytest.mark.parametrize("country", ["de", "DEU", "D"])
def test_a_country_is_an_alpha_2_code(country: str) -> None:
    """The shipping country is ISO 3166-1 alpha-2."""
    with pytest.raises(ValidationError, match="shipping_country"):
        OrderPlacedData.model_validate(
            {**order_placed_data().model_dump(), "shipping_country": country}
        )


def test_events_are_immutable() -> None:
    """An event is a fact: it cannot be changed after it is built."""
    event = _payment()

    with pytest.raises(ValidationError, match="frozen"):
        event.source = "someone-else"  # type: ignore[misc]


def test_unknown_fields_are_refused() -> None:
    """A misspelt field is an error, not silently dropped."""
    with pytest.raises(ValidationError, match="extra"):
        _payment(causation="cmd-1")


def test_an_event_class_with_a_mismatched_version_is_refused_when_declared() -> None:
    """``order.placed.v2`` cannot claim schema version 1.x: the mistake fails at import."""
    with pytest.raises(TypeError, match="does not match"):

        class _Mislabelled(Event[OrderPlacedData]):
            EVENT_TYPE: ClassVar[str] = "order.placed.v2"
            EVENT_VERSION: ClassVar[str] = "1.1.0"


def test_an_event_class_with_a_malformed_type_is_refused_when_declared() -> None:
    """An event type must read ``{domain}.{action}.v{N}``."""
    with pytest.raises(TypeError, match="is not"):

        class _Malformed(Event[OrderPlacedData]):
            EVENT_TYPE: ClassVar[str] = "OrderPlaced"
            EVENT_VERSION: ClassVar[str] = "1.0.0"
