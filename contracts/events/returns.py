"""Events of a return, emitted by the order service on its own topic (``order.events``).

Like every event, they are keyed and correlated by the order id, so a return's events
share the partition of its order's and are read after them; each also names its return.
(The module is ``returns`` because ``return`` is a Python keyword; the domain, the event
types and the schema folder are ``return``.)
"""

from enum import StrEnum

from pydantic import Field

from contracts.envelope import Event, EventData
from contracts.events.common import Money, PricedLine

__all__ = [
    "ReturnAuthorized",
    "ReturnAuthorizedData",
    "ReturnCompleted",
    "ReturnCompletedData",
    "ReturnExpired",
    "ReturnExpiredData",
    "ReturnRejected",
    "ReturnRejectedData",
    "ReturnRejectionCode",
]


class ReturnRejectionCode(StrEnum):
    """Why a return was refused, as ``return.rejected``'s ``reason_code`` says it.

    The schema keeps the code a string, so a new code needs no new schema version; a
    reader meeting a code it does not know should treat it as a refusal all the same.
    """

    NOT_DISPATCHED = "NOT_DISPATCHED"
    """The order was never dispatched (still running, or cancelled): nothing to send back."""
    WINDOW_CLOSED = "WINDOW_CLOSED"
    """The order was dispatched longer ago than the return window."""
    MORE_THAN_BOUGHT = "MORE_THAN_BOUGHT"
    """A line asks for more than was bought minus what earlier returns took or hold."""
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    """No such order."""
    UNKNOWN_ITEM = "UNKNOWN_ITEM"
    """A line names a SKU the order does not have."""


class _ReturnData(EventData):
    """What every return event carries: the order, and the return of it."""

    return_id: str = Field(min_length=1)


class ReturnAuthorizedData(_ReturnData):
    """A return was accepted; its quantities are held against the order until it ends."""

    items: list[PricedLine] = Field(min_length=1)
    """The returned lines, at the unit prices the order bought them for."""
    amount: Money
    """What will be refunded: the sum of the lines."""


class ReturnAuthorized(Event[ReturnAuthorizedData]):
    EVENT_TYPE = "return.authorized.v1"


class ReturnRejectedData(_ReturnData):
    """A return was refused: nothing is held, sent back or refunded."""

    reason: str = Field(min_length=1)
    reason_code: str = Field(min_length=1)
    """A ``ReturnRejectionCode``; kept a string so readers accept codes added later."""


class ReturnRejected(Event[ReturnRejectedData]):
    EVENT_TYPE = "return.rejected.v1"


class ReturnExpiredData(_ReturnData):
    """The parcel did not arrive in time: the return's held quantities are released."""

    reason: str = Field(min_length=1)


class ReturnExpired(Event[ReturnExpiredData]):
    EVENT_TYPE = "return.expired.v1"


class ReturnCompletedData(_ReturnData):
    """The items are back in stock and their amount refunded."""

    refund_id: str = Field(min_length=1)
    amount: Money
    """What was refunded."""


class ReturnCompleted(Event[ReturnCompletedData]):
    EVENT_TYPE = "return.completed.v1"
