"""The API publishes its outbox as every service does: under the lease, flushed on stop."""

import asyncio
import time
import uuid
from contextlib import closing
from pathlib import Path

from contracts.topics import topic_for_event_type
from infra.config.settings import Settings
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.schema_registry import SchemaRegistryServer
from infra.engines.temporal_server import TemporalDevServer
from ops.snapshot import TopicSnapshot
from orchestrator.api.app import create_app, outbox_database
from runtime import Outbox, RelayLease, SchemaRegistry, open_database, transaction
from tests.support.samples import order_repaired


async def _event_ids_on_kafka(settings: Settings, topic: str, order_id: str) -> list[str]:
    """The ids of ``order_id``'s events on ``topic``, from its beginning to its end now."""
    async with (
        SchemaRegistry.from_settings(settings) as schemas,
        TopicSnapshot(settings.kafka_bootstrap_servers, [topic]) as snapshot,
    ):
        return [
            str((await schemas.decode(record.value, record.headers)).event_id)
            async for record in snapshot.records()
            if record.key == order_id.encode()
        ]


async def test_a_repair_written_just_before_the_api_stops_is_published_by_the_flush_on_stop(
    kafka_broker: KafkaBroker,
    temporal_server: TemporalDevServer,
    schema_registry: SchemaRegistryServer,
    tmp_path: Path,
) -> None:
    settings = Settings(
        schema_registry_url=schema_registry.url,
        run_dir=tmp_path / "run",
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
        startup_timeout_seconds=30,
    )
    app = create_app(settings)
    order_id = f"relay-{uuid.uuid4().hex[:12]}"
    repair = order_repaired(order_id)

    async with app.router.lifespan_context(app):
        with closing(open_database(outbox_database(settings.run_dir))) as db:
            lease = RelayLease(db, "test-reader")
            deadline = time.monotonic() + 30
            while (holder := lease.holder()) is None or not (holder.owner or "").startswith("api:"):
                assert time.monotonic() < deadline, (
                    f"the API's relay never took the lease: {holder}"
                )
                await asyncio.sleep(0.05)
            # Written, and the app told to stop, with no await between: only the relay's
            # flush on stop can publish it before the app is down.
            outbox = Outbox(db)
            with transaction(db):
                outbox.add(repair)

    with closing(open_database(outbox_database(settings.run_dir))) as db:
        assert Outbox(db).pending_count() == 0
        released = RelayLease(db, "test-reader").holder()
        assert released is not None and released.owner is None, released
    on_kafka = await _event_ids_on_kafka(
        settings, topic_for_event_type(repair.event_type), order_id
    )
    assert on_kafka == [str(repair.event_id)]
