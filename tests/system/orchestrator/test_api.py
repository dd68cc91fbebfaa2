"""The orchestrator API on the real stack: every saga path through ``POST /orders``, the event
timeline and its live stream, idempotent starts, and finding and repairing stuck sagas."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from contracts.activities import saga_workflow_id
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from infra.engines.processes import ProcessTable, stop_processes
from infra.engines.stack import Stack, split_instance
from orchestrator.api.auth import DEVELOPMENT_PRINCIPAL
from runtime import wait_for_temporal
from tests.support.orders_api import (
    api_client,
    order_body,
    place,
    repair,
    run_path,
    until_ended,
)
from tests.support.saga_paths import (
    CANCELLED,
    CHARGED,
    HAPPY_EVENTS,
    NOT_SHIPPABLE,
    PLACED,
    RELEASED,
    REPAIRED,
    RESERVED,
    SAGA_PATHS,
)
from tests.support.temporal_history import web_ui_metadata


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def on(request: pytest.FixtureRequest) -> Settings:
    """Each test of this module on both topologies: the session's embedded stack, then the
    session's cluster stack (PostgreSQL, three Kafka nodes, Temporal's full server)."""
    settings: Settings = request.getfixturevalue(
        "stack" if request.param == "embedded" else request.param
    )
    return settings


@pytest.fixture
async def api(on: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of that stack's API, sending its development token."""
    async with api_client(on) as client:
        yield client


async def _saga(api: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await api.get(f"/sagas/{order_id}")
    assert response.status_code == 200, response.text
    saga: dict[str, Any] = response.json()
    return saga


async def test_every_saga_path_through_the_api(api: httpx.AsyncClient) -> None:
    """Each path, started with POST /orders, ends in its status with its full timeline."""

    sagas = await asyncio.wait_for(
        asyncio.gather(*(run_path(api, p) for p in SAGA_PATHS)), timeout=150
    )
    for path, saga in zip(SAGA_PATHS, sagas, strict=True):
        assert saga["saga"]["status"] == path.status, (path.name, saga["saga"])
        assert [e["event_type"] for e in saga["events"]] == path.events, path.name
        assert len({e["event_id"] for e in saga["events"]}) == len(path.events)
        assert all(e["data"]["order_id"] == saga["order_id"] for e in saga["events"])
        # As times, not strings: a time on a whole second is written without a fraction.
        times = [datetime.fromisoformat(e["timestamp"]) for e in saga["events"]]
        assert times == sorted(times), path.name
        assert saga["links"]["web_ui"].endswith(f"/workflows/order-{saga['order_id']}")
        if path.status == "CANCELLED":
            assert saga["saga"]["failure_reason"], path.name
            assert saga["events"][-1]["data"]["reason"] == saga["saga"]["failure_reason"]
        if path.customer_cancels:
            reason = saga["saga"]["failure_reason"]
            # The token's name is who cancelled; the body's requested_by is kept beside it.
            assert reason.startswith(
                f"cancelled by {DEVELOPMENT_PRINCIPAL}: changed my mind (on behalf of cust-api)"
            )


def _sse_messages(lines: list[str]) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current:
                messages.append(current)
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.removeprefix(" ")
    return messages


async def test_the_event_stream_delivers_a_running_sagas_events_as_they_happen(
    api: httpx.AsyncClient,
) -> None:
    """The first events arrive while the saga still runs; the stream ends with the saga."""
    order_id = await place(api, order_body())
    lines: list[str] = []
    status_at_first_event: str | None = None
    async with api.stream("GET", f"/sagas/{order_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            lines.append(line)
            if status_at_first_event is None and line.startswith("data:"):
                status_at_first_event = (await _saga(api, order_id))["execution_status"]
    # The carrier takes seconds to dispatch: the first event came long before the end.
    assert status_at_first_event == "RUNNING"
    messages = _sse_messages([*lines, ""])
    assert messages[-1]["event"] == "end"
    assert json.loads(messages[-1]["data"]) == {"status": "COMPLETED"}
    streamed = [json.loads(m["data"]) for m in messages[:-1]]
    saga = await _saga(api, order_id)
    assert streamed == saga["events"]
    assert [m["event"] for m in messages[:-1]] == HAPPY_EVENTS
    assert [m["id"] for m in messages[:-1]] == [str(e["position"]) for e in streamed]

    # Resuming after the third event sends the rest only: the events that reached the read
    # model after it (ids number events as they arrive; the services publish on their own
    # topics, so one may arrive before an event that happened earlier).
    after = int(messages[2]["id"])
    resumed = await api.get(f"/sagas/{order_id}/events", headers={"Last-Event-ID": str(after)})
    rest = _sse_messages([*resumed.text.splitlines(), ""])
    later = [m["event"] for m in messages[:-1] if int(m["id"]) > after]
    assert [m["event"] for m in rest] == [*later, "end"]
    assert [m["id"] for m in rest[:-1]] == [m["id"] for m in messages[:-1] if int(m["id"]) > after]


async def test_placing_the_same_order_twice_starts_one_saga(api: httpx.AsyncClient) -> None:
    """Same id and body: the existing saga (200). Same id, other body: 409. Bad body: 422."""
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    body = order_body(customer_id=customer, country="AQ")
    first = await api.post("/orders", json=body)
    again = await api.post("/orders", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["created"] is True
    assert again.json()["created"] is False
    assert again.json()["workflow_id"] == first.json()["workflow_id"]

    other = await api.post("/orders", json={**body, "payment_token": "tok_flaky"})
    assert other.status_code == 409
    assert body["order_id"] in other.json()["detail"]

    await until_ended(api, body["order_id"])
    after_end = await api.post("/orders", json=body)
    assert after_end.status_code == 200  # a finished saga is not started again either

    for _ in range(50):  # the visibility store catches up shortly after
        listed = (await api.get("/sagas", params={"customer_id": customer})).json()
        if listed["sagas"] and listed["sagas"][0]["saga_status"] == "CANCELLED":
            break
        await asyncio.sleep(0.2)
    assert [s["order_id"] for s in listed["sagas"]] == [body["order_id"]]
    assert listed["sagas"][0]["saga_status"] == "CANCELLED"


async def test_bad_orders_are_refused_with_the_field_and_start_nothing(
    api: httpx.AsyncClient,
) -> None:
    body = order_body()
    body["items"][0]["quantity"] = 0
    body["currency"] = "XXY"
    body["shipping_address"]["country"] = "Germany"
    response = await api.post("/orders", json=body)
    assert response.status_code == 422
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    assert set(problems) == {
        ("body", "items", 0, "quantity"),
        ("body", "currency"),
        ("body", "shipping_address", "country"),
    }
    assert "ISO 4217" in problems[("body", "currency")]
    assert (await api.get(f"/sagas/{body['order_id']}")).status_code == 404

    empty = await api.post("/orders", json={**order_body(), "items": []})
    assert empty.status_code == 422
    assert [p["loc"] for p in empty.json()["detail"]] == [["body", "items"]]


async def test_listing_filters_by_status_and_customer_and_pages(api: httpx.AsyncClient) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    ids = [
        await place(api, order_body("tok_chargeDeclined", customer_id=customer)) for _ in range(3)
    ]
    for order_id in ids:
        await until_ended(api, order_id)
    seen: list[str] = []
    for _ in range(50):
        page = (
            await api.get(
                "/sagas", params={"customer_id": customer, "status": "CANCELLED", "page_size": 2}
            )
        ).json()
        if len(page["sagas"]) == 2 and page["next_page_token"]:
            break
        await asyncio.sleep(0.2)
    seen = [s["order_id"] for s in page["sagas"]]
    second = (
        await api.get(
            "/sagas",
            params={
                "customer_id": customer,
                "status": "CANCELLED",
                "page_size": 2,
                "page_token": page["next_page_token"],
            },
        )
    ).json()
    seen += [s["order_id"] for s in second["sagas"]]
    assert sorted(seen) == sorted(ids)
    none = (await api.get("/sagas", params={"customer_id": customer, "status": "RUNNING"})).json()
    assert none["sagas"] == []
    bad = await api.get("/sagas", params={"step": "teleport"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "step"]


async def _stuck_entry(
    api: httpx.AsyncClient, order_id: str, older_than: int, *, flagged: bool = False
) -> dict[str, Any]:
    for _ in range(300):
        response = await api.get("/sagas/stuck", params={"older_than_seconds": older_than})
        assert response.status_code == 200, response.text
        entry: dict[str, Any] | None = next(
            (s for s in response.json() if s["order_id"] == order_id), None
        )
        if entry is not None and (entry["flagged_stuck"] or not flagged):
            return entry
        await asyncio.sleep(0.2)
    raise AssertionError(f"saga {order_id} never listed as stuck")


async def test_a_saga_waiting_on_a_stopped_service_is_listed_stuck_until_it_returns(
    api: httpx.AsyncClient, on: Settings
) -> None:
    table = ProcessTable(on.run_dir)
    copies = [table.get(name) for name in table.names() if split_instance(name)[0] == "payment"]
    assert copies and all(copy is not None for copy in copies)
    assert len(stop_processes([copy for copy in copies if copy is not None])) == len(copies)
    try:
        order_id = await place(api, order_body())
        entry = await _stuck_entry(api, order_id, older_than=2)
        assert entry["step"] == "charge_payment"
        assert entry["owner"] == "payment"
        assert entry["compensating"] is False
        assert entry["saga_status"] == "RUNNING"
        assert entry["stuck_for_seconds"] >= 2
    finally:
        await asyncio.to_thread(Stack(on, say=lambda _: None).up)
    for _ in range(300):
        listed = (await api.get("/sagas/stuck", params={"older_than_seconds": 2})).json()
        if all(s["order_id"] != order_id for s in listed):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{order_id} still stuck after the payment service came back")
    saga = await until_ended(api, order_id)
    assert saga["saga"]["status"] == "COMPLETED"


async def test_a_saga_stuck_in_a_failing_compensation_is_found_and_moved_on(
    api: httpx.AsyncClient, on: Settings
) -> None:
    """A refund that keeps failing holds the saga in compensation until an operator acts; the
    Temporal Web UI shows the order's summary and where it ended."""
    order_id = await place(api, order_body("tok_refundFail", country="AQ"))
    entry = await _stuck_entry(api, order_id, older_than=0, flagged=True)
    assert entry["saga_status"] == "COMPENSATING"
    assert entry["step"] == "charge_payment"
    assert entry["compensating"] is True
    assert entry["owner"] == "payment"
    assert "refuses refunds" in (entry["last_failure"] or "")

    not_stuck = await repair(api, order_id, "retry_now", "reserve_stock", reason="try again")
    assert not_stuck.status_code == 409
    assert "not stuck" in not_stuck.json()["detail"]

    by_hand = "refunded by hand in the processor's console"
    bulk = {
        "action": "resolve_manually",
        "step": "charge_payment",
        "operator": "ops-oncall",
        "reason": by_hand,
        "older_than_seconds": 0,
    }
    dry = await api.post("/sagas/stuck/repair", json=bulk)
    assert dry.status_code == 200, dry.text
    mine = [i for i in dry.json()["items"] if i["order_id"] == order_id]
    assert [i["outcome"] for i in mine] == ["would-repair"]
    assert (await _saga(api, order_id))["saga"]["status"] == "COMPENSATING"  # dry: nothing done

    done = await repair(api, order_id, "resolve_manually", "charge_payment", reason=by_hand)
    assert done.status_code == 200, done.text
    assert f"by {DEVELOPMENT_PRINCIPAL}" in done.json()["detail"]
    assert "(on behalf of ops-oncall)" in done.json()["detail"]

    saga = await until_ended(api, order_id)
    assert saga["saga"]["status"] == "CANCELLED"
    charge = next(s for s in saga["saga"]["steps"] if s["name"] == "charge_payment")
    assert charge["resolution"]["operator"] == DEVELOPMENT_PRINCIPAL
    assert charge["resolution"]["reason"] == (
        "refunded by hand in the processor's console (on behalf of ops-oncall)"
    )
    assert any(n["kind"] == "resolved-manually" for n in saga["saga"]["notes"])
    for _ in range(50):  # the repair event is published by the API, beside the saga's own
        types = [e["event_type"] for e in (await _saga(api, order_id))["events"]]
        if REPAIRED in types:
            break
        await asyncio.sleep(0.2)
    assert types.count(REPAIRED) == 1
    # The saga's own incident events (saga.incident_*) are the subject of test_incidents.py.
    assert [t for t in types if t != REPAIRED and not t.startswith("saga.")] == [
        PLACED,
        CHARGED,
        RESERVED,
        NOT_SHIPPABLE,
        RELEASED,
        CANCELLED,
    ]
    repaired = next(
        e for e in (await _saga(api, order_id))["events"] if e["event_type"] == REPAIRED
    )
    assert repaired["data"]["operator"] == DEVELOPMENT_PRINCIPAL
    assert repaired["data"]["reason"].endswith("(on behalf of ops-oncall)")
    assert repaired["data"]["action"] == "resolve_manually"
    summary, details = await _web_ui_metadata(on, saga_workflow_id(order_id))
    assert summary == (
        f"order {order_id}: 1 item(s), total 1500 EUR (minor units), customer cust-api, to AQ"
    )
    assert (
        details
        == f"order {order_id}: CANCELLED at schedule_shipment, " + (saga["saga"]["failure_reason"])
    )


async def _web_ui_metadata(settings: Settings, workflow_id: str) -> tuple[str | None, str]:
    client = await wait_for_temporal(
        temporal_connection(settings),  # the cluster's server takes mTLS clients only
        settings.temporal_namespace,
        wait_seconds=10,
        data_converter=data_converter(settings),
    )
    return await web_ui_metadata(client.get_workflow_handle(workflow_id))


async def test_unknown_sagas_and_ended_sagas_answer_clearly(api: httpx.AsyncClient) -> None:
    assert (await api.get("/sagas/no-such-order")).status_code == 404
    assert (await api.get("/sagas/no-such-order/events")).status_code == 404
    order_id = await place(api, order_body("tok_chargeDeclined"))
    await until_ended(api, order_id)
    cancel = await api.post(
        f"/sagas/{order_id}/cancel", json={"reason": "too late", "requested_by": "cust-api"}
    )
    assert cancel.status_code == 409
    assert "ended" in cancel.json()["detail"]
    # The refusal is in the operator log (the API's own table: on PostgreSQL in the cluster).
    logged = (await api.get("/ops-log", params={"order_id": order_id})).json()["entries"]
    assert [(e["action"], e["outcome"], e["detail"]) for e in logged] == [
        ("cancel", "refused", cancel.json()["detail"])
    ]
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "temporal": "ok", "kafka": "ok"}
