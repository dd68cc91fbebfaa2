"""The shipping service's query module reads what its shipment book wrote, and cannot write."""

from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from runtime import DatabaseError, Where, open_database
from workers.shipping.queries import ShippingQueries, database_path
from workers.shipping.shipments import ShipmentBook, ShipmentStatus

_ITEMS: list[dict[str, object]] = [{"sku": "SKU-A", "quantity": 1}]


def _book_with_four_orders(where: Where) -> dict[str, str | None]:
    """o-waiting scheduled, o-gone dispatched, o-off cancelled, o-nowhere refused."""
    with closing(open_database(where, migrations=[ShipmentBook.MIGRATIONS])) as db:
        book = ShipmentBook(db)
        with book.transaction():
            waiting = book.schedule("o-waiting", "DE", _ITEMS, "evt-1")
        with book.transaction():
            gone = book.schedule("o-gone", "US", _ITEMS, "evt-2")
        with book.transaction():
            assert book.dispatch(gone, "TRK-1")
        with book.transaction():
            off = book.schedule("o-off", "JP", _ITEMS, "evt-3")
        with book.transaction():
            assert book.cancel(off)
        with book.transaction():
            nowhere = book.refuse("o-nowhere", "AQ", _ITEMS, "no carrier")
    return {s.order_id: s.shipment_id for s in (waiting, gone, off, nowhere)}


def test_shipments_the_book_wrote_are_read_through_the_queries(
    database_at: Callable[[str], Where],
) -> None:
    ids = _book_with_four_orders(database_at("shipping"))

    with ShippingQueries.open(database_at("shipping")) as queries, queries.snapshot():
        shipments = {row.order_id: row for row in queries.shipments()}

    assert {
        order_id: (row.shipment_id, row.status, row.carrier) for order_id, row in shipments.items()
    } == {
        "o-waiting": (ids["o-waiting"], ShipmentStatus.SCHEDULED, "DHL"),
        "o-gone": (ids["o-gone"], ShipmentStatus.DISPATCHED, "UPS"),
        "o-off": (ids["o-off"], ShipmentStatus.CANCELLED, "FedEx"),
        "o-nowhere": (None, ShipmentStatus.REFUSED, None),
    }
    assert all(row.scheduled_at > 0 for row in shipments.values())


def test_the_shipping_queries_cannot_write(database_at: Callable[[str], Where]) -> None:
    _book_with_four_orders(database_at("shipping"))

    with ShippingQueries.open(database_at("shipping")) as queries:
        with pytest.raises(DatabaseError, match=r"readonly|read-only"):
            queries._db.execute("DELETE FROM shipments")
        assert len(queries.shipments()) == 4


def test_the_shipping_database_lies_in_the_run_directory(tmp_path: Path) -> None:
    assert database_path(tmp_path) == tmp_path / "shipping.db"
