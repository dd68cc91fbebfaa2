"""Events of the payment service."""

from typing import ClassVar

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
]


class PaymentCompletedData(EventData):
    """The order's amount was captured."""

    payment_id: str = Field(min_length=1)
    amount: Money


class PaymentCompleted(Event[PaymentCompletedData]):
    """``payment.completed.v1``."""

    EVENT_TYPE: ClassVar[str] = "payment.completed.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class PaymentFailedData(EventData):
    """The payment attempt was refused; nothing was captured."""

    payment_id: str = Field(min_length=1)
    amount: Money
    reason: str = Field(min_length=1)


class PaymentFailed(Event[PaymentFailedData]):
    """``payment.failed.v1``."""

    EVENT_TYPE: ClassVar[str] = "payment.failed.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"


class PaymentRefundedData(EventData):
    """A captured payment was given back: the compensation of ``payment.completed``."""

    payment_id: str = Field(min_length=1)
    amount: Money


class PaymentRefunded(Event[PaymentRefundedData]):
    """``payment.refunded.v1``."""

    EVENT_TYPE: ClassVar[str] = "payment.refunded.v1"
    EVENT_VERSION: ClassVar[str] = "1.0.0"
