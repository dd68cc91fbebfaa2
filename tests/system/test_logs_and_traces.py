"""Logs and traces of the real stack: one order placed through the API is one trace across
every process, and every process writes JSON log lines with the event fields.

The session's stack sends its spans over OTLP/HTTP to the receiver in this test process (see
``tests/system/conftest.py``); nothing in the processes under test is replaced.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.activities import (
    CHARGE_PAYMENT,
    COMPLETE_ORDER,
    PLACE_ORDER,
    RESERVE_STOCK,
    SCHEDULE_SHIPMENT,
    SHIPMENT_DISPATCHED_SIGNAL,
    OrderSagaResult,
    saga_workflow_id,
)
from contracts.topics import topic_for_event_type
from infra.config.settings import Settings, api_headers
from tests.support.orders_api import order_body
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.saga_paths import HAPPY_EVENTS

API, ORCHESTRATOR = "orchestrator-api", "orchestrator-service"
PAYMENT, INVENTORY, SHIPPING = "payment-service", "inventory-service", "shipping-service"
PROJECTOR = "orchestrator-projector"
ACTIVITIES = {
    PLACE_ORDER: ORCHESTRATOR,
    CHARGE_PAYMENT: PAYMENT,
    RESERVE_STOCK: INVENTORY,
    SCHEDULE_SHIPMENT: SHIPPING,
    COMPLETE_ORDER: ORCHESTRATOR,
}
PRODUCERS = {
    "order.placed.v1": ORCHESTRATOR,
    "payment.completed.v1": PAYMENT,
    "inventory.reserved.v1": INVENTORY,
    "shipping.scheduled.v1": SHIPPING,
    "shipping.dispatched.v1": SHIPPING,
    "order.completed.v1": ORCHESTRATOR,
}
LOG_FIELDS = ("timestamp", "level", "process", "logger", "message")


@dataclass(frozen=True)
class PlacedOrder:
    """An order placed through the API whose saga has completed."""

    order_id: str


@pytest.fixture(scope="module")
async def placed_order(stack: Settings, temporal_client: Client) -> PlacedOrder:
    """One order through ``POST /orders``, awaited to the end of its saga.

    The end is awaited through the test's own Temporal client, which traces nothing, rather
    than through the API: each status request would be a trace of its own.
    """
    body = order_body(prefix="obs", customer_id="cust-obs", sku="SKU-1002", unit_price=2500)
    order_id = body["order_id"]
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, headers=api_headers(stack)
    ) as api:
        response = await api.post("/orders", json=body)
    assert response.status_code == 202, response.text
    handle = temporal_client.get_workflow_handle(
        saga_workflow_id(order_id), result_type=OrderSagaResult
    )
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.status == "COMPLETED", result
    return PlacedOrder(order_id)


def _of_order(span: ReceivedSpan, order_id: str) -> bool:
    """Whether ``span`` is about the order: ours carry its id, Temporal's its workflow id."""
    return span.attributes.get("saga.order_id") == order_id or span.attributes.get(
        "temporalWorkflowID"
    ) == saga_workflow_id(order_id)


def _missing(spans: list[ReceivedSpan], order_id: str) -> list[str]:
    """What the order's trace must hold and the receiver has not got (yet)."""
    have = {(s.service, s.name) for s in spans if _of_order(s, order_id)}
    consumed = {
        s.attributes.get("saga.event_type")
        for s in spans
        if _of_order(s, order_id)
        and s.kind == "SPAN_KIND_CONSUMER"
        and s.attributes.get("messaging.consumer.group.name") == PROJECTOR
    }
    wanted = [
        (API, "POST /orders"),
        (API, "StartWorkflow:OrderSaga"),
        (ORCHESTRATOR, "RunWorkflow:OrderSaga"),
        (ORCHESTRATOR, f"SignalWorkflow:{SHIPMENT_DISPATCHED_SIGNAL}"),
        *((service, f"RunActivity:{name}") for name, service in ACTIVITIES.items()),
        *((service, f"{topic_for_event_type(t)} create") for t, service in PRODUCERS.items()),
        *((service, f"{topic_for_event_type(t)} publish") for t, service in PRODUCERS.items()),
    ]
    return [f"{service}: {name}" for service, name in wanted if (service, name) not in have] + [
        f"{PROJECTOR}: process {event_type}"
        for event_type in HAPPY_EVENTS
        if event_type not in consumed
    ]


def _orphans(spans: list[ReceivedSpan], trace_id: str) -> list[str]:
    """The spans of the trace whose parent is not in it (the root's parent is nobody)."""
    in_trace = [s for s in spans if s.trace_id == trace_id]
    span_ids = {s.span_id for s in in_trace}
    return [f"{s.service}: {s.name}" for s in in_trace if s.parent_span_id not in span_ids]


def _complete(spans: list[ReceivedSpan], order_id: str) -> bool:
    """Whether the order's spans are all in, parents included (each process sends its own
    spans about once a second)."""
    if _missing(spans, order_id):
        return False
    trace_ids = {s.trace_id for s in spans if _of_order(s, order_id)}
    return all(len(_orphans(spans, trace_id)) <= 1 for trace_id in trace_ids)


def test_one_order_is_one_trace_from_the_api_through_every_service(
    placed_order: PlacedOrder, otlp_receiver: OtlpReceiver
) -> None:
    """The API request, the workflow, its activities and every record of the order's events,
    produced and consumed in five processes, are spans of one trace, joined parent to child."""
    order_id = placed_order.order_id
    spans = otlp_receiver.wait_for(lambda received: _complete(received, order_id))
    assert not otlp_receiver.errors
    assert not _missing(spans, order_id), _missing(spans, order_id)

    of_order = [s for s in spans if _of_order(s, order_id)]
    trace_ids = {s.trace_id for s in of_order}
    assert len(trace_ids) == 1, {
        trace_id: sorted({f"{s.service}: {s.name}" for s in of_order if s.trace_id == trace_id})
        for trace_id in trace_ids
    }
    (trace_id,) = trace_ids
    services = {s.service for s in of_order}
    assert {API, ORCHESTRATOR, PAYMENT, INVENTORY, SHIPPING} <= services, services

    # One tree: the API request is the root, every other span's parent is in the trace.
    in_trace = [s for s in spans if s.trace_id == trace_id]
    roots = [s for s in in_trace if not s.parent_span_id]
    assert [(r.service, r.name, r.kind) for r in roots] == [
        (API, "POST /orders", "SPAN_KIND_SERVER")
    ]
    assert _orphans(spans, trace_id) == [f"{API}: POST /orders"], _orphans(spans, trace_id)

    # Each consumed record continues the span that created its event, in another process.
    by_id = {s.span_id: s for s in in_trace}
    for consumed in (s for s in of_order if s.kind == "SPAN_KIND_CONSUMER"):
        created = by_id[consumed.parent_span_id]
        assert created.name == f"{consumed.attributes['messaging.destination.name']} create"
        assert created.kind == "SPAN_KIND_PRODUCER"


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}:{number} is not JSON: {text!r}")
        assert isinstance(line, dict), (path.name, number, text)
        missing = [field for field in LOG_FIELDS if field not in line]
        assert not missing, (path.name, number, missing, text)
        lines.append(line)
    return lines


def test_every_process_logs_json_lines_with_the_event_fields(
    placed_order: PlacedOrder, stack: Settings
) -> None:
    """Each process's log is JSON lines; each relay logs the batches of events it published
    at INFO, and the projector logs the order's events it consumed with their ids, topic,
    consumer group, processing time, order and trace."""
    order_id = placed_order.order_id
    logs_dir = stack.run_dir / "logs"
    logs = {
        process: _log_lines(logs_dir / f"{name}.log")
        for process, name in [
            (API, "api"),
            (ORCHESTRATOR, "orchestrator"),
            (PAYMENT, "payment"),
            (INVENTORY, "inventory"),
            (SHIPPING, "shipping"),
        ]
    }
    for process, lines in logs.items():
        assert lines, f"{process} logged nothing"
        assert {line["process"] for line in lines} == {process}

    accepted = [
        line
        for line in logs[API]
        if line["message"] == "Order accepted" and line.get("orderId") == order_id
    ]
    assert len(accepted) == 1, accepted
    trace_id = accepted[0]["traceId"]
    assert len(trace_id) == 32

    for event_type, producer in PRODUCERS.items():
        topic = topic_for_event_type(event_type)
        published = [
            line
            for line in logs[producer]
            if line["message"] == "Events published" and topic in line.get("topics", [])
        ]
        assert published, (event_type, producer)
        for line in published:
            assert line["level"] == "INFO"
            assert line["logger"] == "runtime._outbox"
            assert line["events"] >= 1

        consumed = [
            entry
            for entry in logs[ORCHESTRATOR]
            if entry["message"] == "Event consumed"
            and entry.get("orderId") == order_id
            and entry.get("eventType") == event_type
            and entry.get("consumerGroup") == PROJECTOR
        ]
        assert len(consumed) == 1, (event_type, consumed)
        (entry,) = consumed
        assert entry["topic"] == topic
        assert entry["correlationId"] == order_id
        assert uuid.UUID(entry["eventId"])
        assert any(entry["eventId"] in line["eventIds"] for line in published), (
            "the event's publish is not logged at INFO"
        )
        assert isinstance(entry["processingTime"], int | float)
        assert entry["processingTime"] >= 0
        assert entry["traceId"] == trace_id, "the log line is not in the order's trace"
