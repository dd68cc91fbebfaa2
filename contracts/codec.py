"""The wire format of domain events on Kafka.

A record's key is the order id (the correlation id) in UTF-8, so one order's events share a
partition. Its value is the event in Avro binary, in one of two formats:

- **framed** (what the relays publish): the Confluent wire format that any registry-aware
  Kafka tool reads: magic byte ``0``, the writer schema's registry id in 4 bytes big-endian,
  then the Avro body (:func:`frame`, :func:`unframe`). Headers: ``event_type``
  (``payment.completed.v1``, for routing and filtering) and ``content_type``
  (:data:`FRAMED_CONTENT_TYPE`). The schemas live in the registry under one subject per
  record type, the record's full name (:func:`subject_for`).
- **legacy** (what :func:`encode_event` writes, what the outbox stores, and every record
  published before the registry): the Avro body alone, with headers ``event_type``,
  ``schema_fingerprint`` (hex CRC-64-AVRO of the writer schema, found among the schemas
  packaged with ``contracts``) and ``content_type`` (:data:`CONTENT_TYPE`).

This module does no I/O: the relay frames a stored body with the id the registry gave its
schema, and a consumer resolves a framed record's id at the registry and hands the writer
schema to :func:`decode_event`. A consumer may read the value with a different version of
the same event, through Avro's schema resolution.
"""

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate
from pydantic import ValidationError as ModelValidationError

from contracts.envelope import AnyEvent, event_version_number
from contracts.errors import SchemaViolation, UndecodableEvent, UndecodableReason
from contracts.registry import (
    PackagedSchema,
    model_for,
    packaged_schemas,
    schema_by_fingerprint,
    schema_for,
    schema_matching,
)
from contracts.topics import topic_for_event_type

__all__ = [
    "CONTENT_TYPE",
    "CONTENT_TYPE_HEADER",
    "EVENT_TYPE_HEADER",
    "FRAMED_CONTENT_TYPE",
    "MAGIC_BYTE",
    "SCHEMA_FINGERPRINT_HEADER",
    "EncodedEvent",
    "decode_event",
    "encode_event",
    "frame",
    "framed_headers",
    "subject_for",
    "unframe",
    "writer_schema_id",
]

CONTENT_TYPE = "application/avro"
"""The legacy format's content type: the Avro body alone, its schema named by fingerprint."""
FRAMED_CONTENT_TYPE = "application/vnd.confluent.avro"
"""The framed format's: magic byte, schema id, Avro body (no registered media type exists)."""
MAGIC_BYTE = 0
EVENT_TYPE_HEADER = "event_type"
SCHEMA_FINGERPRINT_HEADER = "schema_fingerprint"
CONTENT_TYPE_HEADER = "content_type"

_CONTRACT_HEADERS = (EVENT_TYPE_HEADER, SCHEMA_FINGERPRINT_HEADER, CONTENT_TYPE_HEADER)
_FRAME = struct.Struct(">bI")


@dataclass(frozen=True)
class EncodedEvent:
    """An event ready for the outbox: where it goes and its key, value and headers
    (the legacy format; the relay frames it as it publishes)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode_event(event: AnyEvent) -> EncodedEvent:
    """Encode ``event`` with the schema of its event type, in the legacy format.

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


def subject_for(event_type: str) -> str:
    """The registry subject of ``event_type``'s schemas: its record's full name
    (``saga.contracts.order.OrderPlaced``), shared by every version of the event.

    Raises:
        UnknownEventType: the event type is not in the catalog.
    """
    return str(schema_for(event_type).parsed["name"])


def frame(body: bytes, schema_id: int) -> bytes:
    """``body`` in the Confluent wire format: magic byte, ``schema_id`` (4 bytes, big-endian).

    Raises:
        ValueError: ``schema_id`` does not fit in 4 unsigned bytes.
    """
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise ValueError(f"schema id {schema_id} does not fit in 4 bytes")
    return _FRAME.pack(MAGIC_BYTE, schema_id) + body


def unframe(value: bytes) -> tuple[int, bytes]:
    """The schema id and the Avro body of a framed value.

    Raises:
        UndecodableEvent: the value is not in the Confluent wire format (``NOT_FRAMED``).
    """
    if not isinstance(value, bytes) or len(value) < _FRAME.size or value[0] != MAGIC_BYTE:
        raise UndecodableEvent(
            UndecodableReason.NOT_FRAMED,
            f"value is not magic byte {MAGIC_BYTE} + 4-byte schema id + Avro body: "
            f"starts with {_shown(value[: _FRAME.size] if isinstance(value, bytes) else value)}",
        )
    _, schema_id = _FRAME.unpack_from(value)
    return schema_id, value[_FRAME.size :]


def framed_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers of a framed record, from those :func:`encode_event` wrote: the fingerprint
    dropped (the schema id says which schema), the content type the framed one's; any other
    header (tracing) kept, in order."""
    framed: list[tuple[str, bytes]] = []
    for name, value in headers:
        if name == SCHEMA_FINGERPRINT_HEADER:
            continue
        framed.append((name, _FRAMED_TYPE if name == CONTENT_TYPE_HEADER else value))
    return framed


_FRAMED_TYPE = FRAMED_CONTENT_TYPE.encode("ascii")


def writer_schema_id(
    value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> int | None:
    """The registry id of the schema a framed record was written with; None for a record in
    the legacy format (its schema is packaged: nothing to resolve).

    Raises:
        UndecodableEvent: the record is in neither format.
    """
    if not isinstance(value, bytes) or not value:
        raise UndecodableEvent(UndecodableReason.EMPTY_VALUE, "the record has no value")
    found = _headers(headers)
    if _is_legacy(found):
        return None
    return unframe(value)[0]


def decode_event(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    reader_type: str | None = None,
    *,
    writer: PackagedSchema | Mapping[str, Any] | None = None,
) -> AnyEvent:
    """Decode a consumed record into the model of ``reader_type``, or of its own type.

    A record in the legacy format names its writer schema by fingerprint. A framed one names
    it by registry id (:func:`writer_schema_id`): ``writer`` is that schema as the caller
    resolved it, a packaged one or the registry's own copy (matched to a packaged schema when
    it is one, else used as it is as the writer for Avro's resolution); None when the id is
    unknown.

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
    found = _headers(headers)
    header_type: str | None
    if _is_legacy(found):
        header_type, packaged = _legacy_writer(found)
        body, written_with = value, _Writer(packaged.parsed, packaged.event_type, packaged)
    else:
        header_type = found.get(EVENT_TYPE_HEADER)
        if CONTENT_TYPE_HEADER in found and found[CONTENT_TYPE_HEADER] != FRAMED_CONTENT_TYPE:
            raise UndecodableEvent(
                UndecodableReason.UNSUPPORTED_CONTENT_TYPE,
                f"content type {_shown(found[CONTENT_TYPE_HEADER])} is neither "
                f"{FRAMED_CONTENT_TYPE} nor {CONTENT_TYPE}",
            )
        schema_id, body = unframe(value)
        written_with = _framed_writer(schema_id, writer)
        if (
            header_type is not None
            and written_with.packaged is not None
            and written_with.packaged.event_type != header_type
        ):
            raise UndecodableEvent(
                UndecodableReason.HEADER_MISMATCH,
                f"schema id {schema_id} is the schema of {written_with.packaged.event_type}, "
                f"not of {_shown(header_type)}",
            )
    reader = chosen_reader or _default_reader(written_with, header_type)
    if written_with.full_name != reader.parsed["name"]:
        raise UndecodableEvent(
            UndecodableReason.INCOMPATIBLE_READER,
            f"a {written_with.label} record cannot be read as {reader.event_type}",
        )
    record = _read(body, written_with, reader)
    expected = header_type or (written_with.packaged and written_with.packaged.event_type)
    if expected is not None and record.get("eventType") != expected:
        raise UndecodableEvent(
            UndecodableReason.HEADER_MISMATCH,
            f"header says {expected}, value says {_shown(record.get('eventType'))}",
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


@dataclass(frozen=True)
class _Writer:
    """The schema a record was written with: parsed, and packaged when it is one of ours."""

    parsed: dict[str, Any]
    label: str
    """How messages name it: its event type, or its record's name and id."""
    packaged: PackagedSchema | None = None

    @property
    def full_name(self) -> str:
        return str(self.parsed["name"])


def _framed_writer(schema_id: int, writer: PackagedSchema | Mapping[str, Any] | None) -> _Writer:
    if writer is None:
        raise UndecodableEvent(
            UndecodableReason.UNKNOWN_SCHEMA_ID, f"the registry knows no schema id {schema_id}"
        )
    if isinstance(writer, PackagedSchema):
        return _Writer(writer.parsed, writer.event_type, writer)
    try:
        packaged = schema_matching(writer)
        if packaged is not None:
            return _Writer(packaged.parsed, packaged.event_type, packaged)
        parsed = parse_schema(dict(writer))
    except Exception as error:  # whatever a registry's copy holds, the record is unreadable
        raise UndecodableEvent(
            UndecodableReason.UNKNOWN_SCHEMA_ID,
            f"schema id {schema_id} is not an Avro schema: {type(error).__name__}: "
            f"{_cut(str(error), 200)}",
        ) from error
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise UndecodableEvent(
            UndecodableReason.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not a record schema"
        )
    return _Writer(parsed, f"{parsed['name']} (schema id {schema_id})")


def _default_reader(writer: _Writer, header_type: str | None) -> PackagedSchema:
    """The version a record is read as when the consumer names none: the writer's own when it
    is packaged, else the header's, else the newest packaged version of the same record."""
    if writer.packaged is not None:
        return writer.packaged
    if header_type is not None and header_type in packaged_schemas():
        return packaged_schemas()[header_type]
    versions = [s for s in packaged_schemas().values() if s.parsed["name"] == writer.full_name]
    if not versions:
        raise UndecodableEvent(
            UndecodableReason.UNKNOWN_EVENT_TYPE,
            f"no packaged schema reads {writer.label}",
        )
    return max(versions, key=lambda s: event_version_number(s.event_type))


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
    """The contract's headers that the record carries, as text."""
    found: dict[str, str] = {}
    for name, raw in headers or ():
        if name not in _CONTRACT_HEADERS:
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
    return found


def _is_legacy(headers: Mapping[str, str]) -> bool:
    """Whether the record is in the legacy format: it names its schema by fingerprint, or
    says it is plain Avro."""
    return SCHEMA_FINGERPRINT_HEADER in headers or headers.get(CONTENT_TYPE_HEADER) == CONTENT_TYPE


def _legacy_writer(headers: dict[str, str]) -> tuple[str, PackagedSchema]:
    missing = [name for name in _CONTRACT_HEADERS if name not in headers]
    if missing:
        raise UndecodableEvent(
            UndecodableReason.MISSING_HEADER, f"missing header(s) {', '.join(missing)}"
        )
    if headers[CONTENT_TYPE_HEADER] != CONTENT_TYPE:
        raise UndecodableEvent(
            UndecodableReason.UNSUPPORTED_CONTENT_TYPE,
            f"content type {_shown(headers[CONTENT_TYPE_HEADER])} is not {CONTENT_TYPE}",
        )
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


def _read(value: bytes, writer: _Writer, reader: PackagedSchema) -> dict[str, Any]:
    buffer = BytesIO(value)
    try:
        record = schemaless_reader(buffer, writer.parsed, reader.parsed)
    except Exception as error:
        # Arbitrary bytes fail inside fastavro in arbitrary ways (EOFError, ValueError,
        # UnicodeDecodeError, IndexError, MemoryError on a huge length...).
        raise UndecodableEvent(
            UndecodableReason.NOT_AVRO,
            # Not repr(error): a UnicodeDecodeError's holds every byte of the value.
            f"value is not a {writer.label} record: {type(error).__name__}: "
            f"{_cut(str(error), 200)}",
        ) from error
    if buffer.tell() != len(value):
        raise UndecodableEvent(
            UndecodableReason.NOT_AVRO,
            f"{len(value) - buffer.tell()} bytes left after the {writer.label} record",
        )
    # Packaged schemas are records (checked as they are loaded), and so are the writers
    # resolved against them, so records come back.
    return cast(dict[str, Any], record)
