"""The payment service's activities: charge an order, refund it; refund a return of it."""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.activities import (
    CHARGE_PAYMENT,
    REFUND_PAYMENT,
    REFUND_RETURN,
    ChargePaymentInput,
    ChargePaymentResult,
    RefundPaymentInput,
    RefundPaymentResult,
    RefundReturnInput,
    RefundReturnResult,
)
from contracts.errors import PAYMENT_DECLINED
from contracts.events.common import Money
from contracts.events.payment import (
    PaymentCompletedData,
    PaymentFailedData,
    PaymentRefundedData,
    PaymentRefundedV2Data,
)
from runtime import DomainEvents, Outbox, refusal
from workers.payment.ledger import Payment, PaymentLedger, PaymentStatus
from workers.payment.processor import CardProcessor, ChargeOutcome, ChargeResponse

__all__ = ["PROCESSOR_UNAVAILABLE", "REFUND_REFUSED", "SOURCE", "PaymentActivities"]

SOURCE = "payment-service"

PROCESSOR_UNAVAILABLE = "PaymentProcessorUnavailable"
"""Error type of a transient processor failure: Temporal retries the charge."""

REFUND_REFUSED = "RefundRefused"
"""Error type of a return's refund that the ledger cannot honour (nothing captured, another
currency, more than is left of the charge): non-retryable, since the return's authorization
should have prevented it and asking again cannot help."""


class PaymentActivities:
    """Charges and refunds, each once per order, and refunds of returns, each once per return,
    however often it is asked."""

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

    @activity.defn(name=REFUND_RETURN)
    async def refund_return(self, input: RefundReturnInput) -> RefundReturnResult:
        """Refund a return's amount against its order's charge, never more than was charged
        minus every refund before it (a non-retryable ``RefundRefused`` naming the amounts);
        emits ``payment.refunded.v2`` with the return and refund ids. A repeat returns the
        same refund without refunding or publishing again."""
        with self._ledger.transaction():
            refund = self._ledger.return_refund(input.return_id)
            if refund is None:
                payment = self._refundable(input)
                _answered(
                    self._processor.refund(payment.payment_token, input.amount, of_return=True)
                )
                refund = self._ledger.refund_return(payment, input.return_id, input.amount)
                self._events.emit(
                    PaymentRefundedV2Data(
                        order_id=refund.order_id,
                        payment_id=refund.payment_id,
                        amount=refund.amount,
                        return_id=refund.return_id,
                        refund_id=refund.refund_id,
                    )
                )
        return RefundReturnResult(refund_id=refund.refund_id, amount=refund.amount)

    def _refundable(self, input: RefundReturnInput) -> Payment:
        """Inside the caller's transaction: the payment the return's refund goes against, or
        a ``RefundRefused`` if it cannot give the amount back."""
        payment = self._ledger.payment(input.order_id)
        if payment is None or payment.status is PaymentStatus.DECLINED:
            raise refusal(
                REFUND_REFUSED,
                f"cannot refund return {input.return_id}: order {input.order_id} has no"
                " captured payment",
            )
        charged = payment.amount
        left = charged.amount_minor - self._ledger.refunded_minor(input.order_id)
        if input.amount.currency != charged.currency or input.amount.amount_minor > left:
            raise refusal(
                REFUND_REFUSED,
                f"cannot refund {_money(input.amount)} for return {input.return_id}: order"
                f" {input.order_id} was charged {_money(charged)}, of which"
                f" {_money(Money(amount_minor=left, currency=charged.currency))} is left to"
                " refund",
            )
        return payment

    def _record(self, input: ChargePaymentInput, response: ChargeResponse) -> Payment:
        """Record the processor's answer and its event, unless a concurrent try already did."""
        with self._ledger.transaction():
            earlier = self._ledger.payment(input.order_id)
            if earlier is not None:
                return earlier
            if response.outcome is ChargeOutcome.APPROVED:
                payment = self._ledger.capture(
                    input.order_id, input.customer_id, input.amount, input.payment_token
                )
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


def _money(money: Money) -> str:
    return f"{money.amount_minor} {money.currency} (minor units)"


def _answered(response: ChargeResponse) -> ChargeResponse:
    """The processor's answer, unless it was unavailable: then a retryable error, so Temporal
    asks again later."""
    if response.outcome is ChargeOutcome.UNAVAILABLE:
        raise ApplicationError(
            response.reason or "card processor unavailable", type=PROCESSOR_UNAVAILABLE
        )
    return response
