"""Events of the inventory service."""

from pydantic import Field

from contracts.envelope import Event, EventData
from contracts.events.common import StockLine

__all__ = [
    "InventoryReleased",
    "InventoryReleasedData",
    "InventoryReserved",
    "InventoryReservedData",
    "InventoryRestocked",
    "InventoryRestockedData",
    "InventoryUnavailable",
    "InventoryUnavailableData",
]


class _ReservationData(EventData):
    """What the events of a reservation carry: its id and its lines."""

    reservation_id: str = Field(min_length=1)
    items: list[StockLine] = Field(min_length=1)


class InventoryReservedData(_ReservationData):
    """Stock was set aside for every line of the order."""


class InventoryReserved(Event[InventoryReservedData]):
    EVENT_TYPE = "inventory.reserved.v1"


class InventoryUnavailableData(EventData):
    """Stock could not be reserved; ``items`` are the lines that were short."""

    # No reservation exists when nothing could be reserved.
    reservation_id: str | None = None
    items: list[StockLine] = Field(min_length=1)
    reason: str = Field(min_length=1)


class InventoryUnavailable(Event[InventoryUnavailableData]):
    EVENT_TYPE = "inventory.unavailable.v1"


class InventoryReleasedData(_ReservationData):
    """A reservation was given back: the compensation of ``inventory.reserved``."""


class InventoryReleased(Event[InventoryReleasedData]):
    EVENT_TYPE = "inventory.released.v1"


class InventoryRestockedData(EventData):
    """Returned items were put back into stock, for the return ``return_id``."""

    return_id: str = Field(min_length=1)
    items: list[StockLine] = Field(min_length=1)


class InventoryRestocked(Event[InventoryRestockedData]):
    EVENT_TYPE = "inventory.restocked.v1"
