"""The SQLite database each service owns: its own tables plus the outbox and the inbox."""

import sqlite3
from pathlib import Path

__all__ = ["open_database"]


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a service database, in WAL mode, for explicit transactions.

    ``isolation_level=None`` leaves transactions to the caller (``BEGIN IMMEDIATE`` ...
    ``COMMIT``), so a state change and its outbox row are committed together or not at all.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a process crash; only an OS crash may lose the last.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection
