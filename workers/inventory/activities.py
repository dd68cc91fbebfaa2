"""The inventory service's activities: reserve an order's stock, release it; restock the
items of a return."""

from temporalio import activity

from contracts.activities import (
    RELEASE_STOCK,
    RESERVE_STOCK,
    RESTOCK,
    ReleaseStockInput,
    ReleaseStockResult,
    ReserveStockInput,
    ReserveStockResult,
    RestockInput,
    RestockResult,
)
from contracts.errors import STOCK_UNAVAILABLE
from contracts.events.inventory import (
    InventoryReleasedData,
    InventoryReservedData,
    InventoryRestockedData,
    InventoryUnavailableData,
)
from runtime import DomainEvents, Outbox, refusal
from workers.inventory.stock import Reservation, ReservationStatus, StockBook, merge_lines

__all__ = ["SOURCE", "InventoryActivities"]

SOURCE = "inventory-service"


class InventoryActivities:
    """Reservations and releases, each once per order, and restocks, once per return, however
    often it is asked."""

    def __init__(self, stock: StockBook, outbox: Outbox) -> None:
        self._stock = stock
        self._events = DomainEvents(outbox, SOURCE)

    @activity.defn(name=RESERVE_STOCK)
    async def reserve(self, input: ReserveStockInput) -> ReserveStockResult:
        """Reserve every line or none; a shortage is a non-retryable ``StockUnavailable``.

        A repeat returns the first answer (the same reservation id, or the same refusal)
        without touching the stock or publishing again.
        """
        with self._stock.transaction():
            reservation = self._stock.reservation(input.order_id) or self._reserve(input)
        if reservation.status is ReservationStatus.REFUSED:
            raise refusal(
                STOCK_UNAVAILABLE,
                f"stock unavailable for order {input.order_id}: {reservation.reason}",
            )
        assert reservation.reservation_id is not None
        return ReserveStockResult(reservation_id=reservation.reservation_id)

    @activity.defn(name=RELEASE_STOCK)
    async def release(self, input: ReleaseStockInput) -> ReleaseStockResult:
        """Put the order's reserved stock back; ``released`` is False if none was reserved."""
        with self._stock.transaction():
            reservation = self._stock.reservation(input.order_id)
            if reservation is None or reservation.status is ReservationStatus.REFUSED:
                return ReleaseStockResult(released=False)
            if reservation.status is ReservationStatus.RESERVED:
                released = self._stock.release(reservation)
                assert released.reservation_id is not None
                self._events.emit(
                    InventoryReleasedData(
                        order_id=released.order_id,
                        reservation_id=released.reservation_id,
                        items=released.lines,
                    )
                )
        return ReleaseStockResult(released=True)

    @activity.defn(name=RESTOCK)
    async def restock(self, input: RestockInput) -> RestockResult:
        """Put the returned items back into stock and emit ``inventory.restocked``; a repeat
        returns the same lines without stocking or publishing again."""
        with self._stock.transaction():
            restocked = self._stock.restocked(input.return_id)
            if restocked is None:
                restocked = merge_lines(input.items)
                self._stock.restock(input.order_id, input.return_id, restocked)
                self._events.emit(
                    InventoryRestockedData(
                        order_id=input.order_id, return_id=input.return_id, items=restocked
                    )
                )
        return RestockResult(restocked=restocked)

    def _reserve(self, input: ReserveStockInput) -> Reservation:
        """Inside the caller's transaction: reserve the lines, or record the refusal."""
        lines = merge_lines(input.items)
        short = self._stock.shortages(lines)
        if short:
            reason = "not enough stock for " + ", ".join(
                f"{line.sku} (wanted {line.quantity}, on hand {self._stock.on_hand(line.sku) or 0})"
                for line in short
            )
            refused = self._stock.refuse(input.order_id, short, reason)
            self._events.emit(
                InventoryUnavailableData(order_id=input.order_id, items=short, reason=reason)
            )
            return refused
        reservation = self._stock.reserve(input.order_id, lines)
        assert reservation.reservation_id is not None
        self._events.emit(
            InventoryReservedData(
                order_id=input.order_id,
                reservation_id=reservation.reservation_id,
                items=lines,
            )
        )
        return reservation
