"""A whole stack on the secured embedded broker (``SAGA_KAFKA_SECURED=true``) with payload
encryption on: sagas run end to end with every process on its own SCRAM user over TLS, Temporal
stores only ciphertext of them, and the broker refuses a service writing to another service's
topic, a client without credentials, a wrong password and a client that does not trust the
run's CA. Its schema registry asks for a password and authorizes by role."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from temporalio.client import Client

from contracts.activities import saga_workflow_id
from infra.config.kafka import KafkaConnection, kafka_connection, read_kafka_secrets, tls_dir
from infra.config.payload_codec import ENCRYPTED_ENCODING
from infra.config.settings import Settings, api_headers
from infra.engines.processes import ProcessTable
from infra.engines.stack import Stack
from runtime import new_admin, new_consumer, new_producer
from tests.support.orders_api import order_body, place, run_path, until_ended
from tests.support.saga_paths import SAGA_PATHS
from tests.support.stacks import own_stack
from tests.support.temporal_history import raw_history

_PATHS = [path for path in SAGA_PATHS if path.name in ("happy", "declined", "no stock")]
_SKU = "SKU-1003"


@pytest.fixture(scope="module")
def secured_stack(kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A whole stack of its own, its embedded broker secured, its payloads encrypted (with the
    development keys `saga up` makes)."""
    with own_stack(
        kafka_libs,
        tmp_path_factory.mktemp("secured"),
        {_SKU: 1000},
        kafka_secured=True,
        payload_encryption=True,
        temporal_storage="memory",
        carrier_dispatch_delay_seconds=0.5,
    ) as settings:
        yield settings


def _as(settings: Settings, user: str, password: str | None = None) -> KafkaConnection:
    """The secured broker as ``user``: with its password of the run, or ``password``."""
    passwords = read_kafka_secrets(settings.run_dir) or {}
    return kafka_connection(settings).as_user(user, password or passwords[user])


@pytest.mark.timeout(600)
async def test_sagas_run_end_to_end_on_the_secured_broker(secured_stack: Settings) -> None:
    """The timeline the API shows comes from the orchestrator's projector, which read each
    service's events from its own topic: every service published, every consumer read."""
    async with httpx.AsyncClient(
        base_url=secured_stack.api_url, timeout=30, headers=api_headers(secured_stack)
    ) as api:
        order = {"sku": _SKU, "prefix": "sec", "customer_id": "cust-secured"}
        sagas = await asyncio.wait_for(
            asyncio.gather(*(run_path(api, path, **order) for path in _PATHS)), timeout=120
        )
    for path, saga in zip(_PATHS, sagas, strict=True):
        assert saga["saga"]["status"] == path.status, (path.name, saga["saga"])
        assert [e["event_type"] for e in saga["events"]] == path.events, path.name


@pytest.mark.timeout(120)
async def test_temporal_stores_only_ciphertext_of_a_sagas_personal_data(
    secured_stack: Settings,
) -> None:
    """Read as the server stores it (a client without the codec), the saga's history holds
    its order's input, every scheduled activity's input and result and every local activity's
    result (a local activity's input is not stored) encrypted, and the address nowhere; the
    API (with the codec) shows the saga completed."""
    marker = f"Erika Mustermann {uuid.uuid4().hex[:8]}"
    body = order_body(sku=_SKU, prefix="sec", customer_id="cust-secured")
    body["shipping_address"].update(name=marker, line1="Heidestrasse 17", postal_code="51147")
    async with httpx.AsyncClient(
        base_url=secured_stack.api_url, timeout=30, headers=api_headers(secured_stack)
    ) as api:
        saga = await until_ended(api, await place(api, body))
    assert saga["saga"]["status"] == "COMPLETED"

    plain = await Client.connect(
        secured_stack.temporal_address, namespace=secured_stack.temporal_namespace
    )
    history = await plain.get_workflow_handle(saga_workflow_id(body["order_id"])).fetch_history()
    raw = raw_history(history)
    assert marker.encode() not in raw and b"Heidestrasse" not in raw and b"51147" not in raw
    carried = [
        payload
        for event in history.events
        for attributes in (
            event.workflow_execution_started_event_attributes.input,
            event.activity_task_scheduled_event_attributes.input,
            event.activity_task_completed_event_attributes.result,
            event.workflow_execution_completed_event_attributes.result,
        )
        for payload in attributes.payloads
    ]
    local_results = [
        payload
        for event in history.events
        if event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        for payload in event.marker_recorded_event_attributes.details["result"].payloads
    ]
    assert len(local_results) == 2  # order.place and order.complete
    carried += local_results
    # The order in, each scheduled step's input and result, each local step's result, the
    # saga's result.
    assert len(carried) >= 10
    assert {payload.metadata["encoding"] for payload in carried} == {ENCRYPTED_ENCODING}


@pytest.mark.timeout(120)
async def test_a_service_cannot_write_another_services_topic(secured_stack: Settings) -> None:
    producer = new_producer(_as(secured_stack, "payment"), request_timeout_ms=5000)
    await asyncio.wait_for(producer.start(), 20)
    try:
        # its own topic: allowed
        await asyncio.wait_for(producer.send_and_wait("payment.events", b"{}", key=b"k"), 20)
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait("inventory.events", b"{}", key=b"k"), 20)
    finally:
        await asyncio.wait_for(producer.stop(), 20)


@pytest.mark.timeout(120)
async def test_a_service_cannot_read_what_it_does_not_consume(secured_stack: Settings) -> None:
    # Reading needs Describe, which payment has on its own topic only: the broker's answer
    # about order.events is a refusal, not the topic (a consumer would retry until it times out).
    admin = new_admin(_as(secured_stack, "payment"), request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 20)
    try:
        described = await asyncio.wait_for(
            admin.describe_topics(["payment.events", "order.events"]), 20
        )
    finally:
        await admin.close()
    errors = {topic["topic"]: topic["error_code"] for topic in described}
    assert errors == {
        "payment.events": 0,
        "order.events": TopicAuthorizationFailedError.errno,
    }
    grouped = new_consumer(_as(secured_stack, "payment"), "orchestrator-projector")
    grouped.subscribe(["payment.events"])
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await asyncio.wait_for(grouped.start(), 20)
            await asyncio.wait_for(grouped.getone(), 20)
    finally:
        await asyncio.wait_for(grouped.stop(), 20)


async def _bootstrap(kafka: KafkaConnection | str) -> None:
    admin = new_admin(kafka, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 30)
        await asyncio.wait_for(admin.list_topics(), 10)
    finally:
        await admin.close()


@pytest.mark.timeout(120)
async def test_clients_without_the_right_credentials_are_refused(secured_stack: Settings) -> None:
    admin = kafka_connection(secured_stack)
    await _bootstrap(admin)  # the right ones: allowed

    # PLAINTEXT, no credentials: the TLS listener does not speak to it
    with pytest.raises((KafkaConnectionError, TimeoutError)):
        await _bootstrap(admin.bootstrap_servers)
    # a wrong password: authentication fails
    with pytest.raises(KafkaError):
        await _bootstrap(_as(secured_stack, "payment", password="not-the-password"))
    # a client that does not trust the run's CA: the broker's certificate is refused
    untrusting = KafkaConnection(
        admin.bootstrap_servers, "SASL_SSL", admin.sasl_username, admin.sasl_password, None
    )
    with pytest.raises(KafkaError):
        await _bootstrap(untrusting)
    assert (tls_dir(secured_stack.run_dir) / "ca.pem").exists()


def test_the_registry_asks_who_and_lets_each_role_do_its_part(secured_stack: Settings) -> None:
    """With SAGA_KAFKA_SECURED the registry asks for HTTP basic authentication: `saga up`
    registered the catalog as its administrator, the services' user reads and registers but
    may not change the registry's global rules, anyone else is refused; its passwords are in
    its mode-0600 configuration, never on its command line."""
    url = f"{secured_stack.schema_registry_url}/apis/ccompat/v7"
    passwords = Stack(secured_stack).registry_passwords()
    services = httpx.BasicAuth("saga-services", passwords["saga-services"])
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{url}/subjects").status_code == 401
        wrong = httpx.BasicAuth("saga-services", "not-the-password")
        assert http.get(f"{url}/subjects", auth=wrong).status_code == 401
        subjects = http.get(f"{url}/subjects", auth=services)
        assert subjects.status_code == 200
        assert "saga.contracts.order.OrderPlaced" in subjects.json()
        global_rule = {"compatibility": "NONE"}
        assert http.put(f"{url}/config", json=global_rule, auth=services).status_code == 403
        health = f"http://127.0.0.1:{secured_stack.schema_registry_port + 1}/health/ready"
        assert http.get(health).status_code == 200  # the management interface stays open

    config = secured_stack.run_dir / "registry" / "config" / "application.properties"
    assert config.stat().st_mode & 0o777 == 0o600
    assert passwords["saga-admin"] in config.read_text()
    record = ProcessTable(secured_stack.run_dir).get("registry")
    assert record is not None
    assert not any(p in part for part in record.command for p in passwords.values())
