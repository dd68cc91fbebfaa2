"""The inventory service: stock levels and the reservations of orders."""

from workers.inventory.activities import InventoryActivities
from workers.inventory.stock import Reservation, ReservationStatus, StockBook

__all__ = ["InventoryActivities", "Reservation", "ReservationStatus", "StockBook"]
