"""The errors of the shared language, and the names of the business refusals.

Every error here says whether trying again can help (``retryable``): none of them can,
because the same bytes or the same event fail the same way every time, so a consumer
sends the record straight to the dead-letter topic instead of retrying it.
"""

from enum import StrEnum

__all__ = [
    "DESTINATION_UNSUPPORTED",
    "PAYMENT_DECLINED",
    "RETURN_REJECTED",
    "STOCK_UNAVAILABLE",
    "ContractError",
    "SchemaViolation",
    "UndecodableEvent",
    "UndecodableReason",
    "UnknownEventType",
]

# Business refusals, raised by activities as ApplicationError(type=...,
# non_retryable=True) and matched by the orchestrator on these names.
PAYMENT_DECLINED = "PaymentDeclined"
STOCK_UNAVAILABLE = "StockUnavailable"
DESTINATION_UNSUPPORTED = "DestinationUnsupported"
RETURN_REJECTED = "ReturnRejected"
"""The order service refused a return (raised after it wrote ``return.rejected``)."""


class ContractError(Exception):
    """An event, or its bytes, breaks the contract the services share."""

    retryable: bool = False


class UnknownEventType(ContractError):
    """The event type is not in the catalog."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class SchemaViolation(ContractError):
    """An event does not match its Avro schema, so it must not be published."""

    def __init__(self, event_type: str, field: str, record: str, detail: str) -> None:
        super().__init__(f"{event_type}: field {field!r} of record {record}: {detail}")
        self.event_type = event_type
        self.field = field
        self.record = record


class UndecodableReason(StrEnum):
    """Why a record's bytes could not be turned into an event."""

    EMPTY_VALUE = "empty-value"
    MISSING_HEADER = "missing-header"
    GARBLED_HEADER = "garbled-header"
    UNSUPPORTED_CONTENT_TYPE = "unsupported-content-type"
    NOT_FRAMED = "not-framed"
    UNKNOWN_SCHEMA_ID = "unknown-schema-id"
    UNKNOWN_EVENT_TYPE = "unknown-event-type"
    UNKNOWN_FINGERPRINT = "unknown-fingerprint"
    HEADER_MISMATCH = "header-mismatch"
    NOT_AVRO = "not-avro"
    INCOMPATIBLE_READER = "incompatible-reader"
    INVALID_EVENT = "invalid-event"


class UndecodableEvent(ContractError):
    """A consumed record cannot be decoded into an event."""

    def __init__(self, reason: UndecodableReason, detail: str) -> None:
        super().__init__(f"undecodable event ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
