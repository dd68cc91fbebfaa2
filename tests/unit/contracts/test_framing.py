"""The framed wire format: magic byte, schema id, Avro body; read beside the legacy one."""

import json
from io import BytesIO

import pytest
from fastavro import parse_schema, schemaless_writer

from contracts import (
    CONTENT_TYPE,
    EVENT_TYPES,
    FRAMED_CONTENT_TYPE,
    EncodedEvent,
    UndecodableEvent,
    UndecodableReason,
    decode_event,
    encode_event,
    event_name,
    frame,
    framed_headers,
    schema_for,
    schema_matching,
    subject_for,
    unframe,
    writer_schema_id,
)
from tests.support.samples import sample_events

SAMPLES = sample_events()


def _framed(encoded: EncodedEvent, schema_id: int = 7) -> tuple[bytes, list[tuple[str, bytes]]]:
    return frame(encoded.value, schema_id), framed_headers(encoded.headers)


def _reason(value: bytes, headers: list[tuple[str, bytes]], **options: object) -> str:
    with pytest.raises(UndecodableEvent) as caught:
        decode_event(value, headers, **options)  # type: ignore[arg-type]
    return caught.value.reason


def test_frame_is_magic_byte_then_big_endian_id_then_body() -> None:
    """The Confluent wire format, byte for byte."""
    assert frame(b"avro", 0x01020304) == b"\x00\x01\x02\x03\x04avro"
    assert unframe(b"\x00\x01\x02\x03\x04avro") == (0x01020304, b"avro")
    assert unframe(frame(b"", 2**32 - 1)) == (2**32 - 1, b"")


@pytest.mark.parametrize("schema_id", [-1, 2**32])
def test_frame_refuses_an_id_that_does_not_fit(schema_id: int) -> None:
    """Four unsigned bytes hold the id, no more."""
    with pytest.raises(ValueError, match="4 bytes"):
        frame(b"avro", schema_id)


@pytest.mark.parametrize(
    "value", [b"", b"\x00\x00\x00\x01", b"\x01\x00\x00\x00\x01avro", b"Hplain avro"]
)
def test_unframe_refuses_what_is_not_framed(value: bytes) -> None:
    """Too short, or another magic byte: NOT_FRAMED, never an IndexError."""
    with pytest.raises(UndecodableEvent) as caught:
        unframe(value)
    assert caught.value.reason is UndecodableReason.NOT_FRAMED


def test_framed_headers_drop_the_fingerprint_and_keep_the_rest() -> None:
    """The id names the schema; the event type stays for routing, tracing headers stay."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])
    headers = framed_headers([*encoded.headers, ("traceparent", b"00-abc")])
    assert headers == [
        ("event_type", b"payment.completed.v1"),
        ("content_type", FRAMED_CONTENT_TYPE.encode()),
        ("traceparent", b"00-abc"),
    ]


def test_subject_is_the_record_full_name_shared_by_every_version() -> None:
    """RecordNameStrategy: the versions of an event share one subject, each event its own."""
    assert subject_for("order.placed.v1") == "saga.contracts.order.OrderPlaced"
    assert subject_for("order.placed.v2") == subject_for("order.placed.v1")
    assert subject_for("payment.refunded.v2") == "saga.contracts.payment.PaymentRefunded"
    assert subject_for("payment.refunded.v1") == "saga.contracts.payment.PaymentRefunded"
    assert len({subject_for(t) for t in EVENT_TYPES}) == len({event_name(t) for t in EVENT_TYPES})


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_survives_a_framed_round_trip(event_type: str) -> None:
    """Framed, with its packaged schema as the writer, an event decodes to itself."""
    event = SAMPLES[event_type]
    value, headers = _framed(encode_event(event), schema_id=41)
    assert writer_schema_id(value, headers) == 41
    assert decode_event(value, headers, writer=schema_for(event_type)) == event


def test_the_registry_copy_of_a_schema_is_matched_to_the_packaged_one() -> None:
    """A registry returns the schema in its own layout, without our extra attributes: the
    canonical form still finds the packaged schema, and the event type with it."""
    packaged = schema_for("order.placed.v2")
    registry_copy = {k: v for k, v in packaged.definition.items() if k not in ("eventType", "doc")}
    registry_copy = json.loads(json.dumps(registry_copy, separators=(",", ":")))
    assert schema_matching(registry_copy) is packaged
    event = SAMPLES["order.placed.v2"]
    value, headers = _framed(encode_event(event))
    assert decode_event(value, headers, writer=registry_copy) == event


def test_a_foreign_writer_version_is_read_through_avro_resolution() -> None:
    """A version of the event that is not packaged here (a v3 another team registered) is the
    writer; the packaged version of the same record reads it."""
    v3 = json.loads(json.dumps(schema_for("order.placed.v2").definition))
    v3["eventType"] = "order.placed.v3"
    v3["fields"][-1]["type"]["fields"].append({"name": "gift", "type": "boolean"})
    record = SAMPLES["order.placed.v2"].model_dump(mode="python", by_alias=True)
    record["eventType"] = "order.placed.v3"
    record["data"]["gift"] = True
    body = BytesIO()
    schemaless_writer(body, parse_schema(v3), record)
    headers = [("event_type", b"order.placed.v3"), ("content_type", FRAMED_CONTENT_TYPE.encode())]
    value = frame(body.getvalue(), 99)
    event = decode_event(value, headers, writer=v3)
    assert event.event_type == "order.placed.v2"
    assert event.data == SAMPLES["order.placed.v2"].data
    # Read as v1 too (the channel field dropped), as a consumer on v1 would.
    assert decode_event(value, headers, "order.placed.v1", writer=v3).event_type == (
        "order.placed.v1"
    )


def test_legacy_records_still_decode_and_have_no_schema_id() -> None:
    """Records published before the registry: fingerprint header, no framing."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])
    assert writer_schema_id(encoded.value, encoded.headers) is None
    assert decode_event(encoded.value, encoded.headers) == SAMPLES["payment.completed.v1"]
    assert dict(encoded.headers)["content_type"] == CONTENT_TYPE.encode()


def test_framed_record_with_unknown_id_says_so() -> None:
    """No writer resolved for the id: UNKNOWN_SCHEMA_ID, with the id in the message."""
    value, headers = _framed(encode_event(SAMPLES["payment.completed.v1"]), schema_id=12345)
    with pytest.raises(UndecodableEvent) as caught:
        decode_event(value, headers, writer=None)
    assert caught.value.reason is UndecodableReason.UNKNOWN_SCHEMA_ID
    assert "12345" in str(caught.value)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("legacy body without headers", UndecodableReason.NOT_FRAMED),
        ("schema of another event type", UndecodableReason.HEADER_MISMATCH),
        ("writer of another record", UndecodableReason.INCOMPATIBLE_READER),
        ("json content type", UndecodableReason.UNSUPPORTED_CONTENT_TYPE),
        ("writer that is no schema", UndecodableReason.UNKNOWN_SCHEMA_ID),
        ("body truncated", UndecodableReason.NOT_AVRO),
    ],
)
def test_undecodable_framed_records_say_why(case: str, reason: UndecodableReason) -> None:
    """Every way a framed record can be unreadable raises UndecodableEvent with its reason."""
    encoded = encode_event(SAMPLES["payment.completed.v1"])
    value, headers = _framed(encoded)
    writer: object = schema_for("payment.completed.v1")
    reader_type = None
    if case == "legacy body without headers":
        value, headers = encoded.value, []
    elif case == "schema of another event type":
        writer = schema_for("payment.failed.v1")
    elif case == "writer of another record":
        writer, reader_type = schema_for("payment.failed.v1").definition, "payment.completed.v1"
        headers = [h for h in headers if h[0] != "event_type"]
    elif case == "json content type":
        headers = [("content_type", b"application/json"), ("event_type", headers[0][1])]
    elif case == "writer that is no schema":
        writer = {"type": "record", "name": "Broken", "fields": [{"name": "x"}]}
    elif case == "body truncated":
        value = value[:12]
    assert _reason(value, headers, reader_type=reader_type, writer=writer) is reason
