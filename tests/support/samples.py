"""One valid event of every event type in the catalog, for the contract tests."""

from contracts import (
    AnyEvent,
    InventoryReleased,
    InventoryReleasedData,
    InventoryReserved,
    InventoryReservedData,
    InventoryUnavailable,
    InventoryUnavailableData,
    Money,
    OrderCancelled,
    OrderCancelledData,
    OrderCompleted,
    OrderCompletedData,
    OrderLine,
    OrderPlaced,
    OrderPlacedData,
    OrderPlacedV2,
    OrderPlacedV2Data,
    OrderRepaired,
    OrderRepairedData,
    PaymentCompleted,
    PaymentCompletedData,
    PaymentFailed,
    PaymentFailedData,
    PaymentRefunded,
    PaymentRefundedData,
    ShippingCancelled,
    ShippingCancelledData,
    ShippingDispatched,
    ShippingDispatchedData,
    ShippingFailed,
    ShippingFailedData,
    ShippingScheduled,
    ShippingScheduledData,
    StockLine,
)

ORDER_ID = "order-7f3a"
TOTAL = Money(amount_minor=4598, currency="EUR")
LINES = [
    OrderLine(sku="SKU-RED-MUG", quantity=2, unit_price_minor=1299),
    OrderLine(sku="SKU-TEAPOT", quantity=1, unit_price_minor=2000),
]
STOCK = [StockLine(sku="SKU-RED-MUG", quantity=2), StockLine(sku="SKU-TEAPOT", quantity=1)]


def order_placed_data() -> OrderPlacedData:
    """The data of the sample order."""
    return OrderPlacedData(
        order_id=ORDER_ID,
        customer_id="customer-42",
        items=LINES,
        total=TOTAL,
        shipping_country="DE",
    )


def sample_events() -> dict[str, AnyEvent]:
    """A valid event of every event type, by event type."""
    placed = order_placed_data()
    events: list[AnyEvent] = [
        OrderPlaced(data=placed, correlation_id=ORDER_ID, source="order-service"),
        OrderPlacedV2(
            data=OrderPlacedV2Data(**placed.model_dump(), channel="web"),
            correlation_id=ORDER_ID,
            source="order-service",
        ),
        OrderCompleted(
            data=OrderCompletedData(
                order_id=ORDER_ID, payment_id="pay-1", reservation_id="res-1", shipment_id="shp-1"
            ),
            correlation_id=ORDER_ID,
            source="orchestrator",
        ),
        OrderCancelled(
            data=OrderCancelledData(
                order_id=ORDER_ID, reason="payment declined", failed_step="charge_payment"
            ),
            correlation_id=ORDER_ID,
            source="orchestrator",
        ),
        OrderRepaired(
            data=OrderRepairedData(
                order_id=ORDER_ID,
                action="resolve_manually",
                step="refund_payment",
                operator="ops@example.com",
                reason="refunded by hand in the processor's console",
                detail="refund_payment: resolved manually",
            ),
            correlation_id=ORDER_ID,
            source="orchestrator-api",
        ),
        PaymentCompleted(
            data=PaymentCompletedData(order_id=ORDER_ID, payment_id="pay-1", amount=TOTAL),
            correlation_id=ORDER_ID,
            causation_id="cmd-charge-1",
            source="payment-service",
        ),
        PaymentFailed(
            data=PaymentFailedData(
                order_id=ORDER_ID, payment_id="pay-2", amount=TOTAL, reason="card declined"
            ),
            correlation_id=ORDER_ID,
            source="payment-service",
        ),
        PaymentRefunded(
            data=PaymentRefundedData(order_id=ORDER_ID, payment_id="pay-1", amount=TOTAL),
            correlation_id=ORDER_ID,
            source="payment-service",
        ),
        InventoryReserved(
            data=InventoryReservedData(order_id=ORDER_ID, reservation_id="res-1", items=STOCK),
            correlation_id=ORDER_ID,
            source="inventory-service",
        ),
        InventoryUnavailable(
            data=InventoryUnavailableData(
                order_id=ORDER_ID, items=STOCK[:1], reason="SKU-RED-MUG: 1 left"
            ),
            correlation_id=ORDER_ID,
            source="inventory-service",
        ),
        InventoryReleased(
            data=InventoryReleasedData(order_id=ORDER_ID, reservation_id="res-1", items=STOCK),
            correlation_id=ORDER_ID,
            source="inventory-service",
        ),
        ShippingScheduled(
            data=ShippingScheduledData(
                order_id=ORDER_ID, shipment_id="shp-1", country="DE", carrier="dhl"
            ),
            correlation_id=ORDER_ID,
            source="shipping-service",
        ),
        ShippingFailed(
            data=ShippingFailedData(order_id=ORDER_ID, country="AQ", reason="no carrier serves AQ"),
            correlation_id=ORDER_ID,
            source="shipping-service",
        ),
        ShippingCancelled(
            data=ShippingCancelledData(
                order_id=ORDER_ID, shipment_id="shp-1", country="DE", carrier="dhl"
            ),
            correlation_id=ORDER_ID,
            source="shipping-service",
        ),
        ShippingDispatched(
            data=ShippingDispatchedData(
                order_id=ORDER_ID,
                shipment_id="shp-1",
                country="DE",
                carrier="dhl",
                tracking_number="JJD000390007",
            ),
            correlation_id=ORDER_ID,
            source="shipping-service",
        ),
    ]
    return {event.event_type: event for event in events}


def payment_completed(
    order_id: str, payment_id: str = "pay-1", amount_minor: int = 100
) -> PaymentCompleted:
    """A payment.completed of ``order_id``: ``payment_id`` charged ``amount_minor`` cents."""
    return PaymentCompleted(
        source="payment-service",
        correlation_id=order_id,
        data=PaymentCompletedData(
            order_id=order_id,
            payment_id=payment_id,
            amount=Money(amount_minor=amount_minor, currency="EUR"),
        ),
    )
