"""The orchestrator's published read API: the order service's orders and returns, read-only.

The orchestrator's database holds the order service's ``orders`` (:mod:`orchestrator.orders`)
and ``returns`` (:mod:`orchestrator.returns`), its outbox, and the projector's timeline
(:mod:`orchestrator.timeline`). Tools (the audit) read it through this module, never with SQL
of their own.
"""

from dataclasses import dataclass
from pathlib import Path

from runtime import BookReader

__all__ = [
    "STORE_SCHEMAS",
    "OrderQueries",
    "OrderRow",
    "ReturnLineRow",
    "ReturnRow",
    "database_path",
]

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


@dataclass(frozen=True, slots=True)
class ReturnRow:
    """A return the order service decided, whatever became of it."""

    return_id: str
    order_id: str
    status: str
    """``authorized`` (its saga runs), ``rejected``, ``expired`` or ``completed``."""
    amount_minor: int | None
    """What its lines are worth, the amount to refund (None for a rejected return)."""
    currency: str | None
    refund_id: str | None
    """The refund a completed return was completed with."""
    created_at: float
    """When it was decided (a Unix time)."""


@dataclass(frozen=True, slots=True)
class ReturnLineRow:
    """One SKU of an authorized return (a rejected return has none)."""

    return_id: str
    sku: str
    quantity: int
    unit_price_minor: int


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

    def returns(self) -> list[ReturnRow]:
        """Every return, whatever its status."""
        return self._records(ReturnRow, "returns")

    def return_lines(self) -> list[ReturnLineRow]:
        """The lines of every return."""
        return self._records(ReturnLineRow, "return_lines")
