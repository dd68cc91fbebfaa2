"""The projector: every domain event, kept per order as the saga's timeline (a read model)."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from contracts.envelope import AnyEvent
from runtime import Database, transaction

__all__ = ["Timeline", "TimelineEntry"]


_INSERT_NEW = (
    "INSERT INTO timeline"
    " (event_id, order_id, event_type, source, timestamp, causation_id, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_UPSERT = (
    "INSERT INTO timeline"
    " (event_id, order_id, event_type, source, timestamp, causation_id, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (event_id) DO UPDATE SET order_id = excluded.order_id,"
    " event_type = excluded.event_type, source = excluded.source,"
    " timestamp = excluded.timestamp, causation_id = excluded.causation_id,"
    " data = excluded.data"
)

_Row = tuple[str, str, str, str, str, str | None, str]


def _row(event: AnyEvent) -> _Row:
    """The projection itself: one event as a row, for the live projector and the rebuild."""
    return (
        str(event.event_id),
        event.correlation_id,
        event.event_type,
        event.source,
        event.timestamp.isoformat(),
        event.causation_id,
        json.dumps(event.data.model_dump(mode="json")),
    )


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

    MIGRATIONS = Path(__file__).parent / "migrations" / "orders"
    """Its table's migrations: the orchestrator's database's, shared with the orders."""

    def __init__(self, connection: Database) -> None:
        self._db = connection

    async def project(self, event: AnyEvent, db: Database) -> None:
        """Handler for the projector's consumer: add ``event`` to its order's timeline."""
        db.execute(_INSERT_NEW, _row(event))

    def last_seq(self) -> int:
        """The position of the newest row; every row added later comes after it."""
        last: int | None = self._db.execute("SELECT MAX(seq) FROM timeline").fetchone()[0]
        return last or 0

    def replace(self, events: Sequence[AnyEvent], *, keep_after_seq: int) -> int:
        """Make the timeline hold ``events`` and whatever was added after ``keep_after_seq``.

        One transaction: each event's row is written in the order given, over the row of
        the same event if there is one (which keeps its position, so a client reading on
        from a position misses nothing); every row up to ``keep_after_seq`` whose event is
        not among ``events`` is deleted. Rows after it were added meanwhile by the live
        projector, and stay.

        Returns:
            How many rows were deleted.
        """
        rows = [_row(event) for event in events]
        wanted = {row[0] for row in rows}
        with transaction(self._db):
            self._db.executemany(_UPSERT, rows)
            stale = [
                (seq,)
                for seq, event_id in self._db.execute(
                    "SELECT seq, event_id FROM timeline WHERE seq <= ?", (keep_after_seq,)
                )
                if event_id not in wanted
            ]
            self._db.executemany("DELETE FROM timeline WHERE seq = ?", stale)
        return len(stale)

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
