"""The audit's return rules on the services' real stores (SQLite and PostgreSQL): returns
written by the services' own books read clean through their query modules; a violating row
written into a store by hand is found, with its order and kind. The rules on snapshots made by
hand: ``tests/unit/ops/test_audit.py``."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.activities import (
    AuthorizeReturnInput,
    CompleteOrderInput,
    CompleteReturnInput,
    ExpireReturnInput,
    Order,
    PlaceOrderInput,
    ReturnRequest,
)
from contracts.events.common import Money, OrderLine, StockLine
from infra.config.settings import Settings
from ops.audit import AuditReport, ViolationKind, find_violations
from ops.audit.collectors import read_books
from orchestrator.orders import OrderBook
from orchestrator.returns import ReturnBook, ReturnRefused
from runtime import Database, Outbox, Where, open_database
from workers.inventory.stock import StockBook
from workers.payment.ledger import PaymentLedger
from workers.shipping.shipments import ShipmentBook

K = ViolationKind
SERVICES = {
    "orchestrator": OrderBook.MIGRATIONS,
    "payment": PaymentLedger.MIGRATIONS,
    "inventory": StockBook.MIGRATIONS,
    "shipping": ShipmentBook.MIGRATIONS,
}
WINDOW = 30 * 24 * 3600


@dataclass
class _Stores:
    """The four services' databases, open for writing as their books write them."""

    orders: OrderBook
    returns: ReturnBook
    ledger: PaymentLedger
    stock: StockBook
    shipments: ShipmentBook
    dbs: dict[str, Database]


@pytest.fixture
def stores(database_at: Callable[[str], Where]) -> Iterator[_Stores]:
    dbs = {name: open_database(database_at(name), migrations=[m]) for name, m in SERVICES.items()}
    outbox = Outbox(dbs["orchestrator"])
    yield _Stores(
        orders=OrderBook(dbs["orchestrator"], outbox),
        returns=ReturnBook(dbs["orchestrator"], outbox),
        ledger=PaymentLedger(dbs["payment"]),
        stock=StockBook(dbs["inventory"]),
        shipments=ShipmentBook(dbs["shipping"]),
        dbs=dbs,
    )
    for db in dbs.values():
        db.close()


@pytest.fixture
def settings(database_at: Callable[[str], Where], tmp_path: Path) -> Settings:
    """The stack's settings the audit reads the stores by: SQLite files in the run directory
    (where ``database_at`` keeps them), or each service's PostgreSQL URL."""
    urls = {
        f"{name}_database_url": where
        for name in SERVICES
        if isinstance(where := database_at(name), str)
    }
    return Settings(run_dir=tmp_path, **urls)  # type: ignore[arg-type]


def _return(order_id: str, return_id: str, units: int) -> AuthorizeReturnInput:
    return AuthorizeReturnInput(
        request=ReturnRequest(
            return_id=return_id,
            order_id=order_id,
            items=[StockLine(sku="SKU-1", quantity=units)],
            reason="too small",
        ),
        requested_at=datetime.now(UTC),
        window_seconds=WINDOW,
    )


def _returned_order(stores: _Stores, order_id: str) -> None:
    """A dispatched order of 3 x SKU-1 at 1000 (3000 EUR minor units charged) and its returns,
    each step recorded by the service that owns it, as the return saga calls them:
    ``<order>-done`` (1 unit) completed, ``<order>-late`` (1 unit) expired while its parcel
    never came, ``<order>-no`` (5 units) rejected."""
    order = Order.model_validate(
        {
            "order_id": order_id,
            "customer_id": "c-1",
            "items": [OrderLine(sku="SKU-1", quantity=3, unit_price_minor=1000)],
            "currency": "EUR",
            "payment_token": "tok_visa",
            "shipping_address": {"country": "DE"},
        }
    )
    with stores.ledger.transaction():
        payment = stores.ledger.capture(
            order_id, "c-1", Money(amount_minor=3000, currency="EUR"), "tok_visa"
        )
    stores.stock.seed({"SKU-1": 100})
    with stores.stock.transaction():
        reservation = stores.stock.reserve(order_id, [StockLine(sku="SKU-1", quantity=3)])
    with stores.shipments.transaction():
        shipment = stores.shipments.schedule(order_id, "DE", [], f"evt-{order_id}")
    stores.orders.place(PlaceOrderInput(order=order), cause=None)
    stores.orders.complete(
        CompleteOrderInput(
            order_id=order_id,
            payment_id=payment.payment_id,
            reservation_id=reservation.reservation_id or "",
            shipment_id=shipment.shipment_id or "",
        ),
        cause=None,
    )

    done = stores.returns.authorize(_return(order_id, f"{order_id}-done", 1), cause=None)
    assert not isinstance(done, ReturnRefused)
    with stores.shipments.transaction():
        label = stores.shipments.issue_label(order_id, done.return_id, [], "too small", "e-1")
        assert stores.shipments.receive(label)
    with stores.stock.transaction():
        stores.stock.restock(order_id, done.return_id, [StockLine(sku="SKU-1", quantity=1)])
    with stores.ledger.transaction():
        refund = stores.ledger.refund_return(payment, done.return_id, done.amount)
    assert stores.returns.complete(
        CompleteReturnInput(
            order_id=order_id,
            return_id=done.return_id,
            refund_id=refund.refund_id,
            amount=refund.amount,
        ),
        cause=None,
    )

    late = stores.returns.authorize(_return(order_id, f"{order_id}-late", 1), cause=None)
    assert not isinstance(late, ReturnRefused)
    with stores.shipments.transaction():
        label = stores.shipments.issue_label(order_id, late.return_id, [], "too small", "e-2")
        assert stores.shipments.void_label(label, "the return expired")
    assert stores.returns.expire(
        ExpireReturnInput(order_id=order_id, return_id=late.return_id, reason="deadline"),
        cause=None,
    )

    refused = stores.returns.authorize(_return(order_id, f"{order_id}-no", 5), cause=None)
    assert isinstance(refused, ReturnRefused)


@contextmanager
def _writing(stores: _Stores, service: str) -> Iterator[Database]:
    """One transaction on a service's store, by hand, as a careless operator (or a bug) would."""
    db = stores.dbs[service]
    with db.transaction():
        yield db


def _audit(settings: Settings) -> AuditReport:
    return find_violations(read_books(settings).snapshot(before=[]))


def _kinds(report: AuditReport, order_id: str) -> list[ViolationKind]:
    return sorted(violation.kind for violation in report.violations_of(order_id))


def test_returns_the_services_recorded_are_read_and_audited_clean(
    stores: _Stores, settings: Settings
) -> None:
    _returned_order(stores, "o-clean")

    books = read_books(settings)
    report = find_violations(books.snapshot(before=[]))

    assert report.violations == [], report.violations
    assert report.checked_orders == 1
    assert report.counts[K.OVER_REFUNDED] == 0
    assert report.counts[K.RESTOCK_MISMATCH] == 0
    assert report.counts[K.RETURN_REFUND_MISMATCH] == 0
    returns = {r.return_id: (r.status, r.lines) for r in books.returns["o-clean"]}
    assert returns == {
        "o-clean-done": ("completed", {"SKU-1": 1}),
        "o-clean-late": ("expired", {"SKU-1": 1}),
        "o-clean-no": ("rejected", {}),
    }
    assert [(r.return_id, r.lines) for r in books.restocks["o-clean"]] == [
        ("o-clean-done", {"SKU-1": 1})
    ]
    labels = {label.return_id: label.status for label in books.return_labels["o-clean"]}
    assert labels == {"o-clean-done": "received", "o-clean-late": "voided"}
    details = {source.name: source.detail for source in books.sources}
    assert ": 1 orders, 3 returns" in details["orders"]
    assert ": 1 reservations, 1 restocks" in details["inventory"]
    assert ": 1 shipments, 2 return labels" in details["shipping"]


def test_each_return_rule_planted_in_a_store_is_found(stores: _Stores, settings: Settings) -> None:
    for order_id in ("o-clean", "o-over", "o-restock", "o-refund"):
        _returned_order(stores, order_id)

    # A second return that a broken lock let through, refunded 2500 while the first one's
    # 1000 was refunded already: 3500 of the 3000 charged.
    with _writing(stores, "orchestrator") as db:
        db.execute(
            "INSERT INTO returns (return_id, order_id, status, reason, amount_minor, currency,"
            " payment_id, requested_at, created_at, updated_at)"
            " VALUES ('o-over-more', 'o-over', 'authorized', 'raced', 2500, 'EUR', 'p', 0, 0, 0)"
        )
        db.execute(
            "INSERT INTO return_lines (return_id, sku, quantity, unit_price_minor)"
            " VALUES ('o-over-more', 'SKU-1', 2, 1250)"
        )
    with _writing(stores, "payment") as db:
        db.execute(
            "INSERT INTO ledger_entries (payment_id, order_id, kind, amount_minor, currency,"
            " created_at, return_id, refund_id)"
            " SELECT payment_id, order_id, 'return_refund', 2500, 'EUR', 0, 'o-over-more',"
            " 'rfd-planted' FROM payments WHERE order_id = 'o-over'"
        )
    # One unit more back on the shelf than was returned, and the expired return restocked.
    with _writing(stores, "inventory") as db:
        db.execute(
            "UPDATE restock_lines SET quantity = quantity + 1 WHERE return_id = 'o-restock-done'"
        )
        db.execute(
            "INSERT INTO restocks (return_id, order_id, created_at)"
            " VALUES ('o-restock-late', 'o-restock', 0)"
        )
        db.execute(
            "INSERT INTO restock_lines (return_id, sku, quantity)"
            " VALUES ('o-restock-late', 'SKU-1', 1)"
        )
    # The completed return's refund is gone from the ledger.
    with _writing(stores, "payment") as db:
        db.execute("DELETE FROM ledger_entries WHERE return_id = 'o-refund-done'")

    report = _audit(settings)

    found = {v.order_id: _kinds(report, v.order_id) for v in report.violations}
    assert found == {
        "o-over": [K.OVER_REFUNDED],
        "o-restock": [K.RESTOCK_MISMATCH, K.RESTOCK_MISMATCH],
        "o-refund": [K.RETURN_REFUND_MISMATCH],
    }, report.violations
    assert report.checked_orders == 4
    [over] = [v.detail for v in report.violations_of("o-over")]
    done, late = sorted(v.detail for v in report.violations_of("o-restock"))
    [refund] = [v.detail for v in report.violations_of("o-refund")]
    assert "refunded 3500 EUR minor units" in over and "captured 3000" in over
    assert "refund rfd-planted of return o-over-more" in over
    assert done == (
        "inventory restocked return o-restock-done (2 x SKU-1), but the return (completed) is"
        " of 1 x SKU-1"
    )
    assert late == (
        "inventory restocked return o-restock-late (1 x SKU-1), but the return was expired: its"
        " parcel never arrived"
    )
    assert refund == (
        "return o-refund-done completed, owed 1000 EUR minor units, but the ledger holds no"
        " refund of it"
    )
