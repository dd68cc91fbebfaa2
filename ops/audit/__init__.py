"""``saga audit``: cross-check every order's saga, its services' records and its events.

:func:`run_audit` reads the sources (Temporal, the services' databases, Kafka) into an
:class:`AuditSnapshot` and hands it to :func:`find_violations`, a pure function, which says
what is wrong with each order in an :class:`AuditReport`.
"""

from ops.audit.checks import find_violations
from ops.audit.report import CHECKS, AuditReport, AuditSource, Violation, ViolationKind
from ops.audit.run import AuditSourceError, run_audit
from ops.audit.snapshot import (
    AuditSnapshot,
    LedgerEntry,
    OrderRecord,
    PaymentRecord,
    ReservationRecord,
    SagaRecord,
    SeenEvent,
    ShipmentRecord,
)

__all__ = [
    "CHECKS",
    "AuditReport",
    "AuditSnapshot",
    "AuditSource",
    "AuditSourceError",
    "LedgerEntry",
    "OrderRecord",
    "PaymentRecord",
    "ReservationRecord",
    "SagaRecord",
    "SeenEvent",
    "ShipmentRecord",
    "Violation",
    "ViolationKind",
    "find_violations",
    "run_audit",
]
