"""Someone else's consumer reads an order's events: Kafka's console consumer with Apicurio's Avro
deserializer (jars from Maven Central), and ``examples/read_events.py`` (the registry's HTTP API
and fastavro), neither with any of the project's code, decode every event of a completed order
from the session stack's topics through its schema registry."""

from pathlib import Path

import httpx
import pytest

from infra.config.settings import Settings
from tests.support.foreign_readers import (
    ForeignRecord,
    ensure_avro_console_jars,
    read_with_console_consumer,
    read_with_python_reader,
)
from tests.support.orders_api import order_body, place, until_ended
from tests.support.saga_paths import CHARGED, HAPPY_EVENTS, PLACED

QUANTITY, UNIT_PRICE = 3, 1250


@pytest.fixture(scope="module")
def console_libs(stack: Settings) -> Path:
    """The console consumer's and the deserializer's jars (fetched the first time)."""
    return ensure_avro_console_jars(stack.kafka_cache_dir, stack.kafka_version, maven=stack.maven)


@pytest.fixture
async def completed_order(api: httpx.AsyncClient) -> str:
    """The id of an order of three units at 12.50 EUR that went the happy path."""
    order_id = await place(
        api, order_body(quantity=QUANTITY, unit_price=UNIT_PRICE, prefix="foreign")
    )
    saga = await until_ended(api, order_id)
    assert saga["saga"]["status"] == "COMPLETED", saga
    return order_id


def _registry_password(stack: Settings) -> str | None:
    password = stack.schema_registry_password
    return password.get_secret_value() if password is not None else None


def _assert_decoded(records: list[ForeignRecord], order_id: str) -> None:
    mine = [record for record in records if record.key == order_id]
    assert sorted(r.event_type for r in mine) == sorted(HAPPY_EVENTS)
    for record in mine:
        assert record.event["eventType"] == record.event_type
        assert record.event["correlationId"] == order_id
        assert record.event["data"]["order_id"] == order_id
    by_type = {record.event_type: record.event["data"] for record in mine}
    assert by_type[PLACED]["items"][0]["quantity"] == QUANTITY
    assert by_type[PLACED]["items"][0]["unit_price_minor"] == UNIT_PRICE
    assert by_type[CHARGED]["amount"] == {"amount_minor": QUANTITY * UNIT_PRICE, "currency": "EUR"}


def test_kafka_console_consumer_with_apicurio_deserializer_decodes_an_order(
    stack: Settings, console_libs: Path, completed_order: str
) -> None:
    records = read_with_console_consumer(
        java=stack.java,
        libs=console_libs,
        bootstrap=stack.kafka_bootstrap_servers,
        registry_url=stack.schema_registry_url,
        username=stack.schema_registry_username,
        password=_registry_password(stack),
    )
    _assert_decoded(records, completed_order)


def test_generic_python_reader_decodes_an_order(stack: Settings, completed_order: str) -> None:
    records = read_with_python_reader(
        bootstrap=stack.kafka_bootstrap_servers,
        registry_url=stack.schema_registry_url,
        key=completed_order,
        username=stack.schema_registry_username,
        password=_registry_password(stack),
    )
    _assert_decoded(records, completed_order)
