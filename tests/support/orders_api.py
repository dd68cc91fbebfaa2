"""Orders through the API, as the tests that drive a running stack place and follow them."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from infra.config.settings import Settings, api_headers
from tests.support.saga_paths import ENDS, SagaPath


def order_body(
    token: str = "tok_visa",
    country: str = "DE",
    quantity: int = 1,
    *,
    sku: str = "SKU-1003",
    prefix: str = "api",
    customer_id: str = "cust-api",
    order_id: str | None = None,
    deadline: int | None = None,
    unit_price: int = 1500,
) -> dict[str, Any]:
    """The JSON of ``POST /orders``: one line of ``sku``, paid with ``token``, to ``country``;
    a new order id starting with ``prefix`` unless ``order_id`` is given."""
    body: dict[str, Any] = {
        "order_id": order_id or f"{prefix}-{uuid.uuid4().hex[:12]}",
        "customer_id": customer_id,
        "items": [{"sku": sku, "quantity": quantity, "unit_price": unit_price}],
        "currency": "EUR",
        "payment_token": token,
        "shipping_address": {"country": country, "city": "Berlin"},
    }
    if deadline is not None:
        body["dispatch_deadline_seconds"] = deadline
    return body


@contextlib.asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API of the stack ``settings`` describe, sending its development token."""
    async with httpx.AsyncClient(
        base_url=settings.api_url, timeout=30, headers=api_headers(settings)
    ) as client:
        yield client


async def place(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """``POST /orders``, which must be accepted (202); the order id."""
    response = await api.post("/orders", json=body)
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def saga_when(
    api: httpx.AsyncClient,
    order_id: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    wait_s: float = 90.0,
) -> dict[str, Any]:
    """``GET /sagas/{order_id}``, asked again until ``done`` holds for its answer."""
    deadline = asyncio.get_running_loop().time() + wait_s
    saga: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        response = await api.get(f"/sagas/{order_id}")
        assert response.status_code == 200, response.text
        saga = response.json()
        if done(saga):
            return saga
        await asyncio.sleep(0.1)
    raise AssertionError(f"saga {order_id} never got there: {saga.get('saga')}")


async def until_ended(
    api: httpx.AsyncClient, order_id: str, *, closing_event: bool = True, wait_s: float = 90.0
) -> dict[str, Any]:
    """``GET /sagas/{order_id}`` once Temporal has closed the saga and, with
    ``closing_event``, its closing event is in the timeline."""

    def ended(saga: dict[str, Any]) -> bool:
        closed = not closing_event or any(e["event_type"] in ENDS for e in saga["events"])
        return saga["execution_status"] != "RUNNING" and closed

    return await saga_when(api, order_id, ended, wait_s=wait_s)


async def repair(
    api: httpx.AsyncClient,
    order_id: str,
    action: str,
    step: str,
    reason: str,
    operator: str = "ops-oncall",
) -> httpx.Response:
    """``POST /sagas/{order_id}/repair``, whatever it answers."""
    return await api.post(
        f"/sagas/{order_id}/repair",
        json={"action": action, "step": step, "operator": operator, "reason": reason},
    )


async def until_step_done(api: httpx.AsyncClient, order_id: str, step: str) -> None:
    """Wait until the saga of ``order_id`` has done ``step``."""
    await saga_when(
        api,
        order_id,
        lambda saga: any(s["name"] == step and s["state"] == "done" for s in saga["saga"]["steps"]),
        wait_s=30,
    )


async def run_path(api: httpx.AsyncClient, path: SagaPath, **order: Any) -> dict[str, Any]:
    """Order as ``path`` says through ``POST /orders`` (the customer cancelling if it says
    so) and return the saga once it ended and its timeline holds the path's events.
    ``order``: more of :func:`order_body`'s fields (``sku``, ``prefix``, ``customer_id``)."""
    order_id = await place(
        api, order_body(path.token, path.country, path.quantity, deadline=path.deadline, **order)
    )
    if path.customer_cancels:
        await until_step_done(api, order_id, "schedule_shipment")
        cancel = await api.post(
            f"/sagas/{order_id}/cancel",
            json={"reason": "changed my mind", "requested_by": "cust-api"},
        )
        assert cancel.status_code == 202, cancel.text
    await until_ended(api, order_id)
    # Each service's events reach the projector on their own topic: the closing event may be
    # projected before a compensation's (two projector copies, on the cluster): wait for all.
    return await saga_when(api, order_id, lambda saga: len(saga["events"]) >= len(path.events))
