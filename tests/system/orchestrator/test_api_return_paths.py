"""Returns through the API to their end on the session's stack: completed (restocked and
refunded), rejected (the order was never dispatched, was dispatched outside the window, more
than was bought or an item it lacks, the loser of two racing returns), expired (the parcel is
lost), and a refund stuck until an operator resolves it; each shown by
``GET /returns/{return_id}`` with its events, and where money or stock moves, checked in the
payment service's ledger and the inventory's stock through their query modules."""

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx

from contracts.activities import LOST_PARCEL_REASON
from infra.config.settings import Settings
from orchestrator import queries as order_queries
from orchestrator.api.auth import DEVELOPMENT_PRINCIPAL
from tests.support.orders_api import order_body, place, saga_when, until_ended
from tests.support.saga_paths import REPAIRED
from workers.inventory import queries as inventory_queries
from workers.payment import queries as payment_queries

_ENDS = {"return.completed.v1", "return.rejected.v1", "return.expired.v1"}


_DAY = 86400
_PRICE = 1500
"""The unit price of every order of this module (``order_body``'s)."""
_SKU = "SKU-1001"
"""The SKU the tests that count stock order and return (the others' is SKU-1003)."""


def _body(quantity: int = 1, **fields: Any) -> dict[str, Any]:
    return _lines({"SKU-1003": quantity}, **fields)


def _lines(quantities: dict[str, int], **fields: Any) -> dict[str, Any]:
    """A return body with a new return id and one item per SKU of ``quantities``."""
    return {
        "return_id": f"retp-{uuid.uuid4().hex[:12]}",
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in quantities.items()],
        **fields,
    }


async def _return(api: httpx.AsyncClient, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start the return (202) and answer ``GET /returns/{return_id}`` once it has ended and
    its closing event is among its events."""
    await _start(api, order_id, body)
    return await _ended(api, body["return_id"])


async def _start(api: httpx.AsyncClient, order_id: str, body: dict[str, Any]) -> None:
    started = await api.post(f"/orders/{order_id}/returns", json=body)
    assert started.status_code == 202, started.text


async def _view_when(
    api: httpx.AsyncClient,
    return_id: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    wait_s: float = 90,
) -> dict[str, Any]:
    """``GET /returns/{return_id}``, asked again until ``done`` holds for its answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    view: dict[str, Any] = {}
    while loop.time() < deadline:
        response = await api.get(f"/returns/{return_id}")
        assert response.status_code == 200, response.text
        view = response.json()
        if done(view):
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"return {return_id} never got there: {view.get('saga')}")


async def _ended(api: httpx.AsyncClient, return_id: str) -> dict[str, Any]:
    """``GET /returns/{return_id}`` once the return has ended and its closing event is among
    its events."""

    def ended(view: dict[str, Any]) -> bool:
        closed = any(event["event_type"] in _ENDS for event in view["events"])
        return view["execution_status"] != "RUNNING" and closed

    return await _view_when(api, return_id, ended)


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


# --- What the services recorded, read through their query modules -------------------------


def _return_refunds(stack: Settings, order_id: str) -> dict[str, int]:
    """The payment ledger's refunds of the order's returns: return id to amount (minor)."""
    path = payment_queries.database_path(stack.run_dir)
    with payment_queries.PaymentQueries.open(path) as payments:
        entries = [e for e in payments.ledger_entries() if e.order_id == order_id]
    refunds = [e for e in entries if e.kind == "return_refund"]
    assert len({e.return_id for e in refunds}) == len(refunds), refunds  # one per return
    return {str(e.return_id): e.amount_minor for e in refunds}


def _charged(stack: Settings, order_id: str) -> int:
    """What the order's charge took (minor units), from the payment ledger."""
    path = payment_queries.database_path(stack.run_dir)
    with payment_queries.PaymentQueries.open(path) as payments:
        charges = [
            e.amount_minor
            for e in payments.ledger_entries()
            if e.order_id == order_id and e.kind == "charge"
        ]
    assert len(charges) == 1, charges
    return charges[0]


def _restocked(stack: Settings, *return_ids: str) -> dict[str, int]:
    """Units of ``_SKU`` the inventory put back for each of ``return_ids`` (those it restocked
    at all): exact, whatever other tests' sagas do to the shelf meanwhile."""
    path = inventory_queries.database_path(stack.run_dir)
    with inventory_queries.InventoryQueries.open(path) as inventory:
        lines = inventory.restock_lines()
    return {
        line.return_id: line.quantity
        for line in lines
        if line.return_id in return_ids and line.sku == _SKU
    }


def _dispatched_days_ago(stack: Settings, order_id: str, days: float) -> None:
    """Move the completed order's dispatch ``days`` back in the orchestrator's order book
    (``orders.completed_at``, what the return window is measured from), as an order
    dispatched that long ago would read."""
    path = order_queries.database_path(stack.run_dir)
    with closing(sqlite3.connect(path, timeout=30)) as db, db:
        moved = db.execute(
            "UPDATE orders SET completed_at = completed_at - ?"
            " WHERE order_id = ? AND status = 'completed' AND completed_at IS NOT NULL",
            (days * _DAY, order_id),
        ).rowcount
    assert moved == 1, f"order {order_id} is not a completed order of the book"


async def _dispatched_orders(api: httpx.AsyncClient, *quantities: int, **body: Any) -> list[str]:
    """Orders of ``_SKU`` (one per quantity) placed at once, each once its saga completed."""
    orders = await asyncio.gather(
        *(place(api, order_body(sku=_SKU, prefix="retp", quantity=q, **body)) for q in quantities)
    )
    for saga in await asyncio.gather(*(until_ended(api, order_id) for order_id in orders)):
        assert saga["saga"]["status"] == "COMPLETED", saga["saga"]
    return list(orders)


def _types(view: dict[str, Any]) -> list[str]:
    return [event["event_type"] for event in view["events"]]


def _rejection(view: dict[str, Any]) -> str:
    """The reason code of a rejected return, which must have no other event."""
    assert view["saga"]["outcome"] == "REJECTED", view["saga"]
    assert _types(view) == ["return.rejected.v1"]
    code: str = view["events"][0]["data"]["reason_code"]
    return code


def _step(view: dict[str, Any], name: str) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in view["saga"]["steps"] if s["name"] == name)
    return step


def _completed_with(view: dict[str, Any], quantity: int) -> None:
    """The return completed, restocking ``quantity`` of ``_SKU`` and refunding their price."""
    assert view["saga"]["outcome"] == "COMPLETED", view["saga"]
    types = _types(view)
    assert types.count("inventory.restocked.v1") == 1
    assert types.count("payment.refunded.v2") == 1
    assert types[-1] == "return.completed.v1"
    restocked = next(e for e in view["events"] if e["event_type"] == "inventory.restocked.v1")
    assert restocked["data"]["items"] == [{"sku": _SKU, "quantity": quantity}]
    refunded = next(e for e in view["events"] if e["event_type"] == "payment.refunded.v2")
    assert refunded["data"]["amount"]["amount_minor"] == quantity * _PRICE


# --- Rejected: outside the window, more than bought, an item the order lacks --------------


async def test_a_return_after_the_window_is_rejected_and_one_inside_it_completes(
    api: httpx.AsyncClient, stack: Settings
) -> None:
    """Dispatched 31 days before the request (the window is 30): WINDOW_CLOSED, nothing held,
    restocked or refunded. Dispatched 29 days before: restocked and refunded."""
    late, in_time = await _dispatched_orders(api, 1, 1)
    _dispatched_days_ago(stack, late, 31)
    _dispatched_days_ago(stack, in_time, 29)
    too_late, still_in_time = _lines({_SKU: 1}), _lines({_SKU: 1})

    refused, accepted = await asyncio.gather(
        _return(api, late, too_late), _return(api, in_time, still_in_time)
    )

    assert _rejection(refused) == "WINDOW_CLOSED"
    assert "dispatched 31 days before the request" in refused["events"][0]["data"]["reason"]
    assert "returns close after 30 days" in refused["saga"]["failure_reason"]
    _completed_with(accepted, 1)
    assert _return_refunds(stack, late) == {}
    assert _return_refunds(stack, in_time) == {still_in_time["return_id"]: _PRICE}
    restocked = _restocked(stack, too_late["return_id"], still_in_time["return_id"])
    assert restocked == {still_in_time["return_id"]: 1}  # the return in time alone
    row = await _listed_as(api, too_late["return_id"], "REJECTED")
    assert (row["order_id"], row["saga_step"]) == (late, "authorize_return")


async def test_more_than_bought_or_an_item_not_bought_is_rejected(
    api: httpx.AsyncClient, stack: Settings
) -> None:
    """Three of an item bought twice: MORE_THAN_BOUGHT; an item the order lacks (beside one
    it has): UNKNOWN_ITEM. Neither holds anything: the two bought still come back."""
    (order_id,) = await _dispatched_orders(api, 2)
    three, stranger = _lines({_SKU: 3}), _lines({_SKU: 1, "SKU-1002": 1})

    too_many, unknown = await asyncio.gather(
        _return(api, order_id, three), _return(api, order_id, stranger)
    )

    assert _rejection(too_many) == "MORE_THAN_BOUGHT"
    assert f"{_SKU} (asked 3, bought 2" in too_many["events"][0]["data"]["reason"]
    assert _rejection(unknown) == "UNKNOWN_ITEM"
    assert "has no SKU-1002" in unknown["events"][0]["data"]["reason"]
    assert _return_refunds(stack, order_id) == {}
    both = _lines({_SKU: 2})
    _completed_with(await _return(api, order_id, both), 2)
    assert _return_refunds(stack, order_id) == {both["return_id"]: 2 * _PRICE}


# --- Two returns of one order racing each other -----------------------------------------


async def test_of_two_racing_returns_one_completes_and_the_other_is_rejected(
    api: httpx.AsyncClient, stack: Settings
) -> None:
    """Two returns of 2 of the 3 bought, asked at once: one holds its 2, completes, is
    restocked and refunded; the other is refused MORE_THAN_BOUGHT. What the completed one
    took cannot come back again; the one unit left can."""
    (order_id,) = await _dispatched_orders(api, 3)
    first, second = _lines({_SKU: 2}), _lines({_SKU: 2})

    await asyncio.gather(_start(api, order_id, first), _start(api, order_id, second))
    views = await asyncio.gather(_ended(api, first["return_id"]), _ended(api, second["return_id"]))

    outcomes = sorted(view["saga"]["outcome"] for view in views)
    assert outcomes == ["COMPLETED", "REJECTED"], [view["saga"] for view in views]
    won = next(view for view in views if view["saga"]["outcome"] == "COMPLETED")
    lost = next(view for view in views if view["saga"]["outcome"] == "REJECTED")
    _completed_with(won, 2)
    assert _rejection(lost) == "MORE_THAN_BOUGHT"
    assert "already returned or held 2" in lost["events"][0]["data"]["reason"]
    assert _return_refunds(stack, order_id) == {won["return_id"]: 2 * _PRICE}
    assert _restocked(stack, first["return_id"], second["return_id"]) == {won["return_id"]: 2}

    again = await _return(api, order_id, _lines({_SKU: 2}))
    assert _rejection(again) == "MORE_THAN_BOUGHT"  # the completed return's 2 stay taken
    rest = _lines({_SKU: 1})
    _completed_with(await _return(api, order_id, rest), 1)
    refunds = _return_refunds(stack, order_id)
    assert refunds == {won["return_id"]: 2 * _PRICE, rest["return_id"]: _PRICE}
    assert sum(refunds.values()) <= _charged(stack, order_id)
    assert _restocked(stack, won["return_id"], lost["return_id"], rest["return_id"]) == {
        won["return_id"]: 2,
        rest["return_id"]: 1,
    }


# --- A refund that keeps failing: stuck, retried, resolved by an operator -----------------


async def _repair_return(
    api: httpx.AsyncClient, return_id: str, action: str, reason: str
) -> dict[str, Any]:
    response = await api.post(
        f"/returns/{return_id}/repair",
        json={"action": action, "step": "refund", "operator": "ops-oncall", "reason": reason},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _stuck_return(api: httpx.AsyncClient, return_id: str) -> dict[str, Any]:
    """The return's row of ``GET /sagas/stuck?type=return``, once the saga flags it stuck."""
    for _ in range(150):
        response = await api.get("/sagas/stuck", params={"older_than_seconds": 0, "type": "return"})
        assert response.status_code == 200, response.text
        entry: dict[str, Any] | None = next(
            (s for s in response.json() if s["saga_id"] == return_id), None
        )
        if entry is not None and entry["flagged_stuck"]:
            return entry
        await asyncio.sleep(0.2)
    raise AssertionError(f"return {return_id} never listed as stuck")


async def test_a_refund_that_keeps_failing_is_stuck_until_an_operator_resolves_it(
    api: httpx.AsyncClient, stack: Settings
) -> None:
    """Paid with ``tok_refundOutage``: the parcel is back and restocked, but every refund of
    the return fails. The refund step is shown stuck (and listed); retry_now runs a new round
    at once, which fails again; resolved by hand, the return completes with the manual
    refund id, and each repair is published on the order's timeline."""
    (order_id,) = await _dispatched_orders(api, 2, token="tok_refundOutage")
    body = _lines({_SKU: 1})
    return_id = body["return_id"]
    await _start(api, order_id, body)

    stuck = await _view_when(api, return_id, lambda v: _step(v, "refund")["stuck"])
    refund = _step(stuck, "refund")
    assert (stuck["execution_status"], stuck["saga"]["current_step"]) == ("RUNNING", "refund")
    assert (refund["state"], refund["attempts"]) == ("running", 5)
    assert "refuses refunds" in refund["last_error"]
    assert "inventory.restocked.v1" in _types(stuck)
    assert not any(t.startswith("payment.refunded") for t in _types(stuck))
    entry = await _stuck_return(api, return_id)
    assert (entry["order_id"], entry["step"], entry["owner"]) == (order_id, "refund", "payment")
    assert (entry["saga_type"], entry["compensating"]) == ("return", False)
    assert "refuses refunds" in (entry["last_failure"] or "")

    loop = asyncio.get_running_loop()
    retried_at = loop.time()
    retried = await _repair_return(api, return_id, "retry_now", "the PSP says it is back")
    assert retried["detail"].startswith(f"refund: retry now, asked by {DEVELOPMENT_PRINCIPAL}")
    # The next round would wait 30 s (the stuck backoff): retry_now starts it at once, and
    # the card fails all of it again.
    again = await _view_when(
        api, return_id, lambda v: _step(v, "refund")["attempts"] >= 10, wait_s=60
    )
    assert loop.time() - retried_at < 28
    assert (_step(again, "refund")["attempts"], _step(again, "refund")["stuck"]) == (10, True)
    assert again["execution_status"] == "RUNNING"

    by_hand = "refunded by hand in the processor's console"
    resolved = await _repair_return(api, return_id, "resolve_manually", by_hand)
    assert resolved["detail"].startswith(f"refund: resolved manually by {DEVELOPMENT_PRINCIPAL}")
    view = await _ended(api, return_id)

    assert view["saga"]["outcome"] == "COMPLETED", view["saga"]
    refund = _step(view, "refund")
    assert (refund["state"], refund["stuck"]) == ("done", False)
    assert refund["resolution"]["operator"] == DEVELOPMENT_PRINCIPAL
    assert refund["resolution"]["reason"] == f"{by_hand} (on behalf of ops-oncall)"
    # A parcel's signal delivered twice is noted too (``delivery-ignored``): not an operator's.
    operator_notes = [n["kind"] for n in view["saga"]["notes"] if n["kind"] != "delivery-ignored"]
    assert operator_notes == ["retry-now", "resolved-manually"]
    completed = view["events"][-1]
    assert completed["event_type"] == "return.completed.v1"
    assert completed["data"]["refund_id"] == f"manual-{return_id}"
    assert completed["data"]["amount"]["amount_minor"] == _PRICE
    assert _return_refunds(stack, order_id) == {}  # the ledger never saw the hand refund
    assert _restocked(stack, return_id) == {return_id: 1}

    def both_repairs(saga: dict[str, Any]) -> bool:
        return [e["event_type"] for e in saga["events"]].count(REPAIRED) == 2

    timeline = await saga_when(api, order_id, both_repairs, wait_s=30)
    repairs = [e["data"] for e in timeline["events"] if e["event_type"] == REPAIRED]
    assert [r["action"] for r in repairs] == ["retry_now", "resolve_manually"]
    assert all(r["detail"].startswith(f"return {return_id}: refund: ") for r in repairs)
    assert all(r["operator"] == DEVELOPMENT_PRINCIPAL for r in repairs)
    assert repairs[1]["reason"] == f"{by_hand} (on behalf of ops-oncall)"
