"""The order service's returns on a real store (SQLite and PostgreSQL): each decision with its
event, once per return id; two racing returns of one order never take the same units."""

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contracts.activities import (
    AuthorizeReturnInput,
    CancelOrderInput,
    CompleteOrderInput,
    CompleteReturnInput,
    ExpireReturnInput,
    Order,
    PlaceOrderInput,
    ReturnRequest,
)
from contracts.codec import decode_event
from contracts.envelope import AnyEvent
from contracts.errors import RETURN_REJECTED
from contracts.events.common import Money, OrderLine, PricedLine, StockLine
from contracts.events.returns import ReturnRejectionCode
from orchestrator.orders import OrderBook
from orchestrator.returns import ReturnActivities, ReturnBook, ReturnRefused
from runtime import Database, Outbox, Where, open_database

WINDOW = 30 * 24 * 3600


class _Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outbox = Outbox(db)
        self.orders = OrderBook(db, self.outbox)
        self.returns = ReturnBook(db, self.outbox)
        self.activities = ReturnActivities(self.returns)

    def events(self, order_id: str, prefix: str = "return.") -> list[AnyEvent]:
        decoded = [
            decode_event(row.value, row.headers) for row in self.outbox.rows_for_order(order_id)
        ]
        return [event for event in decoded if event.event_type.startswith(prefix)]


@pytest.fixture
def where(database_at: Callable[[str], Where]) -> Where:
    return database_at("orchestrator")


@pytest.fixture
def store(where: Where) -> Iterator[_Store]:
    db = open_database(where, migrations=[OrderBook.MIGRATIONS])
    yield _Store(db)
    db.close()


def _place(store: _Store, order_id: str, *, complete: bool = True) -> None:
    order = Order.model_validate(
        {
            "order_id": order_id,
            "customer_id": "c-1",
            "items": [
                OrderLine(sku="SKU-A", quantity=3, unit_price_minor=500),
                OrderLine(sku="SKU-B", quantity=1, unit_price_minor=1250),
            ],
            "currency": "EUR",
            "payment_token": "tok_visa",
            "shipping_address": {"country": "DE"},
        }
    )
    store.orders.place(PlaceOrderInput(order=order), cause=None)
    if complete:
        store.orders.complete(
            CompleteOrderInput(
                order_id=order_id, payment_id=f"pay-{order_id}", reservation_id="r", shipment_id="s"
            ),
            cause=None,
        )


def _authorize(
    order_id: str,
    return_id: str,
    items: dict[str, int],
    *,
    at: datetime | None = None,
) -> AuthorizeReturnInput:
    return AuthorizeReturnInput(
        request=ReturnRequest(
            return_id=return_id,
            order_id=order_id,
            items=[StockLine(sku=sku, quantity=quantity) for sku, quantity in items.items()],
            reason="too small",
        ),
        requested_at=at or datetime.now(UTC),
        window_seconds=WINDOW,
    )


async def _refused(store: _Store, request: AuthorizeReturnInput) -> tuple[str, str]:
    """Authorize twice (Temporal may): refused each time alike; (code, message)."""
    answers = []
    for _ in range(2):
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(store.activities.authorize, request)
        assert refused.value.type == RETURN_REJECTED
        assert refused.value.non_retryable
        answers.append((refused.value.details[0], refused.value.message))
    assert answers[0] == answers[1]
    return answers[0]


async def test_an_accepted_return_is_priced_as_bought_and_published_once(store: _Store) -> None:
    _place(store, "o1")
    request = _authorize("o1", "r1", {"SKU-A": 2, "SKU-B": 1})
    env = ActivityEnvironment()

    first = await env.run(store.activities.authorize, request)
    again = await env.run(store.activities.authorize, request)

    assert again == first
    assert first.payment_id == "pay-o1"
    assert first.amount == Money(amount_minor=2 * 500 + 1250, currency="EUR")
    assert sorted(first.lines, key=lambda line: line.sku) == [
        PricedLine(sku="SKU-A", quantity=2, unit_price=Money(amount_minor=500, currency="EUR")),
        PricedLine(sku="SKU-B", quantity=1, unit_price=Money(amount_minor=1250, currency="EUR")),
    ]
    [event] = store.events("o1")
    assert event.event_type == "return.authorized.v1"
    assert event.source == "order-service"
    assert event.data.return_id == "r1"
    assert event.data.amount == first.amount
    assert store.returns.held("o1") == {"SKU-A": 2, "SKU-B": 1}


async def test_an_unknown_order_is_refused_with_its_code_and_one_event(store: _Store) -> None:
    code, message = await _refused(store, _authorize("nobody", "r1", {"SKU-A": 1}))

    assert code == ReturnRejectionCode.UNKNOWN_ORDER
    assert "nobody" in message
    [event] = store.events("nobody")
    assert event.event_type == "return.rejected.v1"
    assert (event.data.reason_code, event.data.reason) == (code, message)


@pytest.mark.parametrize("cancelled", [False, True], ids=["running", "cancelled"])
async def test_an_order_not_dispatched_is_refused(store: _Store, cancelled: bool) -> None:
    _place(store, "o1", complete=False)
    if cancelled:
        store.orders.cancel(CancelOrderInput(order_id="o1", reason="no stock"), cause=None)

    code, _ = await _refused(store, _authorize("o1", "r1", {"SKU-A": 1}))

    assert code == ReturnRejectionCode.NOT_DISPATCHED
    assert [e.event_type for e in store.events("o1")] == ["return.rejected.v1"]
    assert store.returns.held("o1") == {}


async def test_the_window_is_measured_from_the_dispatch_to_the_request(store: _Store) -> None:
    _place(store, "o1")
    dispatched = datetime.now(UTC)
    late = dispatched + timedelta(seconds=WINDOW + 60)
    in_time = dispatched + timedelta(seconds=WINDOW - 60)

    code, message = await _refused(store, _authorize("o1", "late", {"SKU-A": 1}, at=late))
    accepted = await ActivityEnvironment().run(
        store.activities.authorize, _authorize("o1", "in-time", {"SKU-A": 1}, at=in_time)
    )

    assert code == ReturnRejectionCode.WINDOW_CLOSED
    assert "30 days" in message
    assert accepted.return_id == "in-time"


async def test_an_item_the_order_lacks_is_refused(store: _Store) -> None:
    _place(store, "o1")
    code, message = await _refused(store, _authorize("o1", "r1", {"SKU-A": 1, "SKU-Z": 1}))
    assert code == ReturnRejectionCode.UNKNOWN_ITEM
    assert "SKU-Z" in message


async def test_earlier_returns_hold_their_quantities_until_they_expire(store: _Store) -> None:
    _place(store, "o1")
    env = ActivityEnvironment()
    await env.run(store.activities.authorize, _authorize("o1", "r1", {"SKU-A": 2}))

    code, message = await _refused(store, _authorize("o1", "r2", {"SKU-A": 2}))
    assert code == ReturnRejectionCode.MORE_THAN_BOUGHT
    assert "asked 2, bought 3, already returned or held 2" in message

    expire = ExpireReturnInput(order_id="o1", return_id="r1", reason="parcel never arrived")
    first = await env.run(store.activities.expire, expire)
    second = await env.run(store.activities.expire, expire)
    assert first.expired and second.expired
    assert store.returns.held("o1") == {}

    # The refusal of r2 stays its answer; a new return may now take the units.
    assert await _refused(store, _authorize("o1", "r2", {"SKU-A": 2})) == (code, message)
    assert await env.run(store.activities.authorize, _authorize("o1", "r3", {"SKU-A": 3}))
    assert [e.event_type for e in store.events("o1")] == [
        "return.authorized.v1",
        "return.rejected.v1",
        "return.expired.v1",
        "return.authorized.v1",
    ]


async def test_a_completed_return_keeps_its_quantities_and_completes_once(
    store: _Store,
) -> None:
    _place(store, "o1")
    env = ActivityEnvironment()
    accepted = await env.run(store.activities.authorize, _authorize("o1", "r1", {"SKU-B": 1}))
    complete = CompleteReturnInput(
        order_id="o1", return_id="r1", refund_id="rf-1", amount=accepted.amount
    )

    assert (await env.run(store.activities.complete, complete)).completed
    assert (await env.run(store.activities.complete, complete)).completed
    # Completed is final: the compensation of the authorization no longer applies.
    expire = ExpireReturnInput(order_id="o1", return_id="r1", reason="late")
    assert not (await env.run(store.activities.expire, expire)).expired

    assert store.returns.status("r1") == "completed"
    assert store.returns.held("o1") == {"SKU-B": 1}
    code, _ = await _refused(store, _authorize("o1", "r2", {"SKU-B": 1}))
    assert code == ReturnRejectionCode.MORE_THAN_BOUGHT
    completed = [e for e in store.events("o1") if e.event_type == "return.completed.v1"]
    assert [(e.data.refund_id, e.data.amount) for e in completed] == [("rf-1", accepted.amount)]


async def test_expiring_or_completing_a_return_never_authorized_does_nothing(
    store: _Store,
) -> None:
    env = ActivityEnvironment()
    await _refused(store, _authorize("nobody", "r1", {"SKU-A": 1}))
    amount = Money(amount_minor=1, currency="EUR")

    for return_id in ("r1", "never-asked"):
        expire = ExpireReturnInput(order_id="nobody", return_id=return_id, reason="deadline")
        assert not (await env.run(store.activities.expire, expire)).expired
        complete = CompleteReturnInput(
            order_id="nobody", return_id=return_id, refund_id="rf", amount=amount
        )
        assert not (await env.run(store.activities.complete, complete)).completed
    assert [e.event_type for e in store.events("nobody")] == ["return.rejected.v1"]


async def test_two_racing_returns_of_one_order_never_over_return(
    store: _Store, where: Where
) -> None:
    """Each round, two processes' connections authorize a return of 2 of the order's 3 units
    at the same moment: exactly one wins, the other is refused, whatever the interleaving."""
    rounds = 5
    for round_ in range(rounds):
        _place(store, f"race-{round_}")
    barrier = threading.Barrier(2)

    def contender(name: str) -> list[str]:
        db = open_database(where)
        book = ReturnBook(db, Outbox(db))
        outcomes = []
        try:
            for round_ in range(rounds):
                barrier.wait(timeout=30)
                decision = book.authorize(
                    _authorize(f"race-{round_}", f"{name}-{round_}", {"SKU-A": 2}), cause=None
                )
                outcomes.append(
                    decision.code if isinstance(decision, ReturnRefused) else "authorized"
                )
        finally:
            db.close()
        return outcomes

    left, right = await asyncio.gather(
        asyncio.to_thread(contender, "left"), asyncio.to_thread(contender, "right")
    )

    for round_, pair in enumerate(zip(left, right, strict=True)):
        assert sorted(pair) == sorted(["authorized", ReturnRejectionCode.MORE_THAN_BOUGHT]), round_
        assert store.returns.held(f"race-{round_}") == {"SKU-A": 2}
        assert sorted(e.event_type for e in store.events(f"race-{round_}")) == [
            "return.authorized.v1",
            "return.rejected.v1",
        ]
