"""The inventory service's data: units on hand per SKU, the reservations of orders and the
restocks of returns."""

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from contracts.events.common import StockLine
from runtime import Book

__all__ = [
    "DEFAULT_SEED_FILE",
    "Reservation",
    "ReservationStatus",
    "StockBook",
    "load_seed",
    "merge_lines",
]

DEFAULT_SEED_FILE = Path(__file__).with_name("seed.json")


class ReservationStatus(StrEnum):
    """Where an order's reservation stands."""

    RESERVED = "reserved"
    RELEASED = "released"
    REFUSED = "refused"


@dataclass(frozen=True)
class Reservation:
    """The reservation of one order; a refused one holds the lines that were short."""

    order_id: str
    reservation_id: str | None
    status: ReservationStatus
    lines: list[StockLine]
    reason: str | None


def load_seed(path: Path) -> dict[str, int]:
    """Read a seed file: a JSON object of SKU to units on hand."""
    seed = json.loads(path.read_text())
    if not isinstance(seed, dict) or not all(
        isinstance(sku, str) and isinstance(units, int) and units >= 0
        for sku, units in seed.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of SKU to units on hand")
    return seed


def merge_lines(lines: Iterable[StockLine]) -> list[StockLine]:
    """One line per SKU, quantities added up, in the order the SKUs first appear."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    return [StockLine(sku=sku, quantity=quantity) for sku, quantity in totals.items()]


class StockBook(Book):
    """Stock levels and reservations in the inventory service's database."""

    MIGRATIONS = Path(__file__).with_name("migrations")

    def seed(self, levels: Mapping[str, int]) -> bool:
        """Stock ``levels`` if the stock table is empty; return whether it was seeded."""
        with self.transaction():
            if self._db.execute("SELECT 1 FROM stock LIMIT 1").fetchone() is not None:
                return False
            self._db.executemany(
                "INSERT INTO stock (sku, on_hand) VALUES (?, ?)", sorted(levels.items())
            )
        return True

    def on_hand(self, sku: str) -> int | None:
        """Units of ``sku`` on hand, or None for an SKU the warehouse does not carry."""
        row = self._db.execute("SELECT on_hand FROM stock WHERE sku = ?", (sku,)).fetchone()
        return None if row is None else int(row[0])

    def reservation(self, order_id: str) -> Reservation | None:
        """The reservation of ``order_id``, whatever its status."""
        row = self._db.execute(
            "SELECT * FROM reservations WHERE order_id = ?", (order_id,)
        ).fetchone()
        if row is None:
            return None
        lines = [
            StockLine(sku=line["sku"], quantity=line["quantity"])
            for line in self._db.execute(
                "SELECT sku, quantity FROM reservation_lines WHERE order_id = ? ORDER BY rowid",
                (order_id,),
            )
        ]
        return Reservation(
            order_id=order_id,
            reservation_id=row["reservation_id"],
            status=ReservationStatus(row["status"]),
            lines=lines,
            reason=row["reason"],
        )

    def shortages(self, lines: Iterable[StockLine]) -> list[StockLine]:
        """The lines that cannot be served from stock (unknown SKUs included)."""
        return [line for line in lines if (self.on_hand(line.sku) or 0) < line.quantity]

    def reserve(self, order_id: str, lines: list[StockLine]) -> Reservation:
        """Take ``lines`` (one per SKU, all in stock) off the shelf for ``order_id``."""
        self._db.executemany(
            "UPDATE stock SET on_hand = on_hand - ? WHERE sku = ?",
            [(line.quantity, line.sku) for line in lines],
        )
        return self._record(order_id, f"res-{uuid.uuid4().hex}", ReservationStatus.RESERVED, lines)

    def refuse(self, order_id: str, short: list[StockLine], reason: str) -> Reservation:
        """Record that ``order_id`` could not be reserved, and which lines were short."""
        return self._record(order_id, None, ReservationStatus.REFUSED, short, reason)

    def release(self, reservation: Reservation) -> Reservation:
        """Put a reservation's lines back on the shelf."""
        self._db.executemany(
            "UPDATE stock SET on_hand = on_hand + ? WHERE sku = ?",
            [(line.quantity, line.sku) for line in reservation.lines],
        )
        self._db.execute(
            "UPDATE reservations SET status = ?, updated_at = ? WHERE order_id = ?",
            (ReservationStatus.RELEASED, time.time(), reservation.order_id),
        )
        return replace(reservation, status=ReservationStatus.RELEASED, reason=None)

    def restocked(self, return_id: str) -> list[StockLine] | None:
        """The lines restocked for ``return_id``, or None if it was not restocked."""
        if (
            self._db.execute("SELECT 1 FROM restocks WHERE return_id = ?", (return_id,)).fetchone()
            is None
        ):
            return None
        return [
            StockLine(sku=row["sku"], quantity=row["quantity"])
            for row in self._db.execute(
                "SELECT sku, quantity FROM restock_lines WHERE return_id = ? ORDER BY sku",
                (return_id,),
            )
        ]

    def restock(self, order_id: str, return_id: str, lines: list[StockLine]) -> None:
        """Put the returned ``lines`` (one per SKU) back on the shelf and record it as the
        restock of ``return_id``; a SKU the warehouse no longer carries is carried again."""
        self._db.execute(
            "INSERT INTO restocks (return_id, order_id, created_at) VALUES (?, ?, ?)",
            (return_id, order_id, time.time()),
        )
        self._db.executemany(
            "INSERT INTO stock (sku, on_hand) VALUES (?, ?)"
            " ON CONFLICT (sku) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand",
            [(line.sku, line.quantity) for line in lines],
        )
        self._db.executemany(
            "INSERT INTO restock_lines (return_id, sku, quantity) VALUES (?, ?, ?)",
            [(return_id, line.sku, line.quantity) for line in lines],
        )

    def _record(
        self,
        order_id: str,
        reservation_id: str | None,
        status: ReservationStatus,
        lines: list[StockLine],
        reason: str | None = None,
    ) -> Reservation:
        now = time.time()
        self._db.execute(
            "INSERT INTO reservations (order_id, reservation_id, status, reason, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (order_id, reservation_id, status, reason, now, now),
        )
        self._db.executemany(
            "INSERT INTO reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)",
            [(order_id, line.sku, line.quantity) for line in lines],
        )
        return Reservation(order_id, reservation_id, status, lines, reason)
