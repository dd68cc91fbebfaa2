"""The event catalog's Python models, one module per domain as under ``schemas/``."""

from contracts.events.common import Money, OrderLine, StockLine
from contracts.events.inventory import (
    InventoryReleased,
    InventoryReleasedData,
    InventoryReserved,
    InventoryReservedData,
    InventoryUnavailable,
    InventoryUnavailableData,
)
from contracts.events.order import (
    OrderCancelled,
    OrderCancelledData,
    OrderCompleted,
    OrderCompletedData,
    OrderPlaced,
    OrderPlacedData,
    OrderPlacedV2,
    OrderPlacedV2Data,
)
from contracts.events.payment import (
    PaymentCompleted,
    PaymentCompletedData,
    PaymentFailed,
    PaymentFailedData,
    PaymentRefunded,
    PaymentRefundedData,
)
from contracts.events.shipping import (
    ShippingCancelled,
    ShippingCancelledData,
    ShippingDispatched,
    ShippingDispatchedData,
    ShippingFailed,
    ShippingFailedData,
    ShippingScheduled,
    ShippingScheduledData,
)

__all__ = [
    "InventoryReleased",
    "InventoryReleasedData",
    "InventoryReserved",
    "InventoryReservedData",
    "InventoryUnavailable",
    "InventoryUnavailableData",
    "Money",
    "OrderCancelled",
    "OrderCancelledData",
    "OrderCompleted",
    "OrderCompletedData",
    "OrderLine",
    "OrderPlaced",
    "OrderPlacedData",
    "OrderPlacedV2",
    "OrderPlacedV2Data",
    "PaymentCompleted",
    "PaymentCompletedData",
    "PaymentFailed",
    "PaymentFailedData",
    "PaymentRefunded",
    "PaymentRefundedData",
    "ShippingCancelled",
    "ShippingCancelledData",
    "ShippingDispatched",
    "ShippingDispatchedData",
    "ShippingFailed",
    "ShippingFailedData",
    "ShippingScheduled",
    "ShippingScheduledData",
    "StockLine",
]
