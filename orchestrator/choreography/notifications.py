"""The notification consumer: tells the customer how their order ended."""

import sqlite3
import time

from contracts.envelope import AnyEvent
from contracts.events.order import OrderCancelled, OrderCompleted

__all__ = ["Notifications"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  REAL NOT NULL
);
"""


class Notifications:
    """Customer notifications for completed and cancelled orders (a simulated outbox of mail)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)

    async def notify(self, event: AnyEvent, db: sqlite3.Connection) -> None:
        """Handler for the notification consumer: other events are not the customer's business."""
        if isinstance(event, OrderCompleted):
            kind, message = "order-completed", "Your order is on its way."
        elif isinstance(event, OrderCancelled):
            kind, message = "order-cancelled", f"Your order was cancelled: {event.data.reason}."
        else:
            return
        db.execute(
            "INSERT OR IGNORE INTO notifications VALUES (?, ?, ?, ?, ?)",
            (str(event.event_id), event.correlation_id, kind, message, time.time()),
        )

    def for_order(self, order_id: str) -> list[tuple[str, str]]:
        """(kind, message) of every notification of one order."""
        rows = self._db.execute(
            "SELECT kind, message FROM notifications WHERE order_id = ? ORDER BY created_at",
            (order_id,),
        )
        return [(row[0], row[1]) for row in rows]
