"""The shipping service's data: one shipment per order, from scheduled to dispatched, and one
return label per return, from issued to received or voided."""

import json
import time
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from infra.config.settings import ConfigurationError
from runtime import Book

__all__ = [
    "LabelStatus",
    "ReturnLabel",
    "Shipment",
    "ShipmentBook",
    "ShipmentStatus",
    "carrier_for",
    "parse_countries",
]


_NORTH_AMERICA = frozenset({"CA", "MX", "US"})
_EUROPE = frozenset(
    {"AT", "BE", "CH", "CZ", "DE", "DK", "ES", "FI", "FR", "GB", "GR", "HU", "IE", "IT", "LU"}
    | {"NL", "NO", "PL", "PT", "RO", "SE", "SK"}
)


def carrier_for(country: str) -> str:
    """The carrier that delivers to ``country``."""
    if country in _NORTH_AMERICA:
        return "UPS"
    if country in _EUROPE:
        return "DHL"
    return "FedEx"


def parse_countries(text: str) -> frozenset[str]:
    """The country codes of the ``shipping_countries`` setting (``"DE, fr,US"``).

    Raises:
        ConfigurationError: an entry is not a two-letter code.
    """
    codes = {code.strip().upper() for code in text.split(",") if code.strip()}
    bad = sorted(code for code in codes if len(code) != 2 or not code.isalpha())
    if bad:
        raise ConfigurationError(
            f"bad setting SAGA_SHIPPING_COUNTRIES: {', '.join(bad)} not ISO 3166-1 alpha-2"
            " codes (fix it in the environment or in .env)"
        )
    return frozenset(codes)


class ShipmentStatus(StrEnum):
    """Where an order's shipment stands."""

    SCHEDULED = "scheduled"
    DISPATCHED = "dispatched"
    CANCELLED = "cancelled"
    REFUSED = "refused"


@dataclass(frozen=True)
class Shipment:
    """The shipment of one order; a refused one has neither id nor carrier."""

    order_id: str
    shipment_id: str | None
    country: str
    carrier: str | None
    status: ShipmentStatus
    reason: str | None
    tracking_number: str | None
    scheduled_event_id: str | None


class LabelStatus(StrEnum):
    """Where a return's label stands."""

    ISSUED = "issued"
    RECEIVED = "received"
    """The parcel reached the warehouse."""
    VOIDED = "voided"


@dataclass(frozen=True)
class ReturnLabel:
    """The prepaid label of one return."""

    return_id: str
    order_id: str
    label_id: str
    carrier: str
    tracking_number: str
    reason: str
    """The customer's reason for the return (the carrier simulator reads its test card)."""
    status: LabelStatus
    void_reason: str | None
    issued_event_id: str


class ShipmentBook(Book):
    """Shipments and return labels in the shipping service's database."""

    MIGRATIONS = Path(__file__).with_name("migrations")

    def shipment(self, order_id: str) -> Shipment | None:
        """The shipment of ``order_id``, whatever its status."""
        row = self._db.execute("SELECT * FROM shipments WHERE order_id = ?", (order_id,)).fetchone()
        return None if row is None else _shipment(row)

    def schedule(
        self, order_id: str, country: str, items: list[dict[str, object]], event_id: str
    ) -> Shipment:
        """Record a shipment for the carrier to collect; ``event_id`` is its scheduled event."""
        shipment_id = f"shp-{uuid.uuid4().hex}"
        self._insert(
            order_id,
            shipment_id,
            country,
            carrier_for(country),
            items,
            ShipmentStatus.SCHEDULED,
            scheduled_event_id=event_id,
        )
        shipment = self.shipment(order_id)
        assert shipment is not None
        return shipment

    def refuse(
        self, order_id: str, country: str, items: list[dict[str, object]], reason: str
    ) -> Shipment:
        """Record that no shipment can be scheduled for ``order_id``."""
        self._insert(order_id, None, country, None, items, ShipmentStatus.REFUSED, reason)
        shipment = self.shipment(order_id)
        assert shipment is not None
        return shipment

    def cancel(self, shipment: Shipment) -> bool:
        """Call off a scheduled shipment; False if it is no longer scheduled."""
        cursor = self._db.execute(
            "UPDATE shipments SET status = ?, updated_at = ? WHERE order_id = ? AND status = ?",
            (ShipmentStatus.CANCELLED, time.time(), shipment.order_id, ShipmentStatus.SCHEDULED),
        )
        return cursor.rowcount == 1

    def due_for_dispatch(self, scheduled_before: float, limit: int = 100) -> list[Shipment]:
        """Scheduled shipments scheduled before ``scheduled_before`` (a Unix time), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM shipments WHERE status = ? AND scheduled_at <= ?"
            " ORDER BY scheduled_at LIMIT ?",
            (ShipmentStatus.SCHEDULED, scheduled_before, limit),
        ).fetchall()
        return [_shipment(row) for row in rows]

    def dispatch(self, shipment: Shipment, tracking_number: str) -> Shipment | None:
        """Mark a scheduled shipment collected; None if it is no longer scheduled."""
        cursor = self._db.execute(
            "UPDATE shipments SET status = ?, tracking_number = ?, updated_at = ?"
            " WHERE order_id = ? AND status = ?",
            (
                ShipmentStatus.DISPATCHED,
                tracking_number,
                time.time(),
                shipment.order_id,
                ShipmentStatus.SCHEDULED,
            ),
        )
        if cursor.rowcount != 1:
            return None
        return replace(shipment, status=ShipmentStatus.DISPATCHED, tracking_number=tracking_number)

    def _insert(
        self,
        order_id: str,
        shipment_id: str | None,
        country: str,
        carrier: str | None,
        items: list[dict[str, object]],
        status: ShipmentStatus,
        reason: str | None = None,
        *,
        scheduled_event_id: str | None = None,
    ) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO shipments (order_id, shipment_id, country, carrier, items, status,"
            " reason, scheduled_event_id, scheduled_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order_id,
                shipment_id,
                country,
                carrier,
                json.dumps(items),
                status,
                reason,
                scheduled_event_id,
                now,
                now,
            ),
        )

    def label(self, return_id: str) -> ReturnLabel | None:
        """The label of ``return_id``, whatever its status."""
        row = self._db.execute(
            "SELECT * FROM return_labels WHERE return_id = ?", (return_id,)
        ).fetchone()
        return None if row is None else _label(row)

    def issue_label(
        self,
        order_id: str,
        return_id: str,
        items: list[dict[str, object]],
        reason: str,
        event_id: str,
    ) -> ReturnLabel:
        """Record a new label for ``return_id``, with the carrier that shipped the order (the
        one of its country), and ``event_id``, its issued event."""
        shipment = self.shipment(order_id)
        carrier = (shipment.carrier if shipment else None) or carrier_for("")
        now = time.time()
        self._db.execute(
            "INSERT INTO return_labels (return_id, order_id, label_id, carrier,"
            " tracking_number, items, reason, status, issued_event_id, issued_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                return_id,
                order_id,
                f"lbl-{uuid.uuid4().hex}",
                carrier,
                f"{carrier.upper()}R{uuid.uuid4().int % 10**12:012d}",
                json.dumps(items),
                reason,
                LabelStatus.ISSUED,
                event_id,
                now,
                now,
            ),
        )
        label = self.label(return_id)
        assert label is not None
        return label

    def void_label(self, label: ReturnLabel, reason: str) -> bool:
        """Void an issued label; False if it is no longer issued."""
        return self._move_label(label, LabelStatus.VOIDED, reason)

    def receive(self, label: ReturnLabel) -> bool:
        """Record the parcel of an issued label as received; False if it is no longer issued."""
        return self._move_label(label, LabelStatus.RECEIVED, None)

    def due_for_delivery(
        self, issued_before: float, never_delivered: str, limit: int = 100
    ) -> list[ReturnLabel]:
        """Issued labels issued before ``issued_before`` (a Unix time), oldest first, but for
        those whose reason is ``never_delivered``."""
        rows = self._db.execute(
            "SELECT * FROM return_labels WHERE status = ? AND issued_at <= ? AND reason <> ?"
            " ORDER BY issued_at LIMIT ?",
            (LabelStatus.ISSUED, issued_before, never_delivered, limit),
        ).fetchall()
        return [_label(row) for row in rows]

    def _move_label(self, label: ReturnLabel, status: LabelStatus, reason: str | None) -> bool:
        cursor = self._db.execute(
            "UPDATE return_labels SET status = ?, void_reason = ?, updated_at = ?"
            " WHERE return_id = ? AND status = ?",
            (status, reason, time.time(), label.return_id, LabelStatus.ISSUED),
        )
        return cursor.rowcount == 1


def _label(row: Any) -> ReturnLabel:
    return ReturnLabel(
        return_id=row["return_id"],
        order_id=row["order_id"],
        label_id=row["label_id"],
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
        reason=row["reason"],
        status=LabelStatus(row["status"]),
        void_reason=row["void_reason"],
        issued_event_id=row["issued_event_id"],
    )


def _shipment(row: Any) -> Shipment:
    return Shipment(
        order_id=row["order_id"],
        shipment_id=row["shipment_id"],
        country=row["country"],
        carrier=row["carrier"],
        status=ShipmentStatus(row["status"]),
        reason=row["reason"],
        tracking_number=row["tracking_number"],
        scheduled_event_id=row["scheduled_event_id"],
    )
