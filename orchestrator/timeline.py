"""The projector: every domain event, kept per order as the saga's timeline (a read model)."""

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.envelope import AnyEvent

__all__ = ["Timeline", "TimelineEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timeline (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    source      TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    causation_id TEXT,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_order ON timeline (order_id, timestamp, seq);
"""


@dataclass(frozen=True)
class TimelineEntry:
    """One event of an order, as the API shows it."""

    event_id: str
    event_type: str
    source: str
    timestamp: datetime
    causation_id: str | None
    data: dict[str, Any]


class Timeline:
    """Per-order timelines, in the orchestrator's own database."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)

    async def project(self, event: AnyEvent, db: sqlite3.Connection) -> None:
        """Handler for the projector's consumer: add ``event`` to its order's timeline."""
        db.execute(
            "INSERT OR IGNORE INTO timeline"
            " (event_id, order_id, event_type, source, timestamp, causation_id, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.event_id),
                event.correlation_id,
                event.event_type,
                event.source,
                event.timestamp.isoformat(),
                event.causation_id,
                json.dumps(event.data.model_dump(mode="json")),
            ),
        )

    def events_for(self, order_id: str, *, after_seq: int = 0) -> list[tuple[int, TimelineEntry]]:
        """The order's events in the order they happened, each with its position."""
        rows = self._db.execute(
            "SELECT * FROM timeline WHERE order_id = ? AND seq > ? ORDER BY timestamp, seq",
            (order_id, after_seq),
        ).fetchall()
        return [
            (
                row["seq"],
                TimelineEntry(
                    event_id=row["event_id"],
                    event_type=row["event_type"],
                    source=row["source"],
                    timestamp=datetime.fromisoformat(row["timestamp"]),
                    causation_id=row["causation_id"],
                    data=json.loads(row["data"]),
                ),
            )
            for row in rows
        ]
