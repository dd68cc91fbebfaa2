"""The audit consumer: every domain event, appended to a log that refuses edits."""

import json
import time
from pathlib import Path

from contracts.envelope import AnyEvent
from runtime import Database

__all__ = ["AuditLog"]


class AuditLog:
    """An append-only log of every domain event."""

    MIGRATIONS = Path(__file__).parent.parent / "migrations" / "audit"
    """Its table\'s migrations (:func:`runtime.open_database` applies them)."""

    def __init__(self, connection: Database) -> None:
        self._db = connection

    async def append(self, event: AnyEvent, db: Database) -> None:
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
