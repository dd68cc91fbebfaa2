"""The processes' log lines: JSON with fixed fields for machines, plain text on a terminal."""

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from contracts.activities import Order, ShippingAddress
from contracts.events.common import OrderLine
from infra.config.logs import REDACTED, LogFormat, log_handler


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, which does not pass its records on to pytest's."""
    log = logging.getLogger(f"test.logs.{id(object())}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


def _lines(
    logger: logging.Logger, log_format: LogFormat = "json", stream: io.StringIO | None = None
) -> io.StringIO:
    stream = stream if stream is not None else io.StringIO()
    logger.handlers[:] = [log_handler("payment-service", log_format, stream)]
    return stream


def _json(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fixed_fields_first_then_the_event_fields(
    logger: logging.Logger,
) -> None:
    stream = _lines(logger)
    logger.info(
        "Event consumed",
        extra={
            "eventId": "0b7f6f0e-9f5e-4c35-8a0e-5a4a3a9f1c11",
            "eventType": "payment.completed.v1",
            "topic": "payment.events",
            "correlationId": "ord-1",
            "consumerGroup": "audit",
            "processingTime": 1.25,
            "orderId": "ord-1",
        },
    )
    (line,) = _json(stream)
    assert list(line)[:5] == ["timestamp", "level", "process", "logger", "message"]
    assert line["level"] == "INFO"
    assert line["process"] == "payment-service"
    assert line["logger"] == logger.name
    assert line["message"] == "Event consumed"
    assert line["consumerGroup"] == "audit"
    assert line["processingTime"] == 1.25
    assert line["timestamp"].endswith("Z")
    assert len(line["timestamp"]) == len("2025-01-31T10:59:44.625Z")


def test_a_json_line_carries_the_arguments_and_the_exception(logger: logging.Logger) -> None:
    stream = _lines(logger)
    try:
        int("card reader on fire")
    except ValueError:
        logger.exception("charging %s failed", "ord-2")
    (line,) = _json(stream)
    assert line["level"] == "ERROR"
    assert line["message"] == "charging ord-2 failed"
    assert "ValueError: invalid literal" in line["exc_info"]


def test_auto_is_text_on_a_terminal_and_json_elsewhere(logger: logging.Logger) -> None:
    terminal = _lines(logger, "auto", _Terminal())
    logger.warning("Event published", extra={"topic": "order.events", "orderId": "ord-3"})
    text = terminal.getvalue()
    assert not text.startswith("{")
    assert "WARNING payment-service" in text
    assert text.rstrip().endswith("Event published topic=order.events orderId=ord-3")

    piped = _lines(logger, "auto")
    logger.warning("Event published")
    assert _json(piped)[0]["message"] == "Event published"

    forced = _lines(logger, "text")
    logger.warning("Event published")
    assert not forced.getvalue().startswith("{")


async def test_a_line_logged_in_an_activity_of_a_saga_names_its_order(
    logger: logging.Logger,
) -> None:
    stream = _lines(logger)

    @activity.defn
    async def charge() -> None:
        logger.info("charging")

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="order-ord-4")
    await env.run(charge)
    env.info = dataclasses.replace(env.info, workflow_id="bench-1")
    await env.run(charge)
    in_saga, elsewhere = _json(stream)
    assert in_saga["orderId"] == "ord-4"
    assert "orderId" not in elsewhere


def test_a_line_logged_in_a_span_carries_its_trace(logger: logging.Logger) -> None:
    stream = _lines(logger)
    span = TracerProvider().get_tracer("test").start_span("charge")
    with trace.use_span(span, end_on_exit=True):
        logger.info("charging")
    logger.info("outside")
    inside, outside = _json(stream)
    assert inside["traceId"] == format(span.get_span_context().trace_id, "032x")
    assert inside["spanId"] == format(span.get_span_context().span_id, "016x")
    assert "traceId" not in outside


def _order() -> Order:
    return Order(
        order_id="ord-pii",
        customer_id="cust-7",
        items=[OrderLine(sku="SKU-1", quantity=1, unit_price_minor=100)],
        currency="EUR",
        payment_token="tok_SECRET_4242",
        shipping_address=ShippingAddress(
            country="DE",
            name="Ada Lovelace",
            line1="Hauptstr. 1",
            city="Berlin",
            postal_code="10115",
        ),
    )


_PERSONAL_VALUES = ("tok_SECRET_4242", "Ada Lovelace", "Hauptstr. 1", "Berlin", "10115")


def test_personal_data_in_the_fields_of_a_line_is_redacted(logger: logging.Logger) -> None:
    stream = _lines(logger)
    logger.info(
        "Order accepted",
        extra={
            "orderId": "ord-pii",
            "payment_token": "tok_SECRET_4242",
            "order": _order(),
            "shippingAddress": {"country": "DE", "postalCode": "10115", "line1": "Hauptstr. 1"},
        },
    )
    (line,) = _json(stream)
    address = line["order"]["shipping_address"]

    assert line["payment_token"] == REDACTED
    assert line["order"]["payment_token"] == REDACTED
    assert address == {
        "country": "DE",
        "name": REDACTED,
        "line1": REDACTED,
        "city": REDACTED,
        "postal_code": REDACTED,
    }
    assert line["shippingAddress"] == {"country": "DE", "postalCode": REDACTED, "line1": REDACTED}
    assert line["orderId"] == "ord-pii"
    assert line["order"]["items"] == [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 100}]
    assert line["logger"] == logger.name
    assert not any(value in stream.getvalue() for value in _PERSONAL_VALUES)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_personal_data_in_the_message_is_redacted(
    logger: logging.Logger, log_format: LogFormat
) -> None:
    stream = _lines(logger, log_format)
    logger.info("placing %s", _order())
    logger.warning("order %s: %r", "ord-pii", _order().shipping_address)
    logger.info("charge failed payment_token=%s postal_code='10115'", "tok_SECRET_4242")
    logger.info("charged %s for %s", "ord-pii", {"amount": 100})

    text = stream.getvalue()

    assert not any(value in text for value in _PERSONAL_VALUES)
    assert text.count(REDACTED) >= 8
    assert "payment_token=[redacted] postal_code=[redacted]" in text
    assert "charged ord-pii for {'amount': 100}" in text
