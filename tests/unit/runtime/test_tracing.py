"""Trace context in the outbox's records: an event written in a trace carries it in headers
that are neither contract nor dead-letter headers, and still decodes; garbled trace headers
are ignored. Through Kafka to a consumer: ``tests/system/runtime/test_tracing.py``.

These tests run without a tracer provider of the process (as a process with traces off
does): a span of the test's own provider is current where the event is written.
"""

from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

from contracts.codec import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    SCHEMA_FINGERPRINT_HEADER,
    decode_event,
)
from runtime import (
    DLQ_HEADER_PREFIX,
    TRACE_HEADERS,
    Outbox,
    consume_span,
    open_database,
    transaction,
)
from tests.support.samples import payment_completed

CONTRACT_HEADERS = {EVENT_TYPE_HEADER, SCHEMA_FINGERPRINT_HEADER, CONTENT_TYPE_HEADER}


def _span() -> Span:
    return TracerProvider().get_tracer("test").start_span("payment.charge")


def _trace_id(span: Span) -> int:
    return span.get_span_context().trace_id


def test_trace_headers_are_neither_contract_nor_dead_letter_headers() -> None:
    assert not TRACE_HEADERS & CONTRACT_HEADERS
    assert not any(name.startswith(DLQ_HEADER_PREFIX) for name in TRACE_HEADERS)


def test_an_event_written_outside_a_trace_has_only_the_contract_headers(tmp_path: Path) -> None:
    db = open_database(tmp_path / "service.db")
    outbox = Outbox(db)
    with transaction(db):
        outbox.add(payment_completed("ord-untraced"))
    (row,) = outbox.pending()
    assert {name for name, _ in row.headers} == CONTRACT_HEADERS


def test_an_event_written_in_a_trace_carries_it_and_still_decodes(tmp_path: Path) -> None:
    db = open_database(tmp_path / "service.db")
    outbox = Outbox(db)
    event = payment_completed("ord-traced")
    span = _span()
    with trace.use_span(span, end_on_exit=True), transaction(db):
        outbox.add(event)
    (row,) = outbox.pending()
    names = [name for name, _ in row.headers]
    assert set(names) == CONTRACT_HEADERS | {"traceparent"}
    traceparent = dict(row.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == format(_trace_id(span), "032x")
    assert decode_event(row.value, row.headers) == event

    with consume_span(
        row.headers,
        topic=row.topic,
        partition=0,
        offset=0,
        consumer_group="audit",
        event_type=row.event_type,
        order_id=row.order_id,
    ):
        assert trace.get_current_span().get_span_context().trace_id == _trace_id(span)


def test_garbled_trace_headers_are_ignored() -> None:
    garbled = [("traceparent", b"00-not-a-trace-01"), ("tracestate", None), ("baggage", b"\xff")]
    with consume_span(
        garbled,  # type: ignore[arg-type]  # Kafka header values can be null
        topic="payment.events",
        partition=0,
        offset=0,
        consumer_group="audit",
        event_type=None,
        order_id=None,
    ):
        assert not trace.get_current_span().get_span_context().is_valid
