"""The orchestrator's query module reads the orders and the outbox the order book wrote."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contracts.activities import CancelOrderInput, CompleteOrderInput, Order, PlaceOrderInput
from contracts.codec import decode_event
from contracts.events.common import OrderLine
from orchestrator.orders import OrderBook
from orchestrator.queries import OrderQueries, database_path
from runtime import BookUnreadable, Database, DatabaseError, Outbox, Where, open_database


def _order(order_id: str) -> PlaceOrderInput:
    return PlaceOrderInput(
        order=Order.model_validate(
            {
                "order_id": order_id,
                "customer_id": "c-1",
                "items": [OrderLine(sku="SKU-A", quantity=1, unit_price_minor=500)],
                "currency": "EUR",
                "payment_token": "tok_visa",
                "shipping_address": {"country": "DE"},
            }
        )
    )


@pytest.fixture
def written(database_at: Callable[[str], Where]) -> Iterator[tuple[Database, OrderBook, Outbox]]:
    """The orchestrator's database with three orders: placed, completed, cancelled."""
    db = open_database(database_at("orchestrator"), migrations=[OrderBook.MIGRATIONS])
    outbox = Outbox(db)
    book = OrderBook(db, outbox)
    for order_id in ("o-open", "o-done", "o-off"):
        assert book.place(_order(order_id), cause=None)
    book.complete(
        CompleteOrderInput(
            order_id="o-done", payment_id="pay-1", reservation_id="res-1", shipment_id="shp-1"
        ),
        cause=None,
    )
    book.cancel(CancelOrderInput(order_id="o-off", reason="customer cancelled"), cause=None)
    yield db, book, outbox
    db.close()


def test_orders_and_pending_events_the_book_wrote_are_read_through_the_queries(
    database_at: Callable[[str], Where], written: tuple[Database, OrderBook, Outbox]
) -> None:
    _, _, outbox = written

    with OrderQueries.open(database_at("orchestrator")) as queries, queries.snapshot():
        orders = {row.order_id: row.status for row in queries.orders()}
        pending = queries.pending_events()

    assert orders == {"o-open": "placed", "o-done": "completed", "o-off": "cancelled"}
    assert [(row.order_id, decode_event(row.value, row.headers).event_type) for row in pending] == [
        ("o-open", "order.placed.v1"),
        ("o-done", "order.placed.v1"),
        ("o-off", "order.placed.v1"),
        ("o-done", "order.completed.v1"),
        ("o-off", "order.cancelled.v1"),
    ]

    outbox.mark_sent([row.id for row in pending[:3]])
    with OrderQueries.open(database_at("orchestrator")) as queries:
        assert [row.id for row in queries.pending_events()] == [row.id for row in pending[3:]]


def test_a_snapshot_sees_one_moment_of_the_database(
    database_at: Callable[[str], Where], written: tuple[Database, OrderBook, Outbox]
) -> None:
    _, book, _ = written

    with OrderQueries.open(database_at("orchestrator")) as queries:
        with queries.snapshot():
            before = len(queries.orders())
            book.place(_order("o-later"), cause=None)  # committed while the snapshot is open
            assert len(queries.orders()) == before
            assert len(queries.pending_events()) == 5
        assert len(queries.orders()) == before + 1


def test_the_order_queries_cannot_write(
    database_at: Callable[[str], Where], written: tuple[Database, OrderBook, Outbox]
) -> None:
    with OrderQueries.open(database_at("orchestrator")) as queries:
        with pytest.raises(DatabaseError, match=r"readonly|read-only"):
            queries._db.execute(
                "INSERT INTO orders (order_id, customer_id, status, body, placed_at, updated_at)"
                " VALUES ('o-x', 'c', 'placed', '{}', 0, 0)"
            )
        with pytest.raises(DatabaseError, match=r"readonly|read-only"):
            queries._db.execute("UPDATE outbox SET sent_at = 1")
        assert len(queries.pending_events()) == 5


def test_a_missing_database_is_unreadable_and_not_created(tmp_path: Path) -> None:
    path = database_path(tmp_path)
    assert path == tmp_path / "orchestrator.db"

    with pytest.raises(BookUnreadable):
        OrderQueries.open(path)
    assert not path.exists()
