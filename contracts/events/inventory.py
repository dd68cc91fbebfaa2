"""Events of the inventory service."""

from typing import ClassVar

from pydantic import Field

from contracts.envelope import Event, EventData
from contracts.events.common import StockLine

__all__ = [
    "InventoryReleased",
    "InventoryReleasedData",
    "InventoryReserved",
    "InventoryReservedData",
    "InventoryUnavailable",
    "InventoryUnavailableData",
]


class InventoryReservedData(EventData):
    """Stock was set aside for every line of the order."""

    reservation_id: str = Field(min_length=1)
    items: list[StockLine] = Field(min_length=1)


class InventoryReserved(Event[InventoryReservedData]):
    """``inventory.reserved.v1``."""

    EVENT_TYPE: ClassVar[str] = "inventory.reserved.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class InventoryUnavailableData(EventData):
    """Stock could not be reserved; ``items`` are the lines that were short."""

    # No reservation exists when nothing could be reserved.
    reservation_id: str | None = None
    items: list[StockLine] = Field(min_length=1)
    reason: str = Field(min_length=1)


class InventoryUnavailable(Event[InventoryUnavailableData]):
    """``inventory.unavailable.v1``."""

    EVENT_TYPE: ClassVar[str] = "inventory.unavailable.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class InventoryReleasedData(EventData):
    """A reservation was given back: the compensation of ``inventory.reserved``."""

    reservation_id: str = Field(min_length=1)
    items: list[StockLine] = Field(min_length=1)


class InventoryReleased(Event[InventoryReleasedData]):
    """``inventory.released.v1``."""

    EVENT_TYPE: ClassVar[str] = "inventory.released.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"
