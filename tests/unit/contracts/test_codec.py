"""Events go onto Kafka as Avro with self-describing headers, and come back unchanged."""

import pytest

from contracts import (
    CONTENT_TYPE,
    EVENT_TYPES,
    AnyEvent,
    EncodedEvent,
    Money,
    OrderPlaced,
    OrderPlacedV2,
    OrderPlacedV2Data,
    PaymentCompleted,
    PaymentCompletedData,
    SchemaViolation,
    UndecodableEvent,
    UndecodableReason,
    UnknownEventType,
    decode_event,
    encode_event,
    schema_for,
)
from tests.support.samples import ORDER_ID, order_placed_data, sample_events

SAMPLES = sample_events()


def _headers(encoded: EncodedEvent, **replaced: bytes) -> list[tuple[str, bytes]]:
    return [(name, replaced.get(name, value)) for name, value in encoded.headers]


def _undecodable(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reader_type: str | None = None
) -> UndecodableReason:
    with pytest.raises(UndecodableEvent) as caught:
        decode_event(value, headers, reader_type)
    return caught.value.reason


def test_every_event_type_has_a_sample() -> None:
    """The round-trip below covers the whole catalog."""
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_survives_a_round_trip(event_type: str) -> None:
    """Encoded then decoded, an event equals itself and has its own model."""
    event = SAMPLES[event_type]

    encoded = encode_event(event)
    decoded = decode_event(encoded.value, encoded.headers)

    assert decoded == event
    assert type(decoded) is type(event)


def test_the_record_is_keyed_by_order_and_sent_to_its_domain_topic() -> None:
    """Key is the order id in UTF-8; the topic is the domain's."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])

    assert encoded.topic == "payment.events"
    assert encoded.key == ORDER_ID.encode("utf-8")


def test_headers_name_the_type_the_schema_and_the_content_type() -> None:
    """The headers say how to read the value, without a schema registry."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])

    assert encoded.headers == [
        ("event_type", b"payment.completed.v1"),
        ("schema_fingerprint", schema_for("payment.completed.v1").fingerprint.encode()),
        ("content_type", CONTENT_TYPE.encode()),
    ]
    assert CONTENT_TYPE == "application/avro"


def test_the_value_is_plain_avro_without_registry_framing() -> None:
    """No Confluent magic byte and schema id in front of the Avro binary."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])

    # Avro writes the first field, the 36-character eventId string, as zigzag(36) = 72.
    assert encoded.value[0] == 72


def test_other_headers_are_ignored() -> None:
    """Tracing headers and the like travel alongside ours without disturbing decoding."""
    event = SAMPLES["inventory.reserved.v1"]
    encoded = encode_event(event)

    headers = [("traceparent", b"00-abc-def-01"), *encoded.headers, ("retry", b"\xff")]

    assert decode_event(encoded.value, headers) == event


def test_data_outside_its_schema_is_refused_before_publishing() -> None:
    """An amount beyond Avro's long raises SchemaViolation naming the field."""
    event = PaymentCompleted(
        data=PaymentCompletedData(
            order_id=ORDER_ID, payment_id="pay-1", amount=Money(amount_minor=2**63, currency="EUR")
        ),
        correlation_id=ORDER_ID,
        source="payment-service",
    )

    with pytest.raises(SchemaViolation, match="'amount_minor'") as caught:
        encode_event(event)

    assert caught.value.field == "amount_minor"
    assert caught.value.record == "Money"
    assert caught.value.event_type == "payment.completed.v1"


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_a_model_bypassing_validation_is_still_refused() -> None:
    """Even an unvalidated model cannot put a wrongly typed field on the wire."""
    event = SAMPLES["payment.completed.v1"]
    forged = event.model_copy(update={"data": event.data.model_copy(update={"payment_id": 42})})

    with pytest.raises(SchemaViolation, match="'payment_id'") as caught:
        encode_event(forged)

    assert caught.value.field == "payment_id"
    assert caught.value.record == "PaymentCompletedData"


@pytest.mark.parametrize(
    ("written", "reader_type", "expected"),
    [
        ("order.placed.v1", "order.placed.v1", OrderPlaced),
        ("order.placed.v1", "order.placed.v2", OrderPlacedV2),
        ("order.placed.v2", "order.placed.v1", OrderPlaced),
        ("order.placed.v2", "order.placed.v2", OrderPlacedV2),
    ],
)
def test_v1_and_v2_readers_read_both_versions(
    written: str, reader_type: str, expected: type[AnyEvent]
) -> None:
    """Either version of order.placed is read by a consumer on either version."""
    event = SAMPLES[written]
    encoded = encode_event(event)

    decoded = decode_event(encoded.value, encoded.headers, reader_type)

    assert type(decoded) is expected
    assert decoded.event_type == reader_type
    assert decoded.event_id == event.event_id
    assert decoded.timestamp == event.timestamp
    assert decoded.data.total == event.data.total
    assert decoded.data.items == event.data.items


def test_a_v2_reader_defaults_the_channel_of_a_v1_record() -> None:
    """The field v1 lacks is filled with its schema default."""
    encoded = encode_event(SAMPLES["order.placed.v1"])

    decoded = decode_event(encoded.value, encoded.headers, "order.placed.v2")

    assert isinstance(decoded.data, OrderPlacedV2Data)
    assert decoded.data.channel is None


def test_a_v1_reader_drops_the_channel_of_a_v2_record() -> None:
    """The field v1 does not know is skipped, and the rest equals the v1 data."""
    encoded = encode_event(SAMPLES["order.placed.v2"])

    decoded = decode_event(encoded.value, encoded.headers, "order.placed.v1")

    assert decoded.data == order_placed_data()


def test_a_reader_of_another_event_is_refused() -> None:
    """A payment record cannot be read as an order event."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])

    assert (
        _undecodable(encoded.value, encoded.headers, "order.placed.v1")
        is UndecodableReason.INCOMPATIBLE_READER
    )


def test_an_unknown_reader_type_is_the_callers_mistake() -> None:
    """Asking for a reader outside the catalog raises UnknownEventType."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])

    with pytest.raises(UnknownEventType):
        decode_event(encoded.value, encoded.headers, "payment.completed.v9")


ENCODED = encode_event(SAMPLES["payment.completed.v1"])
OTHER = encode_event(SAMPLES["payment.failed.v1"])


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        pytest.param(b"", ENCODED.headers, UndecodableReason.EMPTY_VALUE, id="empty value"),
        pytest.param(None, ENCODED.headers, UndecodableReason.EMPTY_VALUE, id="tombstone"),
        # Without the legacy headers a record must be framed, and a legacy body is not.
        pytest.param(ENCODED.value, None, UndecodableReason.NOT_FRAMED, id="no headers"),
        pytest.param(
            ENCODED.value,
            [h for h in ENCODED.headers if h[0] != "schema_fingerprint"],
            UndecodableReason.MISSING_HEADER,
            id="no fingerprint",
        ),
        pytest.param(
            ENCODED.value,
            _headers(ENCODED, event_type=b"\xffpayment"),
            UndecodableReason.GARBLED_HEADER,
            id="garbled header",
        ),
        pytest.param(
            ENCODED.value,
            [*ENCODED.headers, ("event_type", b"payment.failed.v1")],
            UndecodableReason.GARBLED_HEADER,
            id="conflicting headers",
        ),
        pytest.param(
            ENCODED.value,
            _headers(ENCODED, content_type=b"application/json"),
            UndecodableReason.UNSUPPORTED_CONTENT_TYPE,
            id="json",
        ),
        pytest.param(
            ENCODED.value,
            _headers(ENCODED, event_type=b"payment.teleported.v1", schema_fingerprint=b"0" * 16),
            UndecodableReason.UNKNOWN_EVENT_TYPE,
            id="unknown event type",
        ),
        pytest.param(
            ENCODED.value,
            _headers(ENCODED, schema_fingerprint=b"0123456789abcdef"),
            UndecodableReason.UNKNOWN_FINGERPRINT,
            id="unknown fingerprint",
        ),
        pytest.param(
            ENCODED.value,
            _headers(ENCODED, schema_fingerprint=OTHER.headers[1][1]),
            UndecodableReason.HEADER_MISMATCH,
            id="fingerprint of another type",
        ),
        pytest.param(
            b'{"eventId": "not avro"}', ENCODED.headers, UndecodableReason.NOT_AVRO, id="json"
        ),
        pytest.param(
            ENCODED.value[: len(ENCODED.value) // 2],
            ENCODED.headers,
            UndecodableReason.NOT_AVRO,
            id="truncated",
        ),
        pytest.param(
            ENCODED.value + b"\x00", ENCODED.headers, UndecodableReason.NOT_AVRO, id="trailing"
        ),
        pytest.param(
            OTHER.value,
            _headers(
                OTHER,
                event_type=b"payment.completed.v1",
                schema_fingerprint=ENCODED.headers[1][1],
            ),
            UndecodableReason.NOT_AVRO,
            id="value of another type",
        ),
    ],
)
def test_undecodable_records_say_why(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: UndecodableReason
) -> None:
    """Every way a record can be unreadable raises UndecodableEvent with its reason."""
    assert _undecodable(value, headers) is reason


def test_a_value_that_breaks_the_model_is_undecodable() -> None:
    """Valid Avro whose data breaks the model (a lower-case currency) is refused."""
    event = SAMPLES["payment.completed.v1"]
    lower_case = Money.model_construct(amount_minor=1, currency="eur")
    forged = event.model_copy(update={"data": event.data.model_copy(update={"amount": lower_case})})
    encoded = encode_event(forged)

    assert _undecodable(encoded.value, encoded.headers) is UndecodableReason.INVALID_EVENT


def test_a_value_whose_event_type_field_disagrees_with_its_header_is_refused() -> None:
    """The header and the value's own eventType must name the same event."""
    forged = SAMPLES["order.placed.v1"].model_copy(update={"event_type": "order.placed.v7"})
    encoded = encode_event(forged)

    assert _undecodable(encoded.value, encoded.headers) is UndecodableReason.HEADER_MISMATCH
