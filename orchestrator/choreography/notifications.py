"""The notification consumer: tells the customer how their order ended."""

import time
from pathlib import Path

from contracts.envelope import AnyEvent
from contracts.events.order import OrderCancelled, OrderCompleted
from runtime import Database

__all__ = ["Notifications"]


class Notifications:
    """Customer notifications for completed and cancelled orders (a simulated outbox of mail)."""

    MIGRATIONS = Path(__file__).parent.parent / "migrations" / "notifications"
    """Its table\'s migrations (:func:`runtime.open_database` applies them)."""

    def __init__(self, connection: Database) -> None:
        self._db = connection

    async def notify(self, event: AnyEvent, db: Database) -> None:
        """Handler for the notification consumer: other events are not the customer's business."""
        if isinstance(event, OrderCompleted):
            kind, message = "order-completed", "Your order is on its way."
        elif isinstance(event, OrderCancelled):
            kind, message = "order-cancelled", f"Your order was cancelled: {event.data.reason}."
        else:
            return
        db.execute(
            "INSERT INTO notifications VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (str(event.event_id), event.correlation_id, kind, message, time.time()),
        )

    def for_order(self, order_id: str) -> list[tuple[str, str]]:
        """(kind, message) of every notification of one order."""
        rows = self._db.execute(
            "SELECT kind, message FROM notifications WHERE order_id = ? ORDER BY created_at",
            (order_id,),
        )
        return [(row[0], row[1]) for row in rows]
