"""The payment service's query module reads what its ledger wrote, and cannot write."""

from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from contracts.events.common import Money
from runtime import DatabaseError, Outbox, Where, open_database
from workers.payment.ledger import PaymentLedger, PaymentStatus
from workers.payment.queries import LedgerEntryRow, PaymentQueries, database_path

_EUR_15 = Money(amount_minor=1500, currency="EUR")


def _ledger_with_three_orders(where: Where) -> dict[str, str]:
    """o-paid captured, o-refunded captured then refunded, o-declined declined; their ids."""
    with closing(open_database(where, migrations=[PaymentLedger.MIGRATIONS])) as db:
        Outbox(db)  # as the service process has it beside the ledger
        ledger = PaymentLedger(db)
        with ledger.transaction():
            paid = ledger.capture("o-paid", "c-1", _EUR_15)
        with ledger.transaction():
            refunded = ledger.capture("o-refunded", "c-2", _EUR_15)
        with ledger.transaction():
            ledger.refund(refunded)
        with ledger.transaction():
            declined = ledger.decline("o-declined", "c-3", _EUR_15, "card declined")
    return {p.order_id: p.payment_id for p in (paid, refunded, declined)}


def test_payments_and_ledger_entries_the_ledger_wrote_are_read_through_the_queries(
    database_at: Callable[[str], Where],
) -> None:
    ids = _ledger_with_three_orders(database_at("payment"))

    with PaymentQueries.open(database_at("payment")) as queries, queries.snapshot():
        payments = {row.order_id: row for row in queries.payments()}
        entries = queries.ledger_entries()
        pending = queries.pending_events()

    assert {order_id: (row.payment_id, row.status) for order_id, row in payments.items()} == {
        "o-paid": (ids["o-paid"], PaymentStatus.CAPTURED),
        "o-refunded": (ids["o-refunded"], PaymentStatus.REFUNDED),
        "o-declined": (ids["o-declined"], PaymentStatus.DECLINED),
    }
    assert all(row.created_at > 0 for row in payments.values())
    # Oldest first; a declined payment moved no money.
    assert [(e.order_id, e.kind, e.payment_id, e.amount_minor, e.currency) for e in entries] == [
        ("o-paid", "charge", ids["o-paid"], 1500, "EUR"),
        ("o-refunded", "charge", ids["o-refunded"], 1500, "EUR"),
        ("o-refunded", "refund", ids["o-refunded"], 1500, "EUR"),
    ]
    assert all(isinstance(e, LedgerEntryRow) and e.created_at > 0 for e in entries)
    assert pending == []  # the ledger alone writes no events


def test_the_payment_queries_cannot_write(database_at: Callable[[str], Where]) -> None:
    _ledger_with_three_orders(database_at("payment"))

    with PaymentQueries.open(database_at("payment")) as queries:
        with pytest.raises(DatabaseError, match=r"readonly|read-only"):
            queries._db.execute("UPDATE payments SET status = 'refunded'")
        with pytest.raises(DatabaseError, match=r"readonly|read-only"):
            queries._db.execute("INSERT INTO charge_attempts (order_id, attempts) VALUES ('x', 1)")
        assert {row.status for row in queries.payments()} == set(PaymentStatus)


def test_the_payment_database_lies_in_the_run_directory(tmp_path: Path) -> None:
    assert database_path(tmp_path) == tmp_path / "payment.db"
