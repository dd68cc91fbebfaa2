"""The inventory service's query module reads what its stock book wrote, and cannot write."""

from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from contracts.events.common import StockLine
from runtime import DatabaseError, Where, open_database
from workers.inventory.queries import (
    InventoryQueries,
    database_path,
    seed_file,
    seeded_levels,
)
from workers.inventory.stock import DEFAULT_SEED_FILE, ReservationStatus, StockBook, load_seed


def _stock_with_three_orders(where: Where) -> dict[str, str | None]:
    """SKU-A 10 and SKU-B 5 on hand; o-held reserved, o-back released, o-short refused."""
    with closing(open_database(where, migrations=[StockBook.MIGRATIONS])) as db:
        stock = StockBook(db)
        stock.seed({"SKU-A": 10, "SKU-B": 5})
        with stock.transaction():
            held = stock.reserve("o-held", [StockLine(sku="SKU-A", quantity=3)])
        with stock.transaction():
            back = stock.reserve("o-back", [StockLine(sku="SKU-B", quantity=2)])
        with stock.transaction():
            stock.release(back)
        with stock.transaction():
            short = stock.refuse("o-short", [StockLine(sku="SKU-B", quantity=50)], "short")
    return {r.order_id: r.reservation_id for r in (held, back, short)}


def test_reservations_and_stock_the_book_wrote_are_read_through_the_queries(
    database_at: Callable[[str], Where],
) -> None:
    ids = _stock_with_three_orders(database_at("inventory"))

    with InventoryQueries.open(database_at("inventory")) as queries, queries.snapshot():
        reservations = {row.order_id: row for row in queries.reservations()}
        on_hand = queries.on_hand(["SKU-A", "SKU-B", "SKU-NOT-CARRIED"])

    assert {
        order_id: (row.reservation_id, row.status) for order_id, row in reservations.items()
    } == {
        "o-held": (ids["o-held"], ReservationStatus.RESERVED),
        "o-back": (ids["o-back"], ReservationStatus.RELEASED),
        "o-short": (None, ReservationStatus.REFUSED),
    }
    assert all(row.created_at > 0 for row in reservations.values())
    # 3 units of SKU-A held; the 2 of SKU-B were put back; an SKU not carried is left out.
    assert on_hand == {"SKU-A": 7, "SKU-B": 5}


def test_the_inventory_queries_cannot_write(database_at: Callable[[str], Where]) -> None:
    _stock_with_three_orders(database_at("inventory"))

    with InventoryQueries.open(database_at("inventory")) as queries:
        with pytest.raises(DatabaseError, match=r"readonly|read-only"):
            queries._db.execute("INSERT INTO stock (sku, on_hand) VALUES ('SKU-C', 1)")
        assert queries.on_hand(["SKU-A", "SKU-C"]) == {"SKU-A": 7}


def test_the_seed_is_the_configured_file_or_the_services_own(tmp_path: Path) -> None:
    own = tmp_path / "seed.json"
    own.write_text('{"SKU-Z": 4}')

    assert seed_file(None) == DEFAULT_SEED_FILE
    assert seeded_levels(None) == load_seed(DEFAULT_SEED_FILE)
    assert seed_file(own) == own
    assert seeded_levels(own) == {"SKU-Z": 4}
    assert database_path(tmp_path) == tmp_path / "inventory.db"
