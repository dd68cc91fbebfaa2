"""The SQLite database each service owns: its own tables plus the outbox and the inbox."""

import sqlite3
from pathlib import Path

__all__ = ["open_database", "open_reader"]

_BUSY_TIMEOUT = 30.0


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a service database, in WAL mode, for explicit transactions.

    ``isolation_level=None`` leaves transactions to the caller (``BEGIN IMMEDIATE`` ...
    ``COMMIT``), so a state change and its outbox row are committed together or not at all.

    Copies of a service (``saga up --scale``) share the file: in WAL mode readers never wait
    for the writer, and a writer waits up to ``_BUSY_TIMEOUT`` seconds for another process's
    write transaction (SQLite's busy timeout) rather than failing at once. Writers start
    with ``BEGIN IMMEDIATE``, which takes the write lock before reading, so a transaction
    never finds its snapshot outdated when it comes to write (an error no wait would fix).
    The wait blocks the waiting thread: write transactions must stay short.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a process crash; only an OS crash may lose the last.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def open_reader(path: Path) -> sqlite3.Connection:
    """A connection to a service database that cannot write, for tools that only look.

    Read-write in SQLite's sense where the file may be written, so that closing the last
    connection of a stopped stack tidies the WAL files away as the services do, with writes
    refused (``query_only``); read-only where it may not. The file must exist.

    Raises:
        sqlite3.Error: the file cannot be opened.
    """
    uri = path.resolve().as_uri()
    try:
        connection = sqlite3.connect(
            f"{uri}?mode=rw", uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT
        )
    except sqlite3.Error:
        return sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT
        )
    connection.execute("PRAGMA query_only = ON")
    return connection
