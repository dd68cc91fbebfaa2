"""The inventory service's published read API: stock levels, reservations, restocks; read-only.

Tools (the audit, the bench) read the inventory service's records through this module,
never with SQL of their own; the tables behind it stay the service's to change.
"""

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from runtime import BookReader
from workers.inventory.stock import DEFAULT_SEED_FILE, ReservationStatus, load_seed

__all__ = [
    "InventoryQueries",
    "ReservationRow",
    "RestockLineRow",
    "RestockRow",
    "database_path",
    "seed_file",
    "seeded_levels",
]


def database_path(run_dir: Path) -> Path:
    """Where the inventory service keeps its database (its process opens the same file)."""
    return run_dir / "inventory.db"


def seed_file(configured: Path | None) -> Path:
    """The file a new inventory database is stocked from: ``configured`` or the service's own."""
    return configured or DEFAULT_SEED_FILE


def seeded_levels(configured: Path | None) -> dict[str, int]:
    """The units per SKU a new inventory database starts with (see :func:`seed_file`).

    Raises:
        OSError: the seed file cannot be read.
        ValueError: it is not a JSON object of SKU to units.
    """
    return load_seed(seed_file(configured))


@dataclass(frozen=True, slots=True)
class ReservationRow:
    """The reservation of one order; a refused one has no id."""

    order_id: str
    reservation_id: str | None
    status: ReservationStatus
    created_at: float


@dataclass(frozen=True, slots=True)
class RestockRow:
    """The restock of one return: its lines went back on the shelf."""

    return_id: str
    order_id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class RestockLineRow:
    """One SKU a return's restock put back."""

    return_id: str
    sku: str
    quantity: int


class InventoryQueries(BookReader):
    """Read-only queries on the inventory service's database."""

    def reservations(self) -> list[ReservationRow]:
        """Every order's reservation, whatever its status."""
        return self._records(ReservationRow, "reservations")

    def restocks(self) -> list[RestockRow]:
        """Every return's restock."""
        return self._records(RestockRow, "restocks")

    def restock_lines(self) -> list[RestockLineRow]:
        """The lines of every restock."""
        return self._records(RestockLineRow, "restock_lines")

    def on_hand(self, skus: Collection[str]) -> dict[str, int]:
        """Units on hand of each of ``skus`` the warehouse carries (the others are left out)."""
        wanted = sorted(set(skus))
        marks = ", ".join("?" * len(wanted))  # placeholders only: the SKUs are parameters
        return {
            row["sku"]: row["on_hand"]
            for row in self._rows(
                f"SELECT sku, on_hand FROM stock WHERE sku IN ({marks})", tuple(wanted)
            )
        }
