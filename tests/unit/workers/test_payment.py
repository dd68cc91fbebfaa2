"""The payment activities against a real SQLite ledger: once per order, events in the outbox."""

import dataclasses

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contracts.activities import ChargePaymentInput, RefundPaymentInput
from contracts.errors import PAYMENT_DECLINED
from contracts.events.common import Money
from runtime import Database, Outbox
from tests.support.activities import refused_each_time
from tests.unit.workers.conftest import EventsOf
from workers.payment.activities import PROCESSOR_UNAVAILABLE, PaymentActivities
from workers.payment.ledger import PaymentLedger
from workers.payment.processor import CardProcessor

AMOUNT = Money(amount_minor=4250, currency="EUR")


@pytest.fixture
def ledger(db: Database) -> PaymentLedger:
    return PaymentLedger(db)


@pytest.fixture
def payments(ledger: PaymentLedger, outbox: Outbox) -> PaymentActivities:
    return PaymentActivities(ledger, outbox, CardProcessor(flaky_failures=2))


def _charge(order_id: str, token: str = "tok_visa") -> ChargePaymentInput:
    return ChargePaymentInput(
        order_id=order_id, customer_id="cust-1", amount=AMOUNT, payment_token=token
    )


def _refund(order_id: str) -> RefundPaymentInput:
    return RefundPaymentInput(order_id=order_id, reason="shipping failed")


async def test_charging_twice_charges_once(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="order-saga-o1", activity_id="1")

    first = await env.run(payments.charge, _charge("o1"))
    second = await env.run(payments.charge, _charge("o1"))

    assert second.payment_id == first.payment_id
    assert ledger.entries("o1") == [("charge", 4250)]
    [event] = events_of("o1")
    assert event.event_type == "payment.completed.v1"
    assert event.source == "payment-service"
    assert event.correlation_id == "o1"
    assert event.causation_id == "order-saga-o1/1"
    assert event.data.payment_id == first.payment_id
    assert event.data.amount == AMOUNT


async def test_a_declined_card_is_a_non_retryable_refusal_published_once(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    await refused_each_time(payments.charge, _charge("o2", "tok_chargeDeclined"), PAYMENT_DECLINED)

    assert ledger.entries("o2") == []
    [event] = events_of("o2")
    assert event.event_type == "payment.failed.v1"
    assert event.data.reason == "card declined"


async def test_an_unknown_token_is_declined(
    payments: PaymentActivities, events_of: EventsOf
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(payments.charge, _charge("o3", "tok_nonsense"))
    assert refused.value.type == PAYMENT_DECLINED
    assert [e.event_type for e in events_of("o3")] == ["payment.failed.v1"]


async def test_a_flaky_card_fails_twice_retryably_then_is_charged_once(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as failed:
            await env.run(payments.charge, _charge("o4", "tok_flaky"))
        assert failed.value.type == PROCESSOR_UNAVAILABLE
        assert not failed.value.non_retryable
        assert ledger.attempts("o4") == attempt
        assert events_of("o4") == []

    result = await env.run(payments.charge, _charge("o4", "tok_flaky"))
    again = await env.run(payments.charge, _charge("o4", "tok_flaky"))

    assert again.payment_id == result.payment_id
    assert ledger.attempts("o4") == 3
    assert ledger.entries("o4") == [("charge", 4250)]
    assert [e.event_type for e in events_of("o4")] == ["payment.completed.v1"]


async def test_flaky_attempts_are_counted_in_the_database(db: Database, outbox: Outbox) -> None:
    env = ActivityEnvironment()
    before_restart = PaymentActivities(PaymentLedger(db), outbox, CardProcessor(flaky_failures=2))
    with pytest.raises(ApplicationError):
        await env.run(before_restart.charge, _charge("o5", "tok_flaky"))

    after_restart = PaymentActivities(PaymentLedger(db), outbox, CardProcessor(flaky_failures=2))
    with pytest.raises(ApplicationError):
        await env.run(after_restart.charge, _charge("o5", "tok_flaky"))
    assert await env.run(after_restart.charge, _charge("o5", "tok_flaky"))


async def test_refund_after_charge_refunds_once(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    charged = await env.run(payments.charge, _charge("o6"))

    first = await env.run(payments.refund, _refund("o6"))
    second = await env.run(payments.refund, _refund("o6"))

    assert first.refunded
    assert first.payment_id == charged.payment_id
    assert second == first
    assert ledger.entries("o6") == [("charge", 4250), ("refund", 4250)]
    events = events_of("o6")
    assert [e.event_type for e in events] == ["payment.completed.v1", "payment.refunded.v1"]
    assert events[1].data.payment_id == charged.payment_id
    assert events[1].data.amount == AMOUNT


async def test_a_charge_after_the_refund_returns_the_first_answer(
    payments: PaymentActivities, ledger: PaymentLedger
) -> None:
    env = ActivityEnvironment()
    charged = await env.run(payments.charge, _charge("o7"))
    await env.run(payments.refund, _refund("o7"))

    assert (await env.run(payments.charge, _charge("o7"))).payment_id == charged.payment_id
    assert ledger.entries("o7") == [("charge", 4250), ("refund", 4250)]


async def test_refund_without_a_charge_is_a_no_op(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    for _ in range(2):
        result = await env.run(payments.refund, _refund("o8"))
        assert not result.refunded
        assert result.payment_id is None
    assert ledger.entries("o8") == []
    assert events_of("o8") == []


async def test_refund_of_a_declined_payment_is_a_no_op(
    payments: PaymentActivities, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError):
        await env.run(payments.charge, _charge("o9", "tok_chargeDeclined"))

    assert not (await env.run(payments.refund, _refund("o9"))).refunded
    assert [e.event_type for e in events_of("o9")] == ["payment.failed.v1"]


async def test_a_refund_the_processor_refuses_is_transient_and_moves_no_money(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    await env.run(payments.charge, _charge("o9", "tok_refundFail"))
    refund = RefundPaymentInput(order_id="o9", reason="no stock", payment_token="tok_refundFail")
    await refused_each_time(payments.refund, refund, PROCESSOR_UNAVAILABLE, retryable=True)

    assert ledger.entries("o9") == [("charge", 4250)]
    assert [e.event_type for e in events_of("o9")] == ["payment.completed.v1"]
