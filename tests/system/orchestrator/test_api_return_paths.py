"""Returns through the API to their end on the session's stack: completed (restocked and
refunded), rejected (the order was never dispatched), expired (the parcel is lost), each
shown by ``GET /returns/{return_id}`` with its events and listed by type and status."""

import asyncio
import uuid
from typing import Any

import httpx

from contracts.activities import LOST_PARCEL_REASON
from tests.support.orders_api import order_body, place, until_ended

_ENDS = {"return.completed.v1", "return.rejected.v1", "return.expired.v1"}


def _body(quantity: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "return_id": f"retp-{uuid.uuid4().hex[:12]}",
        "items": [{"sku": "SKU-1003", "quantity": quantity}],
        **fields,
    }


async def _return(api: httpx.AsyncClient, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start the return (202) and answer ``GET /returns/{return_id}`` once it has ended and
    its closing event is among its events."""
    started = await api.post(f"/orders/{order_id}/returns", json=body)
    assert started.status_code == 202, started.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    view: dict[str, Any] = {}
    while loop.time() < deadline:
        response = await api.get(f"/returns/{body['return_id']}")
        assert response.status_code == 200, response.text
        view = response.json()
        closed = any(event["event_type"] in _ENDS for event in view["events"])
        if view["execution_status"] != "RUNNING" and closed:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"return {body['return_id']} never ended: {view.get('saga')}")


async def _listed_as(api: httpx.AsyncClient, return_id: str, status: str) -> dict[str, Any]:
    """The return's row of ``GET /sagas?type=return&status=...``, once visibility has it."""
    for _ in range(100):
        page = await api.get("/sagas", params={"type": "return", "status": status})
        assert page.status_code == 200, page.text
        row: dict[str, Any] | None = next(
            (s for s in page.json()["sagas"] if s["saga_id"] == return_id), None
        )
        if row is not None:
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"return {return_id} never listed as {status}")


async def test_a_return_of_a_dispatched_order_is_restocked_and_refunded(
    api: httpx.AsyncClient,
) -> None:
    order_id = await place(api, order_body(prefix="retp", quantity=2))
    await until_ended(api, order_id)
    body = _body()
    view = await _return(api, order_id, body)
    assert view["saga"]["outcome"] == "COMPLETED", view["saga"]
    assert view["order_id"] == order_id
    types = [event["event_type"] for event in view["events"]]
    assert types[0] == "return.authorized.v1"
    assert types[-1] == "return.completed.v1"
    assert {"shipping.return_label_issued.v1", "inventory.restocked.v1"} <= set(types)
    assert any(kind.startswith("payment.refunded.") for kind in types)
    assert {event["data"]["return_id"] for event in view["events"]} == {body["return_id"]}
    row = await _listed_as(api, body["return_id"], "COMPLETED")
    assert (row["saga_type"], row["order_id"]) == ("return", order_id)


async def test_a_return_of_an_order_never_dispatched_is_rejected(api: httpx.AsyncClient) -> None:
    order_id = await place(api, order_body("tok_chargeDeclined", prefix="retp"))
    await until_ended(api, order_id)
    body = _body()
    view = await _return(api, order_id, body)
    assert view["saga"]["outcome"] == "REJECTED", view["saga"]
    assert [event["event_type"] for event in view["events"]] == ["return.rejected.v1"]
    again = await api.post(f"/orders/{order_id}/returns", json=body)
    assert again.status_code == 200  # an ended return is found, not started again
    row = await _listed_as(api, body["return_id"], "REJECTED")
    assert row["saga_step"] == "authorize_return"


async def test_a_lost_parcel_expires_the_return(api: httpx.AsyncClient) -> None:
    order_id = await place(api, order_body(prefix="retp", quantity=2))
    await until_ended(api, order_id)
    body = _body(reason=LOST_PARCEL_REASON, deadline_seconds=2)
    view = await _return(api, order_id, body)
    assert view["saga"]["outcome"] == "EXPIRED", view["saga"]
    types = [event["event_type"] for event in view["events"]]
    assert "shipping.return_label_voided.v1" in types
    assert types[-1] == "return.expired.v1"
    await _listed_as(api, body["return_id"], "EXPIRED")
