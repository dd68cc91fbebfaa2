"""Trace context in Kafka record headers, and the spans of an event's life.

An event written to the outbox inside a trace gets a ``{topic} create`` span, whose context
goes into the record's headers as W3C Trace Context (``traceparent``, ``tracestate``) and
baggage; the relay publishes it in a ``{topic} publish`` span and each consumer handles it
in a ``{topic} process`` span, both continuing that context. None of these header names is a
contract header (``event_type``, ``schema_fingerprint``, ``content_type``) or a dead-letter
one (``dlq_*``), and the codec ignores headers it does not know.

Outside a trace (tracing off, or an event written by no traced call) nothing is added and
the relay starts no span, so the cost is a look at the current span.
"""

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = [
    "TRACE_HEADERS",
    "consume_span",
    "continue_trace",
    "creation_headers",
    "mark_failed",
    "publish_span",
]

TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
"""The record headers that carry the trace context."""

_tracer = trace.get_tracer("runtime")
_NO_SPAN = nullcontext(trace.INVALID_SPAN)

Headers = Sequence[tuple[str, bytes]]


def _trace_context(headers: Headers | None) -> Context | None:
    carrier = {
        name: value.decode("latin-1")
        for name, value in headers or ()
        if name in TRACE_HEADERS and isinstance(value, bytes)
    }
    return propagate.extract(carrier) if carrier else None


def _attributes(topic: str, event_type: str, order_id: str) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "saga.event_type": event_type,
        "saga.order_id": order_id,
    }


def creation_headers(
    *, topic: str, event_id: str, event_type: str, order_id: str
) -> list[tuple[str, bytes]]:
    """The trace headers of an event created now: those of a new ``create`` span.

    Returns no header outside a trace.
    """
    if not trace.get_current_span().get_span_context().is_valid:
        return []
    with _tracer.start_as_current_span(
        f"{topic} create",
        kind=SpanKind.PRODUCER,
        attributes={
            **_attributes(topic, event_type, order_id),
            "messaging.operation.type": "create",
            "messaging.message.id": event_id,
        },
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    return [(name, value.encode("latin-1")) for name, value in carrier.items()]


def publish_span(
    headers: Headers,
    *,
    topic: str,
    event_id: str,
    event_type: str,
    order_id: str,
    start_time: int | None = None,
) -> Span | None:
    """A started ``publish`` span continuing the record's trace; None for an untraced record.

    ``start_time`` (ns since the epoch) is when the record was handed to the producer; the
    caller ends the span once the broker acknowledged the record (or failed to).
    """
    context = _trace_context(headers)
    if context is None:
        return None
    return _tracer.start_span(
        f"{topic} publish",
        context=context,
        kind=SpanKind.PRODUCER,
        attributes={
            **_attributes(topic, event_type, order_id),
            "messaging.operation.type": "send",
            "messaging.message.id": event_id,
        },
        start_time=start_time,
    )


def consume_span(
    headers: Headers | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    consumer_group: str,
    event_type: str | None,
    order_id: str | None,
) -> AbstractContextManager[Span]:
    """The current ``process`` span of one consumed record, continuing its producer's trace.

    A record without trace headers in a process without traces gets no span at all: this
    runs for every record, and a no-op span still costs tens of microseconds.
    """
    context = _trace_context(headers)
    if context is None and not _traces_on():
        return _NO_SPAN
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
        "messaging.consumer.group.name": consumer_group,
    }
    if event_type is not None:
        attributes["saga.event_type"] = event_type
    if order_id is not None:
        attributes["saga.order_id"] = order_id
    return _tracer.start_as_current_span(
        f"{topic} process", context=context, kind=SpanKind.CONSUMER, attributes=attributes
    )


def _traces_on() -> bool:
    """Whether this process has a tracer provider (:func:`infra.config.tracing.export_traces`)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


@contextmanager
def continue_trace(headers: Headers | None, name: str) -> Iterator[None]:
    """Run the block in a span ``name`` continuing the trace of ``headers``, if they have one.

    For work that an event's producer started but that runs later, outside its call (the
    carrier dispatching a scheduled shipment).
    """
    context = _trace_context(headers)
    if context is None:
        yield
        return
    with _tracer.start_as_current_span(name, context=context, kind=SpanKind.INTERNAL):
        yield


def mark_failed(description: str) -> None:
    """Mark the current span as failed (a record dead-lettered, for one)."""
    trace.get_current_span().set_status(Status(StatusCode.ERROR, description))
