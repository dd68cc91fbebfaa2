"""Returns through the API on the session's stack, as far as a return's saga only has to
start: bad returns refused naming the field, an unknown order, the same return asked for
twice, and the list and stuck endpoints filtered by saga type."""

import asyncio
import uuid
from typing import Any

import httpx

from contracts.activities import LOST_PARCEL_REASON
from tests.support.orders_api import order_body, place, until_ended, until_step_done


def _return_body(sku: str = "SKU-1003", quantity: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "return_id": f"ret-{uuid.uuid4().hex[:12]}",
        "items": [{"sku": sku, "quantity": quantity}],
        "reason": "too small",
        **fields,
    }


async def _placed_order(api: httpx.AsyncClient, customer_id: str = "cust-returns") -> str:
    """An order the orchestrator has recorded (its saga has done ``place_order``)."""
    order_id = await place(api, order_body(prefix="ret", customer_id=customer_id, quantity=2))
    await until_step_done(api, order_id, "place_order")
    return order_id


async def _listed(
    api: httpx.AsyncClient, params: dict[str, str], expected: int
) -> list[dict[str, Any]]:
    """``GET /sagas`` with ``params``, asked again until ``expected`` sagas are listed (the
    visibility store catches up shortly after a start)."""
    sagas: list[dict[str, Any]] = []
    for _ in range(100):
        response = await api.get("/sagas", params=params)
        assert response.status_code == 200, response.text
        sagas = response.json()["sagas"]
        if len(sagas) >= expected:
            break
        await asyncio.sleep(0.2)
    return sagas


async def test_bad_returns_are_refused_naming_the_field_and_start_nothing(
    api: httpx.AsyncClient,
) -> None:
    order_id = await _placed_order(api)
    body = _return_body(quantity=0, return_id="no spaces please")
    response = await api.post(f"/orders/{order_id}/returns", json=body)
    assert response.status_code == 422
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    assert set(problems) == {("body", "return_id"), ("body", "items", 0, "quantity")}

    no_items = {**_return_body(), "items": []}
    empty = await api.post(f"/orders/{order_id}/returns", json=no_items)
    assert empty.status_code == 422
    assert [p["loc"] for p in empty.json()["detail"]] == [["body", "items"]]

    twice = _return_body()
    twice["items"] *= 2
    doubled = await api.post(f"/orders/{order_id}/returns", json=twice)
    assert doubled.status_code == 422
    assert [p["loc"] for p in doubled.json()["detail"]] == [["body", "items"]]
    assert "listed twice" in doubled.json()["detail"][0]["msg"]

    bad_order = await api.post("/orders/not%20an%20id/returns", json=_return_body())
    assert bad_order.status_code == 422
    assert [p["loc"] for p in bad_order.json()["detail"]] == [["path", "order_id"]]

    for refused in (no_items, twice):
        assert (await api.get(f"/returns/{refused['return_id']}")).status_code == 404


async def test_a_return_of_an_unknown_order_is_refused(api: httpx.AsyncClient) -> None:
    body = _return_body()
    unknown = f"nobody-{uuid.uuid4().hex[:12]}"
    response = await api.post(f"/orders/{unknown}/returns", json=body)
    assert response.status_code == 404
    assert f"no order {unknown!r}" in response.json()["detail"]
    missing = await api.get(f"/returns/{body['return_id']}")
    assert missing.status_code == 404
    assert f"no saga for return {body['return_id']!r}" in missing.json()["detail"]


async def test_asking_for_the_same_return_twice_starts_one_saga(api: httpx.AsyncClient) -> None:
    """Same id and body: the existing saga (200). Same id, another body or order: 409."""
    order_id = await _placed_order(api)
    body = _return_body()
    return_id = body["return_id"]
    first = await api.post(f"/orders/{order_id}/returns", json=body)
    again = await api.post(f"/orders/{order_id}/returns", json=body)
    assert (first.status_code, again.status_code) == (202, 200), first.text
    assert first.json()["created"] is True
    assert again.json()["created"] is False
    assert first.json()["workflow_id"] == again.json()["workflow_id"] == f"return-{return_id}"
    assert first.json()["order_id"] == order_id
    links = first.json()["links"]
    assert links["saga"].endswith(f"/returns/{return_id}")
    assert links["events"].endswith(f"/returns/{return_id}/events")
    assert links["web_ui"].endswith(f"/workflows/return-{return_id}")

    other_body = await api.post(f"/orders/{order_id}/returns", json={**body, "reason": "broken"})
    assert other_body.status_code == 409
    assert return_id in other_body.json()["detail"]
    other_order = await _placed_order(api)
    elsewhere = await api.post(f"/orders/{other_order}/returns", json=body)
    assert elsewhere.status_code == 409


async def test_listing_filters_by_saga_type(api: httpx.AsyncClient) -> None:
    """An order and its return: each type alone, or both; each row names its type and id."""
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    order_id = await _placed_order(api, customer)
    body = _return_body()
    started = await api.post(f"/orders/{order_id}/returns", json=body)
    assert started.status_code == 202, started.text

    both = await _listed(api, {"customer_id": customer}, 2)
    assert sorted((s["saga_type"], s["saga_id"]) for s in both) == [
        ("order", order_id),
        ("return", body["return_id"]),
    ]
    assert {s["order_id"] for s in both} == {order_id}
    returns = await _listed(api, {"customer_id": customer, "type": "return"}, 1)
    assert [(s["saga_type"], s["saga_id"], s["workflow_id"]) for s in returns] == [
        ("return", body["return_id"], f"return-{body['return_id']}")
    ]
    assert returns[0]["links"]["saga"].endswith(f"/returns/{body['return_id']}")
    orders = await _listed(api, {"customer_id": customer, "type": "order"}, 1)
    assert [(s["saga_type"], s["saga_id"]) for s in orders] == [("order", order_id)]

    ended = await api.get("/sagas", params={"type": "return", "status": "REJECTED"})
    assert ended.status_code == 200, ended.text
    assert {s["saga_status"] for s in ended.json()["sagas"]} <= {"REJECTED"}
    assert (await api.get("/sagas", params={"status": "EXPIRED"})).status_code == 200
    for params, where in (
        ({"type": "refund"}, ["query", "type"]),
        ({"status": "LOST"}, ["query", "status"]),
        ({"type": "order", "step": "authorize_return"}, ["query", "step"]),
    ):
        refused = await api.get("/sagas", params=params)
        assert refused.status_code == 422, params
        assert [p["loc"] for p in refused.json()["detail"]] == [where]
    by_step = await api.get("/sagas", params={"type": "return", "step": "authorize_return"})
    assert by_step.status_code == 200, by_step.text


async def test_stuck_sagas_filter_by_saga_type(api: httpx.AsyncClient) -> None:
    """A return whose parcel never comes stays running: listed among the returns that have
    not moved, never among the orders."""
    order_id = await _placed_order(api)
    await until_ended(api, order_id)
    body = _return_body(reason=LOST_PARCEL_REASON)
    started = await api.post(f"/orders/{order_id}/returns", json=body)
    assert started.status_code == 202, started.text

    entry: dict[str, Any] | None = None
    for _ in range(50):
        returns = await api.get("/sagas/stuck", params={"older_than_seconds": 0, "type": "return"})
        assert returns.status_code == 200, returns.text
        assert {s["saga_type"] for s in returns.json()} <= {"return"}
        entry = next((s for s in returns.json() if s["saga_id"] == body["return_id"]), None)
        if entry is not None:
            break
        await asyncio.sleep(0.2)
    assert entry is not None, f"return {body['return_id']} never listed"
    assert entry["order_id"] == order_id
    assert entry["workflow_id"] == f"return-{body['return_id']}"
    assert entry["links"]["saga"].endswith(f"/returns/{body['return_id']}")

    orders = await api.get("/sagas/stuck", params={"older_than_seconds": 0, "type": "order"})
    assert orders.status_code == 200, orders.text
    assert {s["saga_type"] for s in orders.json()} <= {"order"}
    assert body["return_id"] not in {s["saga_id"] for s in orders.json()}
    refused = await api.get("/sagas/stuck", params={"type": "order", "step": "refund"})
    assert refused.status_code == 422
    assert [p["loc"] for p in refused.json()["detail"]] == [["query", "step"]]
