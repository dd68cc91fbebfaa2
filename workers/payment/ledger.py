"""The payment service's data: one payment per order and its ledger of charges and refunds
(the order's own, and those of its returns)."""

import time
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from contracts.events.common import Money
from runtime import Book

__all__ = ["Payment", "PaymentLedger", "PaymentStatus", "ReturnRefund"]


class PaymentStatus(StrEnum):
    """Where an order's payment stands."""

    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"


@dataclass(frozen=True)
class Payment:
    """The payment of one order."""

    order_id: str
    payment_id: str
    customer_id: str
    amount: Money
    status: PaymentStatus
    decline_reason: str | None
    payment_token: str | None = None
    """The card charged (None for payments recorded before it was kept)."""


@dataclass(frozen=True)
class ReturnRefund:
    """The refund of one return, part of its order's payment."""

    return_id: str
    refund_id: str
    order_id: str
    payment_id: str
    amount: Money


class PaymentLedger(Book):
    """Payments and ledger entries in the payment service's database."""

    MIGRATIONS = Path(__file__).with_name("migrations")

    def payment(self, order_id: str) -> Payment | None:
        """The payment of ``order_id``, if one was captured or declined."""
        row = self._db.execute("SELECT * FROM payments WHERE order_id = ?", (order_id,)).fetchone()
        if row is None:
            return None
        return Payment(
            order_id=row["order_id"],
            payment_id=row["payment_id"],
            customer_id=row["customer_id"],
            amount=Money(amount_minor=row["amount_minor"], currency=row["currency"]),
            status=PaymentStatus(row["status"]),
            decline_reason=row["decline_reason"],
            payment_token=row["payment_token"],
        )

    def count_attempt(self, order_id: str) -> int:
        """Count one more attempt to charge ``order_id``; return its number (1 for the first)."""
        row = self._db.execute(
            "INSERT INTO charge_attempts (order_id, attempts) VALUES (?, 1)"
            " ON CONFLICT (order_id) DO UPDATE SET attempts = charge_attempts.attempts + 1"
            " RETURNING attempts",
            (order_id,),
        ).fetchone()
        attempts: int = row[0]
        return attempts

    def attempts(self, order_id: str) -> int:
        """How many times charging ``order_id`` was attempted."""
        row = self._db.execute(
            "SELECT attempts FROM charge_attempts WHERE order_id = ?", (order_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def capture(
        self, order_id: str, customer_id: str, amount: Money, payment_token: str | None = None
    ) -> Payment:
        """Record a captured payment (and the card charged) and its charge entry."""
        payment = self._insert(
            order_id, customer_id, amount, PaymentStatus.CAPTURED, None, payment_token
        )
        self._entry(payment, "charge")
        return payment

    def decline(self, order_id: str, customer_id: str, amount: Money, reason: str) -> Payment:
        """Record a declined payment: nothing moves, so no ledger entry."""
        return self._insert(order_id, customer_id, amount, PaymentStatus.DECLINED, reason)

    def refund(self, payment: Payment) -> Payment:
        """Mark a captured payment refunded and record the refund entry."""
        self._db.execute(
            "UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ?",
            (PaymentStatus.REFUNDED, time.time(), payment.order_id),
        )
        self._entry(payment, "refund")
        return replace(payment, status=PaymentStatus.REFUNDED, decline_reason=None)

    def return_refund(self, return_id: str) -> ReturnRefund | None:
        """The refund of ``return_id``, if it was refunded."""
        row = self._db.execute(
            "SELECT * FROM ledger_entries WHERE return_id = ?", (return_id,)
        ).fetchone()
        if row is None:
            return None
        return ReturnRefund(
            return_id=row["return_id"],
            refund_id=row["refund_id"],
            order_id=row["order_id"],
            payment_id=row["payment_id"],
            amount=Money(amount_minor=row["amount_minor"], currency=row["currency"]),
        )

    def refunded_minor(self, order_id: str) -> int:
        """Everything refunded of ``order_id``'s payment so far, in minor units: the order's
        own refund and those of its returns."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entries"
            " WHERE order_id = ? AND kind IN ('refund', 'return_refund')",
            (order_id,),
        ).fetchone()
        return int(row[0])

    def refund_return(self, payment: Payment, return_id: str, amount: Money) -> ReturnRefund:
        """Record the refund of ``return_id``: ``amount`` of ``payment``, which stays captured."""
        refund = ReturnRefund(
            return_id=return_id,
            refund_id=f"rfd-{uuid.uuid4().hex}",
            order_id=payment.order_id,
            payment_id=payment.payment_id,
            amount=amount,
        )
        self._db.execute(
            "INSERT INTO ledger_entries (payment_id, order_id, kind, amount_minor, currency,"
            " created_at, return_id, refund_id) VALUES (?, ?, 'return_refund', ?, ?, ?, ?, ?)",
            (
                payment.payment_id,
                payment.order_id,
                amount.amount_minor,
                amount.currency,
                time.time(),
                return_id,
                refund.refund_id,
            ),
        )
        return refund

    def entries(self, order_id: str) -> list[tuple[str, int]]:
        """The ledger entries of ``order_id`` as (kind, amount in minor units), oldest first."""
        rows = self._db.execute(
            "SELECT kind, amount_minor FROM ledger_entries WHERE order_id = ? ORDER BY id",
            (order_id,),
        ).fetchall()
        return [(row["kind"], row["amount_minor"]) for row in rows]

    def _insert(
        self,
        order_id: str,
        customer_id: str,
        amount: Money,
        status: PaymentStatus,
        reason: str | None,
        payment_token: str | None = None,
    ) -> Payment:
        payment = Payment(
            order_id=order_id,
            payment_id=f"pay-{uuid.uuid4().hex}",
            customer_id=customer_id,
            amount=amount,
            status=status,
            decline_reason=reason,
            payment_token=payment_token,
        )
        now = time.time()
        self._db.execute(
            "INSERT INTO payments (order_id, payment_id, customer_id, amount_minor, currency,"
            " status, decline_reason, created_at, updated_at, payment_token)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order_id,
                payment.payment_id,
                customer_id,
                amount.amount_minor,
                amount.currency,
                status,
                reason,
                now,
                now,
                payment_token,
            ),
        )
        return payment

    def _entry(self, payment: Payment, kind: str) -> None:
        self._db.execute(
            "INSERT INTO ledger_entries (payment_id, order_id, kind, amount_minor, currency,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                payment.payment_id,
                payment.order_id,
                kind,
                payment.amount.amount_minor,
                payment.amount.currency,
                time.time(),
            ),
        )
