"""The shipping service's published read API: its shipments and return labels, read-only.

Tools (the audit) read the shipping service's records through this module, never with SQL
of their own; the tables behind it stay the service's to change.
"""

from dataclasses import dataclass
from pathlib import Path

from runtime import BookReader
from workers.shipping.shipments import LabelStatus, ShipmentStatus

__all__ = ["ReturnLabelRow", "ShipmentRow", "ShippingQueries", "database_path"]


def database_path(run_dir: Path) -> Path:
    """Where the shipping service keeps its database (its process opens the same file)."""
    return run_dir / "shipping.db"


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    """The shipment of one order; a refused one has neither id nor carrier."""

    order_id: str
    shipment_id: str | None
    status: ShipmentStatus
    carrier: str | None
    scheduled_at: float


@dataclass(frozen=True, slots=True)
class ReturnLabelRow:
    """The prepaid label of one return."""

    return_id: str
    order_id: str
    label_id: str
    status: LabelStatus
    """``issued``, ``received`` (the parcel reached the warehouse) or ``voided``."""
    issued_at: float


class ShippingQueries(BookReader):
    """Read-only queries on the shipping service's database."""

    def shipments(self) -> list[ShipmentRow]:
        """Every order's shipment, whatever its status."""
        return self._records(ShipmentRow, "shipments")

    def return_labels(self) -> list[ReturnLabelRow]:
        """Every return's label, whatever its status."""
        return self._records(ReturnLabelRow, "return_labels")
