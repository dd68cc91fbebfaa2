"""The order service inside the orchestrator: the orders table and its three activities.

The saga records the order (``order.placed``) before anything else and records how it
ended (``order.completed`` / ``order.cancelled``). Each activity is idempotent by order id:
a repeat returns the first answer and writes no second event, and counts no second saga in
the metrics (only the call that changed the order's state counts it).
"""

import time

from temporalio import activity

from contracts.activities import (
    CANCEL_ORDER,
    COMPLETE_ORDER,
    PLACE_ORDER,
    CancelOrderInput,
    CancelOrderResult,
    CompleteOrderInput,
    CompleteOrderResult,
    PlaceOrderInput,
    PlaceOrderResult,
)
from contracts.envelope import EventData
from contracts.events.order import OrderCancelledData, OrderCompletedData, OrderPlacedData
from orchestrator.metrics import SagaMetrics, cancel_reason
from orchestrator.timeline import Timeline
from runtime import Book, Database, DomainEvents, Outbox, causation_id

__all__ = ["SOURCE", "OrderActivities", "OrderBook"]

SOURCE = "order-service"


class OrderBook(Book):
    """The orders the orchestrator has accepted, in its own database."""

    MIGRATIONS = Timeline.MIGRATIONS

    def __init__(
        self,
        connection: Database,
        outbox: Outbox,
        metrics: SagaMetrics | None = None,
    ) -> None:
        super().__init__(connection)
        self._events = DomainEvents(outbox, SOURCE)
        self._metrics = metrics

    def status(self, order_id: str) -> str | None:
        """``placed``, ``completed``, ``cancelled``, or None for an unknown order."""
        row = self._db.execute(
            "SELECT status FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def place(self, request: PlaceOrderInput, cause: str | None) -> bool:
        """Record the order and write ``order.placed``; False if it was recorded before."""
        order = request.order
        now = time.time()
        placed = self._change(
            "INSERT INTO orders (order_id, customer_id, status, body, placed_at, updated_at)"
            " VALUES (?, ?, 'placed', ?, ?, ?) ON CONFLICT DO NOTHING",
            (order.order_id, order.customer_id, order.model_dump_json(), now, now),
            OrderPlacedData(
                order_id=order.order_id,
                customer_id=order.customer_id,
                items=order.items,
                total=order.total,
                shipping_country=order.shipping_address.country,
            ),
            cause,
        )
        if placed and self._metrics is not None:
            self._metrics.saga_started()
        return placed

    def complete(self, request: CompleteOrderInput, cause: str | None) -> bool:
        """Mark the order completed and write ``order.completed``, once."""
        now = time.time()
        completed = self._change(
            "UPDATE orders SET status = 'completed', updated_at = ?, completed_at = ?,"
            " payment_id = ? WHERE order_id = ? AND status = 'placed'",
            (now, now, request.payment_id, request.order_id),
            OrderCompletedData.model_validate(request, from_attributes=True),
            cause,
        )
        if completed and self._metrics is not None:
            self._metrics.saga_completed(now - self._placed_at(request.order_id, now))
        return self.status(request.order_id) == "completed"

    def cancel(self, request: CancelOrderInput, cause: str | None) -> bool:
        """Mark the order cancelled and write ``order.cancelled``; False if it already was."""
        now = time.time()
        cancelled = self._change(
            "UPDATE orders SET status = 'cancelled', reason = ?, updated_at = ?"
            " WHERE order_id = ? AND status = 'placed'",
            (request.reason, now, request.order_id),
            OrderCancelledData(
                order_id=request.order_id,
                reason=request.reason,
                failed_step=request.failed_step,
            ),
            cause,
        )
        if cancelled and self._metrics is not None:
            self._metrics.saga_cancelled(
                cancel_reason(request), now - self._placed_at(request.order_id, now)
            )
        return cancelled

    def _change(
        self, sql: str, parameters: tuple[object, ...], event: EventData, cause: str | None
    ) -> bool:
        """Run one write of the orders table and, only if it changed a row, write ``event`` in
        the same transaction: so a repeated call writes no second event."""
        with self.transaction():
            changed = self._db.execute(sql, parameters).rowcount > 0
            if changed:
                self._events.emit(event, caused_by=cause)
        return changed

    def _placed_at(self, order_id: str, default: float) -> float:
        row = self._db.execute(
            "SELECT placed_at FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return default if row is None else float(row[0])


class OrderActivities:
    """``order.place``, ``order.complete`` and ``order.cancel`` on the orchestrator's queue."""

    def __init__(self, book: OrderBook) -> None:
        self._book = book

    @activity.defn(name=PLACE_ORDER)
    async def place(self, request: PlaceOrderInput) -> PlaceOrderResult:
        """Record the order and emit ``order.placed``."""
        self._book.place(request, causation_id())
        return PlaceOrderResult(order_id=request.order.order_id)

    @activity.defn(name=COMPLETE_ORDER)
    async def complete(self, request: CompleteOrderInput) -> CompleteOrderResult:
        """Mark the order completed and emit ``order.completed``."""
        return CompleteOrderResult(completed=self._book.complete(request, causation_id()))

    @activity.defn(name=CANCEL_ORDER)
    async def cancel(self, request: CancelOrderInput) -> CancelOrderResult:
        """Mark the order cancelled and emit ``order.cancelled``."""
        return CancelOrderResult(cancelled=self._book.cancel(request, causation_id()))
