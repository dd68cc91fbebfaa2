"""The payment service's activities: charge an order, refund it."""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.activities import (
    CHARGE_PAYMENT,
    REFUND_PAYMENT,
    ChargePaymentInput,
    ChargePaymentResult,
    RefundPaymentInput,
    RefundPaymentResult,
)
from contracts.errors import PAYMENT_DECLINED
from contracts.events.payment import PaymentCompletedData, PaymentFailedData, PaymentRefundedData
from runtime import DomainEvents, Outbox, refusal
from workers.payment.ledger import Payment, PaymentLedger, PaymentStatus
from workers.payment.processor import CardProcessor, ChargeOutcome, ChargeResponse

__all__ = ["PROCESSOR_UNAVAILABLE", "SOURCE", "PaymentActivities"]

SOURCE = "payment-service"

PROCESSOR_UNAVAILABLE = "PaymentProcessorUnavailable"
"""Error type of a transient processor failure: Temporal retries the charge."""


class PaymentActivities:
    """Charges and refunds, each once per order however often it is asked."""

    def __init__(self, ledger: PaymentLedger, outbox: Outbox, processor: CardProcessor) -> None:
        self._ledger = ledger
        self._events = DomainEvents(outbox, SOURCE)
        self._processor = processor

    @activity.defn(name=CHARGE_PAYMENT)
    async def charge(self, input: ChargePaymentInput) -> ChargePaymentResult:
        """Capture the order's amount; a declined card is a non-retryable ``PaymentDeclined``.

        A repeat returns the first answer (the same payment id, or the same refusal) without
        charging or publishing again.
        """
        payment = self._ledger.payment(input.order_id)
        if payment is None:
            # Counted and committed before the processor is asked, so a crash right after
            # the call still counts it.
            with self._ledger.transaction():
                attempt = self._ledger.count_attempt(input.order_id)
            response = self._processor.charge(input.payment_token, input.amount, attempt=attempt)
            payment = self._record(input, _answered(response))
        if payment.status is PaymentStatus.DECLINED:
            raise refusal(
                PAYMENT_DECLINED,
                f"payment for order {payment.order_id} declined: {payment.decline_reason}",
            )
        return ChargePaymentResult(payment_id=payment.payment_id)

    @activity.defn(name=REFUND_PAYMENT)
    async def refund(self, input: RefundPaymentInput) -> RefundPaymentResult:
        """Give a captured payment back; ``refunded`` is False if nothing was captured."""
        with self._ledger.transaction():
            payment = self._ledger.payment(input.order_id)
            if payment is None or payment.status is PaymentStatus.DECLINED:
                return RefundPaymentResult(refunded=False, payment_id=None)
            if payment.status is PaymentStatus.CAPTURED:
                _answered(self._processor.refund(input.payment_token, payment.amount))
                self._ledger.refund(payment)
                self._events.emit(PaymentRefundedData.model_validate(payment, from_attributes=True))
        return RefundPaymentResult(refunded=True, payment_id=payment.payment_id)

    def _record(self, input: ChargePaymentInput, response: ChargeResponse) -> Payment:
        """Record the processor's answer and its event, unless a concurrent try already did."""
        with self._ledger.transaction():
            earlier = self._ledger.payment(input.order_id)
            if earlier is not None:
                return earlier
            if response.outcome is ChargeOutcome.APPROVED:
                payment = self._ledger.capture(input.order_id, input.customer_id, input.amount)
                self._events.emit(
                    PaymentCompletedData.model_validate(payment, from_attributes=True)
                )
                return payment
            reason = response.reason or "declined"
            payment = self._ledger.decline(input.order_id, input.customer_id, input.amount, reason)
            self._events.emit(
                PaymentFailedData(
                    order_id=payment.order_id,
                    payment_id=payment.payment_id,
                    amount=payment.amount,
                    reason=reason,
                )
            )
            return payment


def _answered(response: ChargeResponse) -> ChargeResponse:
    """The processor's answer, unless it was unavailable: then a retryable error, so Temporal
    asks again later."""
    if response.outcome is ChargeOutcome.UNAVAILABLE:
        raise ApplicationError(
            response.reason or "card processor unavailable", type=PROCESSOR_UNAVAILABLE
        )
    return response
