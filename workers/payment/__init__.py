"""The payment service: charges and refunds on its own ledger."""

from workers.payment.activities import PROCESSOR_UNAVAILABLE, PaymentActivities
from workers.payment.ledger import Payment, PaymentLedger, PaymentStatus
from workers.payment.processor import CardProcessor, ChargeOutcome, ChargeResponse

__all__ = [
    "PROCESSOR_UNAVAILABLE",
    "CardProcessor",
    "ChargeOutcome",
    "ChargeResponse",
    "Payment",
    "PaymentActivities",
    "PaymentLedger",
    "PaymentStatus",
]
