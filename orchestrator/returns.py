"""The order service's returns: the ``returns`` table beside the orders, and three activities.

``order.authorize_return`` decides a return against its order and, when it accepts it, holds
its quantities: an authorized (or completed) return's lines count against what was bought,
so the next return of the same order sees them taken. The decision and the row it writes are
one transaction, and the transactions that decide returns of one order take turns (SQLite's
writer lock; on PostgreSQL the order's row, locked with ``SELECT ... FOR UPDATE``): two
returns racing each other cannot both take the same units. ``order.expire_return`` releases
them (the compensation), ``order.complete_return`` records the refund.

Each activity is idempotent by return id: a repeat returns the first answer (the same lines,
or the same refusal) and writes no second event.
"""

import time
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.activities import (
    AUTHORIZE_RETURN,
    COMPLETE_RETURN,
    EXPIRE_RETURN,
    AuthorizeReturnInput,
    AuthorizeReturnResult,
    CompleteReturnInput,
    CompleteReturnResult,
    ExpireReturnInput,
    ExpireReturnResult,
    Order,
)
from contracts.errors import RETURN_REJECTED
from contracts.events.common import Money, PricedLine
from contracts.events.returns import (
    ReturnAuthorizedData,
    ReturnCompletedData,
    ReturnExpiredData,
    ReturnRejectedData,
    ReturnRejectionCode,
)
from orchestrator.orders import SOURCE
from runtime import Book, Database, DomainEvents, Outbox, causation_id

__all__ = ["ReturnActivities", "ReturnBook", "ReturnDecision", "ReturnRefused"]

_HOLDING = ("authorized", "completed")
"""The statuses of a return whose quantities count against the order."""


@dataclass(frozen=True)
class ReturnRefused:
    """Why a return was refused, as ``return.rejected`` said it."""

    reason: str
    code: ReturnRejectionCode


ReturnDecision = AuthorizeReturnResult | ReturnRefused
"""What the order service decided about a return: its priced lines, or its refusal."""


class ReturnBook(Book):
    """Returns of the orders, in the orchestrator's database (beside the orders)."""

    def __init__(self, connection: Database, outbox: Outbox) -> None:
        super().__init__(connection)
        self._events = DomainEvents(outbox, SOURCE)

    def authorize(self, request: AuthorizeReturnInput, cause: str | None) -> ReturnDecision:
        """Decide the return and record it with its event (``return.authorized`` or
        ``return.rejected``) in one transaction; a return decided before gets its first
        answer again and no second event."""
        with self.transaction():
            earlier = self._decision(request.request.return_id)
            if earlier is not None:
                return earlier
            order = self._locked_order(request.request.order_id)
            decision = self._decide(request, order)
            self._record(request, decision, cause)
        return decision

    def expire(self, request: ExpireReturnInput, cause: str | None) -> bool:
        """Release an authorized return's quantities and write ``return.expired``, once;
        False if it was never authorized (unknown, refused) or has completed."""
        with self.transaction():
            status = self.status(request.return_id)
            if status == "expired":
                return True
            if status != "authorized":
                return False
            self._set_status(request.return_id, "expired", outcome_reason=request.reason)
            self._events.emit(
                ReturnExpiredData(
                    order_id=request.order_id, return_id=request.return_id, reason=request.reason
                ),
                caused_by=cause,
            )
        return True

    def complete(self, request: CompleteReturnInput, cause: str | None) -> bool:
        """Mark an authorized return completed and write ``return.completed``, once; False
        if it is not authorized (unknown, refused, expired)."""
        with self.transaction():
            status = self.status(request.return_id)
            if status == "completed":
                return True
            if status != "authorized":
                return False
            self._set_status(request.return_id, "completed", refund_id=request.refund_id)
            self._events.emit(
                ReturnCompletedData(
                    order_id=request.order_id,
                    return_id=request.return_id,
                    refund_id=request.refund_id,
                    amount=request.amount,
                ),
                caused_by=cause,
            )
        return True

    def status(self, return_id: str) -> str | None:
        """``authorized``, ``rejected``, ``expired``, ``completed``, or None if unknown."""
        row = self._db.execute(
            "SELECT status FROM returns WHERE return_id = ?", (return_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def held(self, order_id: str) -> dict[str, int]:
        """The quantities of the order that its authorized and completed returns hold."""
        rows = self._db.execute(
            "SELECT return_lines.sku, SUM(return_lines.quantity) FROM return_lines"
            " JOIN returns ON returns.return_id = return_lines.return_id"
            " WHERE returns.order_id = ? AND returns.status IN (?, ?)"
            " GROUP BY return_lines.sku",
            (order_id, *_HOLDING),
        ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    # --- inside the caller's transaction ----------------------------------------------

    def _locked_order(self, order_id: str) -> Any:
        """The order's row, locked until the transaction ends (PostgreSQL; on SQLite the
        transaction holds the database's writer lock already)."""
        lock = " FOR UPDATE" if self._db.dialect == "postgresql" else ""
        return self._db.execute(
            "SELECT status, body, completed_at, payment_id FROM orders WHERE order_id = ?" + lock,
            (order_id,),
        ).fetchone()

    def _decide(self, request: AuthorizeReturnInput, row: Any) -> ReturnDecision:
        wanted = request.request
        if row is None:
            return ReturnRefused(f"no order {wanted.order_id}", ReturnRejectionCode.UNKNOWN_ORDER)
        if row["status"] != "completed" or row["completed_at"] is None:
            return ReturnRefused(
                f"order {wanted.order_id} was not dispatched (it is {row['status']})",
                ReturnRejectionCode.NOT_DISPATCHED,
            )
        dispatched_at = float(row["completed_at"])
        age = request.requested_at.timestamp() - dispatched_at
        if age > request.window_seconds:
            return ReturnRefused(
                f"order {wanted.order_id} was dispatched {_days(age)} days before the request;"
                f" returns close after {_days(request.window_seconds)} days",
                ReturnRejectionCode.WINDOW_CLOSED,
            )
        order = Order.model_validate_json(row["body"])
        bought: dict[str, int] = {}
        price: dict[str, int] = {}
        for line in order.items:
            bought[line.sku] = bought.get(line.sku, 0) + line.quantity
            # The same SKU on two lines at two prices: refund the lower, never more than paid.
            price[line.sku] = min(price.get(line.sku, line.unit_price_minor), line.unit_price_minor)
        asked: dict[str, int] = {}
        for item in wanted.items:
            asked[item.sku] = asked.get(item.sku, 0) + item.quantity
        unknown = sorted(sku for sku in asked if sku not in bought)
        if unknown:
            return ReturnRefused(
                f"order {wanted.order_id} has no {', '.join(unknown)}",
                ReturnRejectionCode.UNKNOWN_ITEM,
            )
        held = self.held(wanted.order_id)
        over = [
            f"{sku} (asked {quantity}, bought {bought[sku]}, already returned or held"
            f" {held.get(sku, 0)})"
            for sku, quantity in asked.items()
            if quantity > bought[sku] - held.get(sku, 0)
        ]
        if over:
            return ReturnRefused(
                f"more than order {wanted.order_id} has left to return: {', '.join(over)}",
                ReturnRejectionCode.MORE_THAN_BOUGHT,
            )
        lines = [
            PricedLine(
                sku=sku,
                quantity=quantity,
                unit_price=Money(amount_minor=price[sku], currency=order.currency),
            )
            for sku, quantity in asked.items()
        ]
        return AuthorizeReturnResult(
            return_id=wanted.return_id,
            order_id=wanted.order_id,
            lines=lines,
            amount=Money(
                amount_minor=sum(line.quantity * line.unit_price.amount_minor for line in lines),
                currency=order.currency,
            ),
            payment_id=row["payment_id"] or "",
        )

    def _record(
        self, request: AuthorizeReturnInput, decision: ReturnDecision, cause: str | None
    ) -> None:
        wanted = request.request
        insert = (
            "INSERT INTO returns (return_id, order_id, status, reason, reason_code,"
            " amount_minor, currency, payment_id, outcome_reason, requested_at, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        now = time.time()
        requested_at = request.requested_at.timestamp()
        if isinstance(decision, ReturnRefused):
            self._db.execute(
                insert,
                (
                    *(wanted.return_id, wanted.order_id, "rejected", wanted.reason),
                    *(decision.code, None, None, None, decision.reason, requested_at, now, now),
                ),
            )
            self._events.emit(
                ReturnRejectedData(
                    order_id=wanted.order_id,
                    return_id=wanted.return_id,
                    reason=decision.reason,
                    reason_code=decision.code,
                ),
                caused_by=cause,
            )
            return
        amount = decision.amount
        self._db.execute(
            insert,
            (
                *(wanted.return_id, wanted.order_id, "authorized", wanted.reason, None),
                *(amount.amount_minor, amount.currency, decision.payment_id, None),
                *(requested_at, now, now),
            ),
        )
        self._db.executemany(
            "INSERT INTO return_lines (return_id, sku, quantity, unit_price_minor)"
            " VALUES (?, ?, ?, ?)",
            [
                (wanted.return_id, line.sku, line.quantity, line.unit_price.amount_minor)
                for line in decision.lines
            ],
        )
        self._events.emit(
            ReturnAuthorizedData(
                order_id=wanted.order_id,
                return_id=wanted.return_id,
                items=decision.lines,
                amount=amount,
            ),
            caused_by=cause,
        )

    def _decision(self, return_id: str) -> ReturnDecision | None:
        """What was decided about ``return_id`` before, if anything."""
        row = self._db.execute("SELECT * FROM returns WHERE return_id = ?", (return_id,)).fetchone()
        if row is None:
            return None
        if row["status"] == "rejected":
            return ReturnRefused(row["outcome_reason"], ReturnRejectionCode(row["reason_code"]))
        currency = row["currency"]
        lines = [
            PricedLine(
                sku=line["sku"],
                quantity=line["quantity"],
                unit_price=Money(amount_minor=line["unit_price_minor"], currency=currency),
            )
            for line in self._db.execute(
                "SELECT sku, quantity, unit_price_minor FROM return_lines WHERE return_id = ?"
                " ORDER BY sku",
                (return_id,),
            )
        ]
        return AuthorizeReturnResult(
            return_id=return_id,
            order_id=row["order_id"],
            lines=lines,
            amount=Money(amount_minor=row["amount_minor"], currency=currency),
            payment_id=row["payment_id"] or "",
        )

    def _set_status(
        self,
        return_id: str,
        status: str,
        *,
        outcome_reason: str | None = None,
        refund_id: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE returns SET status = ?, outcome_reason = COALESCE(?, outcome_reason),"
            " refund_id = COALESCE(?, refund_id), updated_at = ? WHERE return_id = ?",
            (status, outcome_reason, refund_id, time.time(), return_id),
        )


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.1f}".removesuffix(".0")


class ReturnActivities:
    """``order.authorize_return``, ``order.expire_return`` and ``order.complete_return``."""

    def __init__(self, book: ReturnBook) -> None:
        self._book = book

    @activity.defn(name=AUTHORIZE_RETURN)
    async def authorize(self, request: AuthorizeReturnInput) -> AuthorizeReturnResult:
        """Authorize the return and hold its quantities (``return.authorized``), or refuse it
        (``return.rejected``, then a non-retryable ``ReturnRejected`` whose first detail is
        the ``ReturnRejectionCode``)."""
        decision = self._book.authorize(request, causation_id())
        if isinstance(decision, ReturnRefused):
            raise ApplicationError(
                decision.reason, str(decision.code), type=RETURN_REJECTED, non_retryable=True
            )
        return decision

    @activity.defn(name=EXPIRE_RETURN)
    async def expire(self, request: ExpireReturnInput) -> ExpireReturnResult:
        """Release the return's held quantities and emit ``return.expired``."""
        return ExpireReturnResult(expired=self._book.expire(request, causation_id()))

    @activity.defn(name=COMPLETE_RETURN)
    async def complete(self, request: CompleteReturnInput) -> CompleteReturnResult:
        """Mark the return completed and emit ``return.completed``."""
        return CompleteReturnResult(completed=self._book.complete(request, causation_id()))
