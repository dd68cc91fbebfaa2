"""The payment service's published read API: its payments and ledger, read-only.

Tools (the audit) read the payment service's records through this module, never with SQL
of their own; the tables behind it stay the service's to change.
"""

from dataclasses import dataclass
from pathlib import Path

from runtime import BookReader
from workers.payment.ledger import PaymentStatus

__all__ = ["LedgerEntryRow", "PaymentQueries", "PaymentRow", "database_path"]


def database_path(run_dir: Path) -> Path:
    """Where the payment service keeps its database (its process opens the same file)."""
    return run_dir / "payment.db"


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """The payment of one order."""

    order_id: str
    payment_id: str
    status: PaymentStatus
    created_at: float
    """When it was captured or declined (a Unix time)."""


@dataclass(frozen=True, slots=True)
class LedgerEntryRow:
    """Money moved for an order: its charge, its refund, or the refund of one of its returns."""

    order_id: str
    kind: str
    """``charge``, ``refund`` (the order's own, all of it) or ``return_refund`` (a return's)."""
    payment_id: str
    amount_minor: int
    currency: str
    created_at: float
    return_id: str | None = None
    """The return a ``return_refund`` gives money back for."""
    refund_id: str | None = None
    """The id of a ``return_refund``, as ``payment.refunded.v2`` names it."""


class PaymentQueries(BookReader):
    """Read-only queries on the payment service's database."""

    def payments(self) -> list[PaymentRow]:
        """Every order's payment."""
        return self._records(PaymentRow, "payments")

    def ledger_entries(self) -> list[LedgerEntryRow]:
        """Every ledger entry, oldest first."""
        return self._records(LedgerEntryRow, "ledger_entries", order_by="id")
