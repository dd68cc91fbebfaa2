"""A service database on each engine (SQLite, PostgreSQL), and the events its outbox holds."""

from collections.abc import Callable, Iterator

import pytest

from contracts.codec import decode_event
from contracts.envelope import AnyEvent
from runtime import Database, Outbox, Where, open_database
from workers.inventory.stock import StockBook
from workers.payment.ledger import PaymentLedger
from workers.shipping.shipments import ShipmentBook

EventsOf = Callable[[str], list[AnyEvent]]


BOOKS = [PaymentLedger.MIGRATIONS, StockBook.MIGRATIONS, ShipmentBook.MIGRATIONS]


@pytest.fixture
def db(database_at: Callable[[str], Where]) -> Iterator[Database]:
    """A fresh service database with every service's tables, on each engine."""
    connection = open_database(database_at("service"), migrations=BOOKS)
    yield connection
    connection.close()


@pytest.fixture
def outbox(db: Database) -> Outbox:
    """The outbox of that database."""
    return Outbox(db)


@pytest.fixture
def events_of(outbox: Outbox) -> EventsOf:
    """The events an order has in the outbox, decoded from the bytes the relay would send."""

    def events(order_id: str) -> list[AnyEvent]:
        return [decode_event(row.value, row.headers) for row in outbox.rows_for_order(order_id)]

    return events
