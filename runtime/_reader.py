"""The base of a service's query module: read-only queries on the service's own database.

A service publishes what others may read of its records as a query module
(``workers/payment/queries.py``, ...): a :class:`BookReader` whose methods return typed rows,
most of them dataclasses whose fields name the columns they hold (:meth:`BookReader._records`).
Tools read a service's records through it, never with SQL of their own, so the tables stay
the service's to change.
"""

import contextlib
import dataclasses
from collections.abc import Iterator
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from runtime._database import Database, DatabaseError, Where, open_reader
from runtime._outbox import OutboxRow, pending_rows

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["BookReader", "BookUnreadable", "EventCounts"]

_Record = TypeVar("_Record", bound="DataclassInstance")

_UNREADABLE: tuple[type[Exception], ...] = (*DatabaseError, ValueError)


class BookUnreadable(Exception):
    """A service's database could not be opened or read; the message says why."""


@dataclasses.dataclass(frozen=True)
class EventCounts:
    """What a database's outbox and inbox hold, counted."""

    pending: int = 0
    """Events in the outbox not yet on Kafka."""
    published: int = 0
    """Events of the chosen orders the outbox has put on Kafka."""
    handled: int = 0
    """Events the inbox recorded as handled since the chosen moment."""

    def __add__(self, other: "EventCounts") -> "EventCounts":
        return EventCounts(
            self.pending + other.pending,
            self.published + other.published,
            self.handled + other.handled,
        )


class BookReader:
    """Read-only queries on one service database, on a connection that cannot write.

    Open it with :meth:`open` (and close it, or use it as a context manager); queries made
    inside one :meth:`snapshot` see the database as of one moment.
    """

    def __init__(self, connection: Database) -> None:
        self._db = connection

    @classmethod
    def open(cls, where: Where, *, schema: str | None = None) -> Self:
        """A reader of the database ``where`` (a SQLite file, which must exist, or a PostgreSQL
        URL; ``schema``: the store's schema in a shared PostgreSQL database).

        Raises:
            BookUnreadable: the database cannot be opened.
        """
        try:
            return cls(open_reader(where, schema=schema))
        except DatabaseError as exc:
            raise BookUnreadable(str(exc)) from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: the queries inside it see one moment of the whole database.

        Raises:
            BookUnreadable: the database cannot be read.
        """
        try:
            with self._db.snapshot():
                yield
        except DatabaseError as exc:
            raise BookUnreadable(str(exc)) from None

    def pending_events(self) -> list[OutboxRow]:
        """The events still waiting in the service's outbox (not yet on Kafka), oldest first.

        Raises:
            BookUnreadable: the outbox cannot be read, or a row of it is unreadable.
        """
        try:
            return pending_rows(self._db)
        except _UNREADABLE as exc:
            raise BookUnreadable(str(exc)) from None

    def event_counts(self, *, order_prefix: str = "", handled_since: float = 0.0) -> EventCounts:
        """The outbox's pending events, its published events of the orders whose id starts with
        ``order_prefix``, and the inbox's events handled since ``handled_since`` (a Unix time);
        a database without an outbox or an inbox counts none of it."""
        return EventCounts(
            pending=self._count("outbox", "sent_at IS NULL"),
            published=self._count(
                "outbox",
                "sent_at IS NOT NULL AND substr(order_id, 1, length(?)) = ?",
                (order_prefix, order_prefix),
            ),
            handled=self._count("inbox", "handled_at >= ?", (handled_since,)),
        )

    def _count(self, table: str, where: str, parameters: tuple[object, ...] = ()) -> int:
        """The rows of ``table`` (the runtime's ``outbox`` or ``inbox``) that ``where`` keeps;
        0 if the database has no such table."""
        try:
            if not self._db.has_table(table):
                return 0
            found = self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", parameters)
            return int(found.fetchone()[0])
        except DatabaseError as exc:
            raise BookUnreadable(str(exc)) from None

    def _rows(self, sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        """The rows of one query of the service's own tables.

        Raises:
            BookUnreadable: the query failed (not the service's database, or a broken one).
        """
        try:
            return self._db.execute(sql, parameters).fetchall()
        except DatabaseError as exc:
            raise BookUnreadable(str(exc)) from None

    def _records(self, record: type[_Record], table: str, order_by: str = "") -> list[_Record]:
        """Every row of ``table`` as a ``record``: a dataclass whose fields name the columns it
        holds, in the same order; a field typed as an enum holds its column as that enum.

        Raises:
            BookUnreadable: the query failed (not the service's database, or a broken one).
        """
        fields = dataclasses.fields(record)
        sql = f"SELECT {', '.join(field.name for field in fields)} FROM {table}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        return [
            record(*(_as_field(field, value) for field, value in zip(fields, row, strict=True)))
            for row in self._rows(sql)
        ]


def _as_field(field: dataclasses.Field[object], value: object) -> object:
    kind = field.type
    if value is not None and isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    return value
