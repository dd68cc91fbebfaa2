"""The wire format of domain events on Kafka.

A record's value is the event in Avro binary, without any framing; its key is the
order id (the correlation id) in UTF-8, so one order's events share a partition; its
headers say how to read the value:

- ``event_type``: ``payment.completed.v1``
- ``schema_fingerprint``: hex CRC-64-AVRO fingerprint of the writer schema
- ``content_type``: ``application/avro``

The writer schema is found by its fingerprint among the schemas packaged with
``contracts``, so no schema registry is needed; a consumer may read the value with a
different version of the same event, through Avro's schema resolution.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate
from pydantic import ValidationError as ModelValidationError

from contracts.envelope import AnyEvent, event_name
from contracts.errors import SchemaViolation, UndecodableEvent, UndecodableReason
from contracts.registry import (
    PackagedSchema,
    model_for,
    packaged_schemas,
    schema_by_fingerprint,
    schema_for,
)
from contracts.topics import topic_for_event_type

__all__ = [
    "CONTENT_TYPE",
    "CONTENT_TYPE_HEADER",
    "EVENT_TYPE_HEADER",
    "SCHEMA_FINGERPRINT_HEADER",
    "EncodedEvent",
    "decode_event",
    "encode_event",
]

CONTENT_TYPE = "application/avro"
EVENT_TYPE_HEADER = "event_type"
SCHEMA_FINGERPRINT_HEADER = "schema_fingerprint"
CONTENT_TYPE_HEADER = "content_type"

_REQUIRED_HEADERS = (EVENT_TYPE_HEADER, SCHEMA_FINGERPRINT_HEADER, CONTENT_TYPE_HEADER)


@dataclass(frozen=True)
class EncodedEvent:
    """An event ready for a Kafka producer: where it goes and its key, value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode_event(event: AnyEvent) -> EncodedEvent:
    """Encode ``event`` with the schema of its event type.

    Raises:
        SchemaViolation: the event does not match its schema; nothing may be published.
    """
    # The class, not the field, says which schema: fields can be forged, classes cannot.
    schema = schema_for(type(event).EVENT_TYPE)
    record = event.model_dump(mode="python", by_alias=True)
    _validate(record, schema)
    value = BytesIO()
    schemaless_writer(value, schema.parsed, record)
    return EncodedEvent(
        topic=topic_for_event_type(schema.event_type),
        key=event.correlation_id.encode("utf-8"),
        value=value.getvalue(),
        headers=[
            (EVENT_TYPE_HEADER, schema.event_type.encode("utf-8")),
            (SCHEMA_FINGERPRINT_HEADER, schema.fingerprint.encode("ascii")),
            (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode("ascii")),
        ],
    )


def decode_event(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    reader_type: str | None = None,
) -> AnyEvent:
    """Decode a consumed record into the model of ``reader_type``, or of its own type.

    ``reader_type`` is the version of the event the consumer understands
    (``order.placed.v1``); a record written with another version of the same event is
    resolved against it, and the event returned is that version's: its ``event_type``
    and ``event_version`` are the reader's.

    Whatever the bytes, nothing but these errors comes out, so a consumer can send the
    record to its dead-letter topic and go on.

    Raises:
        UndecodableEvent: the record cannot be read as an event (``.reason`` says why).
        UnknownEventType: ``reader_type`` is not in the catalog.
    """
    chosen_reader = schema_for(reader_type) if reader_type is not None else None
    if not isinstance(value, bytes) or not value:
        raise UndecodableEvent(UndecodableReason.EMPTY_VALUE, "the record has no value")
    event_type, writer = _writer_schema(_headers(headers))
    reader = chosen_reader or writer
    if event_name(reader.event_type) != event_name(writer.event_type):
        raise UndecodableEvent(
            UndecodableReason.INCOMPATIBLE_READER,
            f"a {writer.event_type} record cannot be read as {reader.event_type}",
        )
    record = _read(value, writer, reader)
    if record.get("eventType") != event_type:
        raise UndecodableEvent(
            UndecodableReason.HEADER_MISMATCH,
            f"header says {event_type}, value says {_shown(record.get('eventType'))}",
        )
    # The event is the reader's version of it, whichever version was written.
    record["eventType"] = reader.event_type
    record["eventVersion"] = reader.event_version
    try:
        return model_for(reader.event_type).model_validate(record)
    except ModelValidationError as error:
        raise UndecodableEvent(
            UndecodableReason.INVALID_EVENT, f"{reader.event_type}: {error}"
        ) from error
    except Exception as error:  # a validator that fails otherwise: still no event
        raise UndecodableEvent(
            UndecodableReason.INVALID_EVENT,
            f"{reader.event_type}: {type(error).__name__}: {error}",
        ) from error


def _validate(record: dict[str, Any], schema: PackagedSchema) -> None:
    try:
        validate(record, schema.parsed, raise_errors=True)
    except ValidationError as error:
        problem = error.errors[0]
        # fastavro names the field as "<record full name>.<field>".
        record_name, _, field = (problem.field or schema.parsed["name"]).rpartition(".")
        raise SchemaViolation(
            schema.event_type,
            field=field,
            record=record_name.rpartition(".")[2] or record_name,
            detail=f"{problem.datum!r} ({type(problem.datum).__name__}) is not {problem.schema}",
        ) from error


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _shown(value: object, limit: int = 80) -> str:
    """``value`` for an error message: its repr (whatever bytes it holds), cut short."""
    return _cut(repr(value), limit)


def _headers(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, raw in headers or ():
        if name not in _REQUIRED_HEADERS:
            continue  # tracing and other headers travel alongside ours
        # Kafka allows a header without a value (None), and other clients send any bytes.
        if not isinstance(raw, bytes):
            raise UndecodableEvent(
                UndecodableReason.GARBLED_HEADER, f"header {name!r} has no bytes: {_shown(raw)}"
            )
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as error:
            raise UndecodableEvent(
                UndecodableReason.GARBLED_HEADER, f"header {name!r} is not ASCII: {_shown(raw)}"
            ) from error
        if found.get(name, text) != text:
            raise UndecodableEvent(
                UndecodableReason.GARBLED_HEADER, f"header {name!r} is given twice, differently"
            )
        found[name] = text
    missing = [name for name in _REQUIRED_HEADERS if name not in found]
    if missing:
        raise UndecodableEvent(
            UndecodableReason.MISSING_HEADER, f"missing header(s) {', '.join(missing)}"
        )
    if found[CONTENT_TYPE_HEADER] != CONTENT_TYPE:
        raise UndecodableEvent(
            UndecodableReason.UNSUPPORTED_CONTENT_TYPE,
            f"content type {_shown(found[CONTENT_TYPE_HEADER])} is not {CONTENT_TYPE}",
        )
    return found


def _writer_schema(headers: dict[str, str]) -> tuple[str, PackagedSchema]:
    event_type = headers[EVENT_TYPE_HEADER]
    writer = schema_by_fingerprint(headers[SCHEMA_FINGERPRINT_HEADER])
    if writer is None:
        reason = (
            UndecodableReason.UNKNOWN_FINGERPRINT
            if event_type in packaged_schemas()
            else UndecodableReason.UNKNOWN_EVENT_TYPE
        )
        raise UndecodableEvent(
            reason,
            f"no packaged schema of {_shown(event_type)} has fingerprint "
            f"{_shown(headers[SCHEMA_FINGERPRINT_HEADER])}",
        )
    if writer.event_type != event_type:
        raise UndecodableEvent(
            UndecodableReason.HEADER_MISMATCH,
            f"fingerprint {writer.fingerprint} is the schema of {writer.event_type}, "
            f"not of {_shown(event_type)}",
        )
    return event_type, writer


def _read(value: bytes, writer: PackagedSchema, reader: PackagedSchema) -> dict[str, Any]:
    buffer = BytesIO(value)
    try:
        record = schemaless_reader(buffer, writer.parsed, reader.parsed)
    except Exception as error:
        # Arbitrary bytes fail inside fastavro in arbitrary ways (EOFError, ValueError,
        # UnicodeDecodeError, IndexError, MemoryError on a huge length...).
        raise UndecodableEvent(
            UndecodableReason.NOT_AVRO,
            # Not repr(error): a UnicodeDecodeError's holds every byte of the value.
            f"value is not a {writer.event_type} record: {type(error).__name__}: "
            f"{_cut(str(error), 200)}",
        ) from error
    if buffer.tell() != len(value):
        raise UndecodableEvent(
            UndecodableReason.NOT_AVRO,
            f"{len(value) - buffer.tell()} bytes left after the {writer.event_type} record",
        )
    # Packaged schemas are records (checked as they are loaded), so records come back.
    return cast(dict[str, Any], record)
