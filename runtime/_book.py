"""The base of a service's books: its own tables in the database that also holds its outbox."""

import sqlite3
from contextlib import AbstractContextManager
from typing import ClassVar

from runtime._transaction import transaction

__all__ = ["Book"]


class Book:
    """Tables of one service in its SQLite database, created when the book is opened.

    A change to the tables and the outbox rows of that change are committed together, in one
    :meth:`transaction`: a writing method that does not open it expects the caller's.
    """

    SCHEMA: ClassVar[str]
    """The script that creates the book's tables (``CREATE TABLE IF NOT EXISTS``)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(self.SCHEMA)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A local transaction on the book's database (the outbox lives there too)."""
        return transaction(self._db)
