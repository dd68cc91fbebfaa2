"""Events of the payment service."""

from pydantic import Field

from contracts.envelope import Event, EventData
from contracts.events.common import Money

__all__ = [
    "PaymentCompleted",
    "PaymentCompletedData",
    "PaymentFailed",
    "PaymentFailedData",
    "PaymentRefunded",
    "PaymentRefundedData",
    "PaymentRefundedV2",
    "PaymentRefundedV2Data",
]


class _PaymentData(EventData):
    """What every payment event carries: the order's payment and its amount."""

    payment_id: str = Field(min_length=1)
    amount: Money


class PaymentCompletedData(_PaymentData):
    """The order's amount was captured."""


class PaymentCompleted(Event[PaymentCompletedData]):
    EVENT_TYPE = "payment.completed.v1"


class PaymentFailedData(_PaymentData):
    """The payment attempt was refused; nothing was captured."""

    reason: str = Field(min_length=1)


class PaymentFailed(Event[PaymentFailedData]):
    EVENT_TYPE = "payment.failed.v1"


class PaymentRefundedData(_PaymentData):
    """A captured payment was given back: the compensation of ``payment.completed``."""


class PaymentRefunded(Event[PaymentRefundedData]):
    EVENT_TYPE = "payment.refunded.v1"


class PaymentRefundedV2Data(PaymentRefundedData):
    """``payment.refunded`` data of version 2: a refund of a return names the return.

    A payment can now be refunded more than once, in part: once per return, each refund
    with its own id. The refund of a cancelled order has neither.
    """

    return_id: str | None = None
    refund_id: str | None = None


class PaymentRefundedV2(Event[PaymentRefundedV2Data]):
    EVENT_TYPE = "payment.refunded.v2"
