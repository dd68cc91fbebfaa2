"""The base of a service's books: its own tables in the database that also holds its outbox."""

from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar

from runtime._database import Database

__all__ = ["Book"]


class Book:
    """Tables of one service in its database (made by the service's migrations, applied when
    :func:`runtime.open_database` opens it).

    A change to the tables and the outbox rows of that change are committed together, in one
    :meth:`transaction`: a writing method that does not open it expects the caller's.
    """

    MIGRATIONS: ClassVar[Path]
    """The folder of the book's migrations (``sqlite/`` and ``postgresql/``, one file per
    version): open its database with them (``open_database(where, migrations=[...])``)."""

    def __init__(self, connection: Database) -> None:
        self._db = connection

    def transaction(self) -> AbstractContextManager[Database]:
        """A local transaction on the book's database (the outbox lives there too)."""
        return self._db.transaction()
