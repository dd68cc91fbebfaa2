"""What the audit reads, as plain data: the sagas, the services' records, the events.

The collectors (:mod:`ops.audit.collectors`) fill these from Temporal, the services'
SQLite databases and Kafka; the checker (:func:`ops.audit.find_violations`) only
reads them, so it can be tested on snapshots made by hand.
"""

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from contracts.activities import SagaPhase
from ops.audit.report import AuditSource
from workers.payment.queries import LedgerEntryRow

__all__ = [
    "AuditSnapshot",
    "LedgerEntry",
    "OrderRecord",
    "PaymentRecord",
    "ReservationRecord",
    "RestockRecord",
    "ReturnLabelRecord",
    "ReturnRecord",
    "SagaRecord",
    "SeenEvent",
    "ShipmentRecord",
]

_Row = TypeVar("_Row")


@dataclass(frozen=True, slots=True)
class SagaRecord:
    """An order's saga as Temporal's visibility store lists it."""

    order_id: str
    workflow_id: str
    execution_status: str
    """Temporal's status of the workflow: ``RUNNING``, ``COMPLETED``, ``TERMINATED``..."""
    saga_status: SagaPhase | None
    """The ``SagaStatus`` search attribute (or the saga's result), None if it has none."""
    saga_step: str | None = None
    started_at: datetime | None = None

    @property
    def running(self) -> bool:
        """Temporal still runs the saga: it is in flight."""
        return self.execution_status == "RUNNING"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """A row of the order service's ``orders`` table (in the orchestrator's database)."""

    order_id: str
    status: str
    """``placed``, ``completed`` or ``cancelled``."""
    placed_at: float


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A row of the payment service's ``payments`` table."""

    order_id: str
    payment_id: str
    status: str
    """``captured``, ``declined`` or ``refunded``."""
    created_at: float


LedgerEntry = LedgerEntryRow
"""A row of the payment service's ``ledger_entries``: money moved (as its query module
publishes it: a plain record, nothing to convert)."""


@dataclass(frozen=True, slots=True)
class ReservationRecord:
    """A row of the inventory service's ``reservations`` table."""

    order_id: str
    reservation_id: str | None
    status: str
    """``reserved``, ``released`` or ``refused`` (a refused one has no id)."""
    created_at: float


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    """A row of the shipping service's ``shipments`` table."""

    order_id: str
    shipment_id: str | None
    status: str
    """``scheduled``, ``dispatched``, ``cancelled`` or ``refused`` (a refused one has no id)."""
    carrier: str | None
    scheduled_at: float


@dataclass(frozen=True, slots=True)
class ReturnRecord:
    """A return of an order as the order service decided it (``returns`` and its lines, in
    the orchestrator's database)."""

    order_id: str
    return_id: str
    status: str
    """``authorized`` (its saga runs), ``rejected``, ``expired`` or ``completed``."""
    lines: dict[str, int]
    """Units returned per SKU (none for a rejected return)."""
    amount_minor: int | None
    """What the lines are worth: the refund it is owed (None for a rejected return)."""
    currency: str | None
    refund_id: str | None
    """The refund a completed return names."""
    created_at: float


@dataclass(frozen=True, slots=True)
class RestockRecord:
    """A return's restock: the inventory service's ``restocks`` and their lines."""

    order_id: str
    return_id: str
    lines: dict[str, int]
    """Units put back per SKU."""
    created_at: float


@dataclass(frozen=True, slots=True)
class ReturnLabelRecord:
    """A return's prepaid label: a row of the shipping service's ``return_labels``."""

    order_id: str
    return_id: str
    label_id: str
    status: str
    """``issued``, ``received`` (the parcel reached the warehouse) or ``voided``."""
    issued_at: float


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """One domain event of an order, on Kafka or still in a service's outbox."""

    order_id: str
    event_id: str
    name: str
    """The event type without its version: ``payment.completed``."""
    ref: str | None
    """What it is about: the payment, reservation or shipment id of its service (``None``
    for the order service's events), the refund id of a return's ``payment.refunded``, or
    the step of an ``order.repaired``."""
    timestamp: datetime
    settled: bool = True
    """On Kafka before the databases were read, so its record must be in what was read."""
    pending: bool = False
    """Still in a service's outbox (not yet sent): it is a record itself, on its way."""
    note: str | None = None
    """What an ``order.repaired`` did: action, operator and reason."""


@dataclass(frozen=True)
class AuditSnapshot:
    """Everything one audit read, by order id.

    ``sagas`` is None when Temporal was not read, ``events`` when Kafka was not read (an
    offline audit); the checks that need them are then skipped.
    """

    orders: dict[str, OrderRecord] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    ledger: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    reservations: dict[str, ReservationRecord] = field(default_factory=dict)
    shipments: dict[str, ShipmentRecord] = field(default_factory=dict)
    returns: dict[str, list[ReturnRecord]] = field(default_factory=dict)
    restocks: dict[str, list[RestockRecord]] = field(default_factory=dict)
    return_labels: dict[str, list[ReturnLabelRecord]] = field(default_factory=dict)
    sagas: dict[str, SagaRecord] | None = None
    events: dict[str, list[SeenEvent]] | None = None
    sources: list[AuditSource] = field(default_factory=list)

    def order_ids(self) -> set[str]:
        """Every order any source knows of."""
        ids = (
            self.orders.keys()
            | self.payments.keys()
            | self.ledger.keys()
            | self.reservations.keys()
            | self.shipments.keys()
            | self.returns.keys()
            | self.restocks.keys()
            | self.return_labels.keys()
        )
        if self.sagas is not None:
            ids |= self.sagas.keys()
        if self.events is not None:
            ids |= self.events.keys()
        return ids

    def first_seen(self, order_id: str) -> float | None:
        """When the order was first seen by any source (Unix time), None if by none."""
        saga = self.sagas.get(order_id) if self.sagas is not None else None
        if saga is not None and saga.started_at is not None:
            return saga.started_at.timestamp()
        order = self.orders.get(order_id)
        payment = self.payments.get(order_id)
        reservation = self.reservations.get(order_id)
        shipment = self.shipments.get(order_id)
        times = [entry.created_at for entry in self.ledger.get(order_id, ())]
        times += [order.placed_at] if order is not None else []
        times += [payment.created_at] if payment is not None else []
        times += [reservation.created_at] if reservation is not None else []
        times += [shipment.scheduled_at] if shipment is not None else []
        times += [record.created_at for record in self.returns.get(order_id, ())]
        times += [record.created_at for record in self.restocks.get(order_id, ())]
        times += [record.issued_at for record in self.return_labels.get(order_id, ())]
        if self.events is not None:
            times += [event.timestamp.timestamp() for event in self.events.get(order_id, ())]
        return min(times, default=None)

    def only(
        self, order_ids: Collection[str] | None = None, *, since: datetime | None = None
    ) -> "AuditSnapshot":
        """The part of the snapshot about ``order_ids`` (all if None) first seen ``since``."""
        if order_ids is None and since is None:
            return self
        keep = self.order_ids() if order_ids is None else set(order_ids)
        if since is not None:
            cutoff = since.timestamp()
            keep = {
                order_id
                for order_id in keep
                if (seen := self.first_seen(order_id)) is not None and seen >= cutoff
            }

        def kept(table: dict[str, _Row]) -> dict[str, _Row]:
            return {order_id: row for order_id, row in table.items() if order_id in keep}

        return replace(
            self,
            orders=kept(self.orders),
            payments=kept(self.payments),
            ledger=kept(self.ledger),
            reservations=kept(self.reservations),
            shipments=kept(self.shipments),
            returns=kept(self.returns),
            restocks=kept(self.restocks),
            return_labels=kept(self.return_labels),
            sagas=kept(self.sagas) if self.sagas is not None else None,
            events=kept(self.events) if self.events is not None else None,
        )
