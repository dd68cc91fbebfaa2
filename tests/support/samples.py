"""One valid event of every event type in the catalog, for the contract tests."""

from collections.abc import Callable

from contracts import (
    AnyEvent,
    InventoryReleased,
    InventoryReleasedData,
    InventoryReserved,
    InventoryReservedData,
    InventoryRestocked,
    InventoryRestockedData,
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
    PaymentRefundedV2,
    PaymentRefundedV2Data,
    PricedLine,
    ReturnAuthorized,
    ReturnAuthorizedData,
    ReturnCompleted,
    ReturnCompletedData,
    ReturnExpired,
    ReturnExpiredData,
    ReturnRejected,
    ReturnRejectedData,
    ReturnRejectionCode,
    SagaIncidentOpened,
    SagaIncidentOpenedData,
    SagaIncidentResolved,
    SagaIncidentResolvedData,
    ShippingCancelled,
    ShippingCancelledData,
    ShippingDispatched,
    ShippingDispatchedData,
    ShippingFailed,
    ShippingFailedData,
    ShippingReturnLabelIssued,
    ShippingReturnLabelIssuedData,
    ShippingReturnLabelVoided,
    ShippingReturnLabelVoidedData,
    ShippingReturnReceived,
    ShippingReturnReceivedData,
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
RETURN_ID = "ret-91c2"
RETURNED = [StockLine(sku="SKU-RED-MUG", quantity=1)]
"""One of the two mugs comes back."""
RETURNED_AMOUNT = Money(amount_minor=1299, currency="EUR")


def order_placed_data() -> OrderPlacedData:
    """The data of the sample order."""
    return OrderPlacedData(
        order_id=ORDER_ID,
        customer_id="customer-42",
        items=LINES,
        total=TOTAL,
        shipping_country="DE",
    )


def _sample(kind: Callable[..., AnyEvent], data: object, source: str, **envelope: str) -> AnyEvent:
    return kind(data=data, correlation_id=ORDER_ID, source=source, **envelope)


def sample_events() -> dict[str, AnyEvent]:
    """A valid event of every event type, by event type."""
    placed = order_placed_data()
    shipment = {"order_id": ORDER_ID, "shipment_id": "shp-1", "country": "DE", "carrier": "dhl"}
    events: list[AnyEvent] = [
        _sample(OrderPlaced, placed, "order-service"),
        _sample(
            OrderPlacedV2, OrderPlacedV2Data(**placed.model_dump(), channel="web"), "order-service"
        ),
        _sample(
            OrderCompleted,
            OrderCompletedData(
                order_id=ORDER_ID, payment_id="pay-1", reservation_id="res-1", shipment_id="shp-1"
            ),
            "orchestrator",
        ),
        _sample(
            OrderCancelled,
            OrderCancelledData(
                order_id=ORDER_ID, reason="payment declined", failed_step="charge_payment"
            ),
            "orchestrator",
        ),
        order_repaired(ORDER_ID),
        _sample(
            PaymentCompleted,
            PaymentCompletedData(order_id=ORDER_ID, payment_id="pay-1", amount=TOTAL),
            "payment-service",
            causation_id="cmd-charge-1",
        ),
        _sample(
            PaymentFailed,
            PaymentFailedData(
                order_id=ORDER_ID, payment_id="pay-2", amount=TOTAL, reason="card declined"
            ),
            "payment-service",
        ),
        _sample(
            PaymentRefunded,
            PaymentRefundedData(order_id=ORDER_ID, payment_id="pay-1", amount=TOTAL),
            "payment-service",
        ),
        _sample(
            InventoryReserved,
            InventoryReservedData(order_id=ORDER_ID, reservation_id="res-1", items=STOCK),
            "inventory-service",
        ),
        _sample(
            InventoryUnavailable,
            InventoryUnavailableData(
                order_id=ORDER_ID, items=STOCK[:1], reason="SKU-RED-MUG: 1 left"
            ),
            "inventory-service",
        ),
        _sample(
            InventoryReleased,
            InventoryReleasedData(order_id=ORDER_ID, reservation_id="res-1", items=STOCK),
            "inventory-service",
        ),
        _sample(ShippingScheduled, ShippingScheduledData(**shipment), "shipping-service"),
        _sample(
            ShippingFailed,
            ShippingFailedData(order_id=ORDER_ID, country="AQ", reason="no carrier serves AQ"),
            "shipping-service",
        ),
        _sample(ShippingCancelled, ShippingCancelledData(**shipment), "shipping-service"),
        _sample(
            ShippingDispatched,
            ShippingDispatchedData(**shipment, tracking_number="JJD000390007"),
            "shipping-service",
        ),
    ]
    return {event.event_type: event for event in events + return_events() + incident_events()}


def return_events() -> list[AnyEvent]:
    """A valid event of every event type of a return (one mug of the sample order back)."""
    ret = {"order_id": ORDER_ID, "return_id": RETURN_ID}
    label = {**ret, "label_id": "lbl-1"}
    priced = [PricedLine(sku="SKU-RED-MUG", quantity=1, unit_price=RETURNED_AMOUNT)]
    return [
        _sample(
            ReturnAuthorized,
            ReturnAuthorizedData(**ret, items=priced, amount=RETURNED_AMOUNT),
            "order-service",
        ),
        _sample(
            ReturnRejected,
            ReturnRejectedData(
                **ret,
                reason="SKU-RED-MUG: 3 asked, 2 bought",
                reason_code=ReturnRejectionCode.MORE_THAN_BOUGHT,
            ),
            "order-service",
        ),
        _sample(
            ReturnExpired,
            ReturnExpiredData(**ret, reason="the parcel did not arrive within 14 days"),
            "order-service",
        ),
        _sample(
            ReturnCompleted,
            ReturnCompletedData(**ret, refund_id="rfd-1", amount=RETURNED_AMOUNT),
            "order-service",
        ),
        _sample(
            ShippingReturnLabelIssued,
            ShippingReturnLabelIssuedData(**label, tracking_number="JJD000390099"),
            "shipping-service",
        ),
        _sample(
            ShippingReturnLabelVoided,
            ShippingReturnLabelVoidedData(**label, reason="the return expired"),
            "shipping-service",
        ),
        _sample(ShippingReturnReceived, ShippingReturnReceivedData(**label), "shipping-service"),
        _sample(
            InventoryRestocked,
            InventoryRestockedData(**ret, items=RETURNED),
            "inventory-service",
        ),
        _sample(
            PaymentRefundedV2,
            PaymentRefundedV2Data(
                **ret, payment_id="pay-1", amount=RETURNED_AMOUNT, refund_id="rfd-1"
            ),
            "payment-service",
        ),
    ]


INCIDENT_ID = f"order-{ORDER_ID}/refund_payment/1"


def incident_events() -> list[AnyEvent]:
    """The incident of a refund that keeps failing, opened and resolved by hand."""
    incident = {
        "order_id": ORDER_ID,
        "incident_id": INCIDENT_ID,
        "saga_type": "OrderSaga",
        "workflow_id": f"order-{ORDER_ID}",
        "step": "refund_payment",
    }
    return [
        _sample(
            SagaIncidentOpened,
            SagaIncidentOpenedData(
                **incident,
                compensating=True,
                kind="compensation-failing",
                attempts=5,
                last_error="RefundFailed: the card issuer refused the refund",
                opened_at="2026-12-06T02:14:31.000000+00:00",
            ),
            "orchestrator",
        ),
        _sample(
            SagaIncidentResolved,
            SagaIncidentResolvedData(
                **incident,
                resolution="resolved-manually by ops: refunded by bank transfer",
                resolved_at="2026-12-06T02:31:02.000000+00:00",
            ),
            "orchestrator",
        ),
    ]


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


def order_repaired(order_id: str) -> OrderRepaired:
    """An order.repaired of ``order_id``: an operator settled its refund by hand."""
    return OrderRepaired(
        source="orchestrator-api",
        correlation_id=order_id,
        data=OrderRepairedData(
            order_id=order_id,
            action="resolve_manually",
            step="refund_payment",
            operator="ops@example.com",
            reason="refunded by hand in the processor's console",
            detail="refund_payment: resolved manually",
        ),
    )
