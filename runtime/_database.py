"""The database each service owns: its own tables plus the outbox, the inbox and the lease.

One interface, two engines:

- **SQLite** (the embedded topology, the default): a file in the run directory, in WAL mode;
  copies of a service on one machine share the file.
- **PostgreSQL** (the cluster topology, or any server a database URL names): the service's own
  database, reached as the service's own role; copies on any machine share it.

Statements are written once, in the SQL both engines speak, with ``?`` for parameters (the
PostgreSQL connection turns them into its own placeholders). Tables are made and changed by
versioned migrations (yoyo-migrations, plain SQL): each package keeps them in
``migrations/<engine>/`` beside its code, one file per version, and :func:`open_database`
applies the ones a database lacks before handing out the connection.
"""

import contextlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Literal, Protocol, Self
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import get_backend, read_migrations

__all__ = [
    "RUNTIME_MIGRATIONS",
    "ConnectionLost",
    "Cursor",
    "Database",
    "DatabaseError",
    "Dialect",
    "IntegrityError",
    "Where",
    "describe",
    "migrate",
    "open_database",
    "open_reader",
]

Dialect = Literal["sqlite", "postgresql"]

Where = Path | str
"""A database: the path of a SQLite file, or a ``postgresql://`` URL."""

DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
"""What either engine raises when a statement or a connection fails."""

IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""What either engine raises when a constraint refuses a change."""

ConnectionLost: tuple[type[Exception], ...] = (psycopg.OperationalError,)
"""What PostgreSQL raises when its server cannot be reached or dropped the connection (a
restart, a crash), or gave up on a transaction it may run again (a deadlock): the database's
trouble, not the statement's, so the same work may succeed later."""

RUNTIME_MIGRATIONS = Path(__file__).with_name("migrations")
"""The runtime's own tables: the outbox, the inbox and the relay lease (every database)."""

_BUSY_TIMEOUT = 30.0
_MIGRATING = threading.Lock()
"""Threads of one process migrate one at a time. yoyo's lock row is keyed by the process id,
and its SQLite connections share one cache, where a second connection's write fails at once
("database table is locked") instead of waiting; processes still take turns by yoyo's lock."""
_CONNECT_TIMEOUT = 10
_URL_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Cursor(Protocol):
    """What a statement returns, on either engine."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class _Row(tuple[Any, ...]):
    """A PostgreSQL row read by position or by column name, as :class:`sqlite3.Row` is."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Self:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: _Row(values, names)


@lru_cache(maxsize=512)
def _placeholders(statement: str) -> str:
    """``?`` → ``%s`` (and a literal ``%`` doubled): psycopg's parameter style."""
    return statement.replace("%", "%%").replace("?", "%s")


class Database:
    """One connection to a service's database, on either engine.

    Outside of :meth:`transaction` every statement commits by itself; inside it, the block's
    statements commit together or not at all.
    """

    def __init__(
        self,
        connection: sqlite3.Connection | psycopg.Connection[Any],
        where: Where | None = None,
        schema: str | None = None,
        *,
        reconnect: Callable[[], psycopg.Connection[Any]] | None = None,
    ) -> None:
        """``reconnect``: how to open the PostgreSQL connection again once it is lost."""
        self._raw = connection
        self._reconnect = reconnect
        self.where = where
        """Where the connection goes (None for one made from a driver's connection)."""
        self.schema = schema
        self.dialect: Dialect = (
            "sqlite" if isinstance(connection, sqlite3.Connection) else ("postgresql")
        )

    @property
    def raw(self) -> sqlite3.Connection | psycopg.Connection[Any]:
        """The driver's own connection (for what only one engine does)."""
        return self._live()

    def _live(self) -> sqlite3.Connection | psycopg.Connection[Any]:
        """The connection, opened again first if its PostgreSQL server dropped it (a restart,
        a crash, a terminated backend): the statement that found it lost failed, as must the
        transaction it was in, and the next one runs on a new connection, so that a service
        outlives its database's outage. While the server is still down, this raises the
        driver's connection error, a :data:`DatabaseError` like any other."""
        raw = self._raw
        if self._reconnect is not None and isinstance(raw, psycopg.Connection) and raw.closed:
            self._raw = raw = self._reconnect()
        return raw

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> Cursor:
        """Run one statement with ``?`` placeholders."""
        raw = self._live()
        if isinstance(raw, sqlite3.Connection):
            return raw.execute(statement, parameters)
        if not parameters:
            return raw.execute(statement)
        return raw.execute(_placeholders(statement), parameters)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        """Run one statement once per row of parameters."""
        raw = self._live()
        if isinstance(raw, sqlite3.Connection):
            return raw.executemany(statement, rows)
        cursor = raw.cursor()
        cursor.executemany(_placeholders(statement), list(rows))
        return cursor

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """One local transaction: commit if the block ends, roll back if it raises (anything).

        The writers of one database take turns, on either engine: SQLite's ``BEGIN IMMEDIATE``
        takes the file's write lock, PostgreSQL takes a transaction-scoped advisory lock of the
        schema. A book's read-then-write logic (a release that checks the reservation first)
        thus sees no other writer between its read and its write, whichever engine and however
        many copies. (The outbox relay's claims are transactions of their own, on row locks.)
        """
        raw = self._live()
        if isinstance(raw, sqlite3.Connection):
            raw.execute("BEGIN IMMEDIATE")
        else:
            raw.execute("BEGIN")
            raw.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
        try:
            yield self
        except BaseException:
            with contextlib.suppress(*DatabaseError):
                raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Self]:
        """One read-only transaction: the queries inside it see one moment of the database."""
        raw = self._live()
        if isinstance(raw, sqlite3.Connection):
            raw.execute("BEGIN")
        else:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield self
        finally:
            with contextlib.suppress(*DatabaseError):
                raw.execute("ROLLBACK")  # nothing was written: only the snapshot ends

    def has_table(self, name: str) -> bool:
        """Whether the database (its schema, on PostgreSQL) has a table called ``name``."""
        raw = self._live()
        if isinstance(raw, sqlite3.Connection):
            found = raw.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        else:
            found = raw.execute(
                "SELECT to_regclass(quote_ident(current_schema()) || '.' || quote_ident(%s))",
                (name,),
            ).fetchone()
            found = found if found and found[0] is not None else None
        return found is not None

    def reopen(self) -> "Database":
        """Another connection to the same database (and schema), for work that must not share
        this one's transactions."""
        if self.where is None:
            raise ValueError("this connection does not know where it goes")
        if is_url(self.where):
            return _postgres_database(str(self.where), self.schema, read_only=False)
        return Database(_open_sqlite(Path(self.where)), self.where)

    def close(self) -> None:
        """Close the connection (for good: it is not opened again)."""
        self._reconnect = None
        self._raw.close()


def is_url(where: Where) -> bool:
    """Whether ``where`` names a PostgreSQL database (else it is a SQLite file)."""
    return isinstance(where, str) and where.startswith(_URL_SCHEMES)


def describe(where: Where) -> str:
    """``where`` for people and logs: a SQLite path, or a URL without its password."""
    if not is_url(where):
        return str(where)
    parts = urlsplit(str(where))
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


def _check_schema(schema: str | None) -> None:
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"{schema!r} cannot name a schema: [a-z][a-z0-9_]*")


def _connect_postgres(url: str, schema: str | None, *, read_only: bool) -> psycopg.Connection[Any]:
    """Connect in autocommit mode (transactions are explicit), with ``schema`` first on the
    search path and, for readers, every transaction read-only; options the URL carries itself
    (``?options=-csearch_path%3D...``) are kept."""
    params = conninfo_to_dict(url)
    options = [str(params.pop("options", "") or "")]
    if schema is not None:
        options.append(f"-c search_path={schema}")
    if read_only:
        options.append("-c default_transaction_read_only=on")
    params["options"] = " ".join(option for option in options if option)
    params.setdefault("connect_timeout", _CONNECT_TIMEOUT)
    connection: psycopg.Connection[Any] = psycopg.connect(
        make_conninfo("", **params), autocommit=True, row_factory=_row_factory
    )
    return connection


def _postgres_database(url: str, schema: str | None, *, read_only: bool) -> Database:
    """A :class:`Database` on PostgreSQL that opens its connection again, with the same
    options, when the server dropped it."""
    connect = partial(_connect_postgres, url, schema, read_only=read_only)
    return Database(connect(), url, schema, reconnect=connect)


def _open_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a process crash; only an OS crash may lose the last.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def migrate(where: Where, sources: Sequence[Path], *, schema: str | None = None) -> list[str]:
    """Apply the migrations of ``sources`` (folders holding ``sqlite/`` and ``postgresql/``)
    that the database lacks, in order, each in its own transaction; copies that start
    together take turns (yoyo's lock), and so do threads of one process (``_MIGRATING``).

    Returns:
        The ids of the migrations applied now.
    """
    _check_schema(schema)
    dialect: Dialect = "postgresql" if is_url(where) else "sqlite"
    folders = [str(source / dialect) for source in sources]
    if dialect == "postgresql":
        if schema is not None:
            with _connect_postgres(str(where), None, read_only=False) as connection:
                connection.execute(
                    pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema))
                )
        parts = urlsplit(str(where))
        query = parts.query + ("&" if parts.query else "") + (f"schema={schema}" if schema else "")
        uri = urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, query, ""))
    else:
        path = Path(where).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = "sqlite:///" + quote(str(path))
    with _MIGRATING:
        if dialect == "sqlite":
            # WAL before yoyo's first write, so that no later open has to change the journal
            # mode (an exclusive lock) while another migration writes: the two would deadlock
            # and one would fail at once with "database is locked".
            _open_sqlite(Path(where)).close()
        backend = get_backend(uri)
        try:
            migrations = read_migrations(*folders)
            with backend.lock():
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
            return [migration.id for migration in pending]
        finally:
            backend.connection.close()


def open_database(
    where: Where, *, migrations: Sequence[Path] = (), schema: str | None = None
) -> Database:
    """Open a service database for reading and writing, its tables migrated first: the
    runtime's (outbox, inbox, lease) and those of ``migrations``.

    ``where`` is a SQLite file (made if missing; in WAL mode) or a PostgreSQL URL. ``schema``
    keeps one store's tables apart in a database several stores share (PostgreSQL; made if
    missing); SQLite gives each store its own file instead and ignores it.

    On SQLite, copies of a service share the file: a writer waits up to ``_BUSY_TIMEOUT``
    seconds for another process's write transaction rather than failing at once.

    Raises:
        DatabaseError: the database cannot be reached, or a migration failed.
    """
    migrate(where, [RUNTIME_MIGRATIONS, *migrations], schema=schema if is_url(where) else None)
    if is_url(where):
        return _postgres_database(str(where), schema, read_only=False)
    return Database(_open_sqlite(Path(where)), where)


def open_reader(where: Where, *, schema: str | None = None) -> Database:
    """A connection to a service database that cannot write, for tools that only look.

    SQLite: read-write in SQLite's sense where the file may be written, so that closing the
    last connection of a stopped stack tidies the WAL files away as the services do, with
    writes refused (``query_only``); read-only where it may not. The file must exist.
    PostgreSQL: every transaction is read-only (``default_transaction_read_only``).

    Raises:
        DatabaseError: the database cannot be opened.
    """
    _check_schema(schema)
    if is_url(where):
        return _postgres_database(str(where), schema, read_only=True)
    uri = Path(where).resolve().as_uri()
    try:
        connection = sqlite3.connect(
            f"{uri}?mode=rw", uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT
        )
    except sqlite3.Error:
        connection = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT
        )
    else:
        connection.execute("PRAGMA query_only = ON")
    connection.row_factory = sqlite3.Row
    return Database(connection)
