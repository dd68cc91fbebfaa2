"""The orchestrator's published read API: the order service's orders, read-only.

The orchestrator's database holds the order service's ``orders`` (:mod:`orchestrator.orders`),
its outbox, and the projector's timeline (:mod:`orchestrator.timeline`). Tools (the audit)
read it through this module, never with SQL of their own.
"""

from dataclasses import dataclass
from pathlib import Path

from runtime import BookReader

__all__ = ["STORE_SCHEMAS", "OrderQueries", "OrderRow", "database_path"]

STORE_SCHEMAS: tuple[str | None, ...] = (None, "dispatch_bridge", "audit", "notifications", "api")
"""The orchestrator's stores in its PostgreSQL database, a schema each: the order book and the
timeline (the default schema), the dispatch bridge's, the audit consumer's and the
notification consumer's inboxes (:mod:`orchestrator.worker`), and the API's outbox
(:mod:`orchestrator.api.app`). On SQLite each store is a file of the run directory instead."""


def database_path(run_dir: Path) -> Path:
    """Where the orchestrator keeps its database: the worker, the API and the tools open it."""
    return run_dir / "orchestrator.db"


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order the orchestrator accepted."""

    order_id: str
    status: str
    """``placed``, ``completed`` or ``cancelled``."""
    placed_at: float
    """When the saga recorded it (a Unix time)."""


class OrderQueries(BookReader):
    """Read-only queries on the orchestrator's database."""

    def orders(self) -> list[OrderRow]:
        """Every order, whatever its status."""
        return self._records(OrderRow, "orders")

    def customer_of(self, order_id: str) -> str | None:
        """The customer who placed ``order_id``; None for an order the orchestrator has not
        accepted."""
        rows = self._rows("SELECT customer_id FROM orders WHERE order_id = ?", (order_id,))
        return str(rows[0][0]) if rows else None
