"""A service database in the test's own directory, and the events its outbox holds."""

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contracts.codec import decode_event
from contracts.envelope import AnyEvent
from runtime import Outbox, open_database

EventsOf = Callable[[str], list[AnyEvent]]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh service database on disk."""
    connection = open_database(tmp_path / "service.db")
    yield connection
    connection.close()


@pytest.fixture
def outbox(db: sqlite3.Connection) -> Outbox:
    """The outbox of that database."""
    return Outbox(db)


@pytest.fixture
def events_of(outbox: Outbox) -> EventsOf:
    """The events an order has in the outbox, decoded from the bytes the relay would send."""

    def events(order_id: str) -> list[AnyEvent]:
        return [decode_event(row.value, row.headers) for row in outbox.rows_for_order(order_id)]

    return events
