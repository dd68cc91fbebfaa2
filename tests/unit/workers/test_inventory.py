"""The inventory activities against a real SQLite stock: all lines or none, once per order."""

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contracts.activities import ReleaseStockInput, ReserveStockInput, RestockInput
from contracts.errors import STOCK_UNAVAILABLE
from contracts.events.common import StockLine
from infra.config.settings import ConfigurationError, Settings
from runtime import Database, Outbox
from tests.support.activities import refused_each_time
from tests.unit.workers.conftest import EventsOf
from workers.inventory.activities import InventoryActivities
from workers.inventory.service import seeded_stock
from workers.inventory.stock import DEFAULT_SEED_FILE, StockBook, load_seed

SEED = load_seed(DEFAULT_SEED_FILE)


@pytest.fixture
def stock(db: Database) -> StockBook:
    book = StockBook(db)
    book.seed(SEED)
    return book


@pytest.fixture
def inventory(stock: StockBook, outbox: Outbox) -> InventoryActivities:
    return InventoryActivities(stock, outbox)


def _reserve(order_id: str, *lines: tuple[str, int]) -> ReserveStockInput:
    return ReserveStockInput(
        order_id=order_id, items=[StockLine(sku=sku, quantity=qty) for sku, qty in lines]
    )


def _release(order_id: str) -> ReleaseStockInput:
    return ReleaseStockInput(order_id=order_id, reason="payment declined")


def test_the_seed_file_stocks_the_sample_skus() -> None:
    for sku in ("SKU-1001", "SKU-1002", "SKU-1003"):
        assert SEED[sku] == 1000


def test_the_seed_is_loaded_only_into_an_empty_stock(stock: StockBook) -> None:
    assert not stock.seed({"SKU-1001": 5, "SKU-9": 1})
    assert stock.on_hand("SKU-1001") == 1000
    assert stock.on_hand("SKU-9") is None


def test_the_seed_file_is_a_setting(db: Database, outbox: Outbox, tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"SKU-7": 3}')
    seeded_stock(Settings(inventory_seed_file=seed), db)
    assert StockBook(db).on_hand("SKU-7") == 3
    assert StockBook(db).on_hand("SKU-1001") is None

    with pytest.raises(ConfigurationError, match="seed file"):
        seeded_stock(Settings(inventory_seed_file=tmp_path / "missing.json"), db)


async def test_reserve_decrements_once_and_release_restores(
    inventory: InventoryActivities, stock: StockBook, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    order = _reserve("o1", ("SKU-1001", 3), ("SKU-1002", 1), ("SKU-1001", 2))

    first = await env.run(inventory.reserve, order)
    second = await env.run(inventory.reserve, order)

    assert second.reservation_id == first.reservation_id
    assert stock.on_hand("SKU-1001") == 995
    assert stock.on_hand("SKU-1002") == 999

    assert (await env.run(inventory.release, _release("o1"))).released
    assert (await env.run(inventory.release, _release("o1"))).released
    assert stock.on_hand("SKU-1001") == SEED["SKU-1001"]
    assert stock.on_hand("SKU-1002") == SEED["SKU-1002"]

    reserved, released = events_of("o1")
    assert reserved.event_type == "inventory.reserved.v1"
    assert reserved.source == "inventory-service"
    assert reserved.data.reservation_id == first.reservation_id
    assert [(line.sku, line.quantity) for line in reserved.data.items] == [
        ("SKU-1001", 5),
        ("SKU-1002", 1),
    ]
    assert released.event_type == "inventory.released.v1"
    assert released.data.reservation_id == first.reservation_id


async def test_an_oversize_order_is_refused_and_takes_nothing(
    inventory: InventoryActivities, stock: StockBook, events_of: EventsOf
) -> None:
    order = _reserve("o2", ("SKU-1001", 1), ("SKU-1003", 1001))
    await refused_each_time(inventory.reserve, order, STOCK_UNAVAILABLE)

    assert stock.on_hand("SKU-1001") == 1000
    assert stock.on_hand("SKU-1003") == 1000
    [event] = events_of("o2")
    assert event.event_type == "inventory.unavailable.v1"
    assert event.data.reservation_id is None
    assert [(line.sku, line.quantity) for line in event.data.items] == [("SKU-1003", 1001)]


async def test_an_unknown_sku_is_refused(
    inventory: InventoryActivities, stock: StockBook, events_of: EventsOf
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            inventory.reserve, _reserve("o3", ("SKU-1001", 1), ("SKU-NOPE", 1))
        )
    assert refused.value.type == STOCK_UNAVAILABLE
    assert stock.on_hand("SKU-1001") == 1000
    assert [e.event_type for e in events_of("o3")] == ["inventory.unavailable.v1"]


async def test_release_of_nothing_reserved_is_a_no_op(
    inventory: InventoryActivities, stock: StockBook, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    assert not (await env.run(inventory.release, _release("o4"))).released

    with pytest.raises(ApplicationError):
        await env.run(inventory.reserve, _reserve("o5", ("SKU-1002", 5000)))
    assert not (await env.run(inventory.release, _release("o5"))).released
    assert not (await env.run(inventory.release, _release("o5"))).released

    assert stock.on_hand("SKU-1002") == 1000
    assert events_of("o4") == []
    assert [e.event_type for e in events_of("o5")] == ["inventory.unavailable.v1"]


def _restock(order_id: str, return_id: str, *lines: tuple[str, int]) -> RestockInput:
    return RestockInput(
        order_id=order_id,
        return_id=return_id,
        items=[StockLine(sku=sku, quantity=qty) for sku, qty in lines],
    )


async def test_restocking_a_return_twice_stocks_it_up_once(
    inventory: InventoryActivities, stock: StockBook, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    before = stock.on_hand("SKU-1001")
    assert before is not None
    request = _restock("o-ret", "r1", ("SKU-1001", 1), ("SKU-NEW", 2), ("SKU-1001", 1))

    first = await env.run(inventory.restock, request)
    second = await env.run(inventory.restock, request)

    assert second == first
    assert sorted(first.restocked, key=lambda line: line.sku) == [
        StockLine(sku="SKU-1001", quantity=2),
        StockLine(sku="SKU-NEW", quantity=2),
    ]
    assert stock.on_hand("SKU-1001") == before + 2
    assert stock.on_hand("SKU-NEW") == 2
    [event] = events_of("o-ret")
    assert event.event_type == "inventory.restocked.v1"
    assert event.data.return_id == "r1"
    assert {(line.sku, line.quantity) for line in event.data.items} == {
        ("SKU-1001", 2),
        ("SKU-NEW", 2),
    }


async def test_two_returns_of_one_order_are_restocked_each(
    inventory: InventoryActivities, stock: StockBook, events_of: EventsOf
) -> None:
    env = ActivityEnvironment()
    before = stock.on_hand("SKU-1001")
    assert before is not None
    await env.run(inventory.restock, _restock("o-two", "r1", ("SKU-1001", 1)))
    await env.run(inventory.restock, _restock("o-two", "r2", ("SKU-1001", 1)))
    assert stock.on_hand("SKU-1001") == before + 2
    assert [e.data.return_id for e in events_of("o-two")] == ["r1", "r2"]
