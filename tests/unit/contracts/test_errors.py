"""Errors carry their behaviour, and refusals have stable names."""

import pytest

from contracts import (
    DESTINATION_UNSUPPORTED,
    PAYMENT_DECLINED,
    RETURN_REJECTED,
    STOCK_UNAVAILABLE,
    ContractError,
    SchemaViolation,
    UndecodableEvent,
    UndecodableReason,
    UnknownEventType,
)


@pytest.mark.parametrize(
    "error",
    [
        UnknownEventType("payment.teleported.v1"),
        SchemaViolation("payment.completed.v1", field="amount_minor", record="Money", detail="x"),
        UndecodableEvent(UndecodableReason.NOT_AVRO, "truncated"),
    ],
)
def test_contract_errors_are_not_retryable(error: ContractError) -> None:
    """The same bytes fail the same way again, so a consumer dead-letters them at once."""
    assert error.retryable is False


def test_an_undecodable_event_names_its_reason() -> None:
    """The reason is an attribute and part of the message."""
    error = UndecodableEvent(UndecodableReason.UNKNOWN_FINGERPRINT, "no schema 0123")

    assert error.reason is UndecodableReason.UNKNOWN_FINGERPRINT
    assert str(error) == "undecodable event (unknown-fingerprint): no schema 0123"


def test_business_refusals_have_the_names_activities_raise() -> None:
    """ApplicationError types the orchestrator matches on."""
    assert (PAYMENT_DECLINED, STOCK_UNAVAILABLE, DESTINATION_UNSUPPORTED, RETURN_REJECTED) == (
        "PaymentDeclined",
        "StockUnavailable",
        "DestinationUnsupported",
        "ReturnRejected",
    )
