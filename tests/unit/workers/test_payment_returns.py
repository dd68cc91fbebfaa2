"""Refunds of returns on a real ledger (SQLite, PostgreSQL): once per return, never more than
was charged minus what was refunded before, and a card whose return refunds stay down."""

import pytest
from temporalio.testing import ActivityEnvironment

from contracts.activities import ChargePaymentInput, RefundPaymentInput, RefundReturnInput
from contracts.events.common import Money
from runtime import Database, Outbox
from tests.support.activities import refused_each_time
from tests.unit.workers.conftest import EventsOf
from workers.payment.activities import PROCESSOR_UNAVAILABLE, REFUND_REFUSED, PaymentActivities
from workers.payment.ledger import PaymentLedger, PaymentStatus
from workers.payment.processor import REFUND_OUTAGE_TOKEN, CardProcessor
from workers.payment.queries import PaymentQueries

CHARGED = Money(amount_minor=4250, currency="EUR")


@pytest.fixture
def ledger(db: Database) -> PaymentLedger:
    return PaymentLedger(db)


@pytest.fixture
def payments(ledger: PaymentLedger, outbox: Outbox) -> PaymentActivities:
    return PaymentActivities(ledger, outbox, CardProcessor())


async def _charged(payments: PaymentActivities, order_id: str, token: str = "tok_visa") -> str:
    charged = await ActivityEnvironment().run(
        payments.charge,
        ChargePaymentInput(
            order_id=order_id, customer_id="c-1", amount=CHARGED, payment_token=token
        ),
    )
    return charged.payment_id


def _refund(order_id: str, return_id: str, minor: int, currency: str = "EUR") -> RefundReturnInput:
    return RefundReturnInput(
        order_id=order_id,
        return_id=return_id,
        amount=Money(amount_minor=minor, currency=currency),
    )


def _refunds(events_of: EventsOf, order_id: str) -> list[tuple[str | None, int]]:
    return [
        (getattr(event.data, "return_id", None), event.data.amount.amount_minor)
        for event in events_of(order_id)
        if event.event_type.startswith("payment.refunded")
    ]


async def test_refunding_a_return_twice_refunds_once(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    payment_id = await _charged(payments, "o1")
    env = ActivityEnvironment()

    first = await env.run(payments.refund_return, _refund("o1", "r1", 1000))
    second = await env.run(payments.refund_return, _refund("o1", "r1", 1000))

    assert second == first
    assert first.amount == Money(amount_minor=1000, currency="EUR")
    assert ledger.entries("o1") == [("charge", 4250), ("return_refund", 1000)]
    payment = ledger.payment("o1")
    assert payment is not None and payment.status is PaymentStatus.CAPTURED
    [refunded] = [e for e in events_of("o1") if e.event_type == "payment.refunded.v2"]
    assert refunded.data.payment_id == payment_id
    assert (refunded.data.return_id, refunded.data.refund_id) == ("r1", first.refund_id)
    assert refunded.data.amount == first.amount


async def test_returns_never_refund_more_than_was_charged(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    await _charged(payments, "o2")
    env = ActivityEnvironment()
    await env.run(payments.refund_return, _refund("o2", "r1", 3000))

    refused = await refused_each_time(
        payments.refund_return, _refund("o2", "r2", 1251), REFUND_REFUSED
    )
    assert "charged 4250 EUR" in refused and "1250 EUR (minor units) is left" in refused
    await refused_each_time(payments.refund_return, _refund("o2", "r3", 100, "USD"), REFUND_REFUSED)
    last = await env.run(payments.refund_return, _refund("o2", "r4", 1250))

    assert last.amount.amount_minor == 1250
    assert _refunds(events_of, "o2") == [("r1", 3000), ("r4", 1250)]
    assert sum(minor for kind, minor in ledger.entries("o2") if kind != "charge") == 4250


async def test_nothing_captured_or_already_refunded_is_refused(
    payments: PaymentActivities, events_of: EventsOf
) -> None:
    await refused_each_time(payments.refund_return, _refund("nobody", "r1", 1), REFUND_REFUSED)
    await _charged(payments, "o3")
    await ActivityEnvironment().run(
        payments.refund, RefundPaymentInput(order_id="o3", reason="cancelled")
    )
    await refused_each_time(payments.refund_return, _refund("o3", "r1", 1), REFUND_REFUSED)
    assert _refunds(events_of, "o3") == [(None, 4250)]


async def test_a_refund_outage_card_refunds_no_return_until_it_is_settled(
    payments: PaymentActivities, ledger: PaymentLedger, events_of: EventsOf
) -> None:
    await _charged(payments, "o4", REFUND_OUTAGE_TOKEN)

    await refused_each_time(
        payments.refund_return,
        _refund("o4", "r1", 1000),
        PROCESSOR_UNAVAILABLE,
        retryable=True,
        times=3,
    )

    assert ledger.entries("o4") == [("charge", 4250)]
    assert _refunds(events_of, "o4") == []
    # The order's own refund on that card still goes through.
    refunded = await ActivityEnvironment().run(
        payments.refund,
        RefundPaymentInput(order_id="o4", reason="x", payment_token=REFUND_OUTAGE_TOKEN),
    )
    assert refunded.refunded


async def test_the_query_module_reads_return_refunds(
    payments: PaymentActivities, db: Database
) -> None:
    await _charged(payments, "o5")
    refund = await ActivityEnvironment().run(payments.refund_return, _refund("o5", "r1", 250))
    assert db.where is not None

    with PaymentQueries.open(db.where) as queries:
        entries = [entry for entry in queries.ledger_entries() if entry.order_id == "o5"]

    assert [(e.kind, e.amount_minor, e.return_id, e.refund_id) for e in entries] == [
        ("charge", 4250, None, None),
        ("return_refund", 250, "r1", refund.refund_id),
    ]
