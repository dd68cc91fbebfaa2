"""What an audit found: the violations, the sagas still in flight, and the sources it read."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CHECKS", "AuditReport", "AuditSource", "Violation", "ViolationKind"]


class ViolationKind(StrEnum):
    """What is wrong with an order, one kind per check."""

    CHARGED_NOT_REFUNDED = "charged_not_refunded"
    DOUBLE_CHARGE = "double_charge"
    STOCK_NOT_RESTORED = "stock_not_restored"
    SHIPMENT_ACTIVE = "shipment_active"
    COMPLETED_INCOMPLETE = "completed_incomplete"
    MISSING_EVENT = "missing_event"
    EVENT_WITHOUT_RECORD = "event_without_record"
    SAGA_UNFINISHED = "saga_unfinished"
    STATUS_MISMATCH = "status_mismatch"
    OVER_REFUNDED = "over_refunded"
    RESTOCK_MISMATCH = "restock_mismatch"
    RETURN_REFUND_MISMATCH = "return_refund_mismatch"


CHECKS: dict[ViolationKind, str] = {
    ViolationKind.CHARGED_NOT_REFUNDED: "a cancelled order whose charge was not refunded",
    ViolationKind.DOUBLE_CHARGE: "more than one capture for one order",
    ViolationKind.STOCK_NOT_RESTORED: "a cancelled order whose reservation was not released",
    ViolationKind.SHIPMENT_ACTIVE: "a cancelled order whose shipment is not cancelled",
    ViolationKind.COMPLETED_INCOMPLETE: (
        "a completed order without exactly one charge, one reservation and one shipment"
    ),
    ViolationKind.MISSING_EVENT: "a service's record whose event is not on Kafka",
    ViolationKind.EVENT_WITHOUT_RECORD: "an event on Kafka with no record behind it",
    ViolationKind.SAGA_UNFINISHED: (
        "a saga Temporal closed (terminated, failed, timed out) before it completed or compensated"
    ),
    ViolationKind.STATUS_MISMATCH: "the order service's record disagrees with the saga's end",
    ViolationKind.OVER_REFUNDED: (
        "an order refunded more than was captured (its own refund and its returns' together)"
    ),
    ViolationKind.RESTOCK_MISMATCH: (
        "a return restocked other than its lines, or restocked though its parcel never arrived"
    ),
    ViolationKind.RETURN_REFUND_MISMATCH: (
        "a completed return without exactly one refund of its amount, or a refund of a return "
        "that was rejected or expired"
    ),
}
"""Every check, by the kind of violation it reports, and what that kind means."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Violation(_Model):
    """One inconsistency of one order, with the evidence in a sentence."""

    order_id: str
    kind: ViolationKind
    detail: str


class AuditSource(_Model):
    """One source the audit read (or could not, or was told not to)."""

    name: str
    """``temporal``, ``kafka``, or a service database: ``orders``, ``payment``, ..."""
    used: bool
    detail: str


class AuditReport(_Model):
    """What an audit found."""

    checked_orders: int
    """Orders checked: every order any source knows of, less the sagas still in flight."""
    in_flight: list[str]
    """Orders whose saga is still running: not checked, not violations."""
    violations: list[Violation]
    sources: list[AuditSource]
    counts: dict[ViolationKind, int]
    """Violations per check, for every check that ran."""
    skipped_checks: dict[ViolationKind, str] = Field(default_factory=dict)
    """Checks that did not run, and why (a source was not read)."""
    not_found: list[str] = Field(default_factory=list)
    """Orders asked for by id that no source knows of."""
    offline: bool = False
    """Only the databases were read (``--offline``)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No violation found."""
        return not self.violations

    def violations_of(self, order_id: str) -> list[Violation]:
        """The violations of one order."""
        return [violation for violation in self.violations if violation.order_id == order_id]
