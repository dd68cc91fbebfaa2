"""The return saga's events: keyed by their order, on the order's topic, naming their return;
and payment.refunded v2, which names the return it refunds, reads and is read by v1."""

import pytest
from pydantic import ValidationError

from contracts import (
    DOMAIN_TOPICS,
    EVENT_TYPES,
    PaymentRefunded,
    PaymentRefundedData,
    PaymentRefundedV2,
    PaymentRefundedV2Data,
    ReturnAuthorized,
    ReturnRejectionCode,
    all_topics,
    decode_event,
    encode_event,
    schema_for,
    topic_for_domain,
    topic_for_event_type,
)
from tests.support.samples import ORDER_ID, RETURN_ID, return_events, sample_events

SAMPLES = sample_events()
RETURN_EVENT_TYPES = [event.event_type for event in return_events()]
_WITH_A_RETURN = [t for t in RETURN_EVENT_TYPES if t != "payment.refunded.v2"]


def test_the_return_domain_travels_on_the_order_topic() -> None:
    """``return.*`` goes to ``order.events``: no topic of its own is created."""
    assert topic_for_domain("return") == "order.events"
    assert topic_for_event_type("return.authorized.v1") == "order.events"
    assert DOMAIN_TOPICS["order"] == "order.events"
    assert not [spec.name for spec in all_topics() if spec.name.startswith("return")]


def test_an_unknown_domain_has_no_topic() -> None:
    """A domain outside the catalog is refused rather than given an invented topic."""
    with pytest.raises(ValueError, match="refund"):
        topic_for_domain("refund")
    with pytest.raises(ValueError, match=r"refund\.issued\.v1"):
        topic_for_event_type("refund.issued.v1")


@pytest.mark.parametrize("event_type", RETURN_EVENT_TYPES)
def test_a_return_event_is_keyed_by_its_order(event_type: str) -> None:
    """Each of the return's events shares its order's key and hence its partition."""
    encoded = encode_event(SAMPLES[event_type])

    assert encoded.key == ORDER_ID.encode()
    assert encoded.topic == DOMAIN_TOPICS[event_type.partition(".")[0]]


def test_every_return_event_type_is_in_the_catalog() -> None:
    """The samples cover every event the return saga writes."""
    assert set(RETURN_EVENT_TYPES) <= set(EVENT_TYPES)
    assert len(RETURN_EVENT_TYPES) == 9


@pytest.mark.parametrize("event_type", _WITH_A_RETURN)
def test_a_return_events_data_names_its_order_then_its_return(event_type: str) -> None:
    """``order_id`` then ``return_id``, both required strings, open every return event's data."""
    data = next(f for f in schema_for(event_type).definition["fields"] if f["name"] == "data")
    order_id, return_id = data["type"]["fields"][:2]

    assert order_id == {"name": "order_id", "type": "string"}
    assert (return_id["name"], return_id["type"]) == ("return_id", "string")
    assert SAMPLES[event_type].data.return_id == RETURN_ID


def test_a_return_event_is_correlated_by_the_order_not_the_return() -> None:
    """The correlation id is the order id, even though the event is about a return."""
    authorized = SAMPLES["return.authorized.v1"]

    with pytest.raises(ValidationError, match="is not the order id"):
        ReturnAuthorized(data=authorized.data, correlation_id=RETURN_ID, source="order-service")


def test_the_rejection_codes_are_the_contracts() -> None:
    """The reason codes a ``return.rejected`` may carry, spelled as consumers match them."""
    assert [code.value for code in ReturnRejectionCode] == [
        "NOT_DISPATCHED",
        "WINDOW_CLOSED",
        "MORE_THAN_BOUGHT",
        "UNKNOWN_ORDER",
        "UNKNOWN_ITEM",
    ]


def _refunded_v1() -> PaymentRefunded:
    return PaymentRefunded(
        data=PaymentRefundedData(
            order_id=ORDER_ID,
            payment_id="pay-1",
            amount=SAMPLES["payment.refunded.v2"].data.amount,
        ),
        correlation_id=ORDER_ID,
        source="payment-service",
    )


def test_a_v2_reader_reads_a_v1_refund_as_one_of_no_return() -> None:
    """Backward: a refund written before returns existed has no return and no refund id."""
    encoded = encode_event(_refunded_v1())

    decoded = decode_event(encoded.value, encoded.headers, "payment.refunded.v2")

    assert isinstance(decoded, PaymentRefundedV2)
    assert decoded.data.return_id is None
    assert decoded.data.refund_id is None
    assert decoded.data.payment_id == "pay-1"


def test_a_v1_reader_reads_a_v2_refund_without_its_return() -> None:
    """Forward: a consumer still on v1 reads a return's refund and drops what it lacks."""
    refund = SAMPLES["payment.refunded.v2"]
    encoded = encode_event(refund)

    decoded = decode_event(encoded.value, encoded.headers, "payment.refunded.v1")

    assert isinstance(decoded, PaymentRefunded)
    assert decoded.data == PaymentRefundedData(
        order_id=ORDER_ID, payment_id=refund.data.payment_id, amount=refund.data.amount
    )
    assert decoded.event_id == refund.event_id


def test_a_v2_refund_of_a_cancelled_order_names_no_return() -> None:
    """The order saga's refund can be written as v2 too: both ids default to none."""
    data = PaymentRefundedV2Data(
        order_id=ORDER_ID, payment_id="pay-1", amount=SAMPLES["payment.refunded.v2"].data.amount
    )

    assert (data.return_id, data.refund_id) == (None, None)
