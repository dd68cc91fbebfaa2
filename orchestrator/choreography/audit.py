"""The audit consumer: every domain event, appended to a log that refuses edits."""

import json
import sqlite3
import time

from contracts.envelope import AnyEvent

__all__ = ["AuditLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    source       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    recorded_at  REAL NOT NULL,
    envelope     TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditLog:
    """An append-only log of every domain event."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)

    async def append(self, event: AnyEvent, db: sqlite3.Connection) -> None:
        """Handler for the audit consumer: append ``event`` (the inbox makes it once)."""
        db.execute(
            "INSERT INTO audit_log (event_id, event_type, order_id, source, occurred_at,"
            " recorded_at, envelope) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.event_id),
                event.event_type,
                event.correlation_id,
                event.source,
                event.timestamp.isoformat(),
                time.time(),
                json.dumps(event.model_dump(mode="json")),
            ),
        )

    def event_types_for(self, order_id: str) -> list[str]:
        """The event types logged for one order, in the order they happened.

        The log is appended in the order events were consumed, which across topics is not
        the order they happened in; their own timestamps say that.
        """
        rows = self._db.execute(
            "SELECT event_type FROM audit_log WHERE order_id = ? ORDER BY occurred_at, seq",
            (order_id,),
        )
        return [row[0] for row in rows]
