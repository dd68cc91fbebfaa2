"""One outbox relay in a process of its own, for the bench's relay comparison on PostgreSQL.

``python -m ops.bench.relay_worker URL SCHEMA MODE``: publishes the outbox in ``SCHEMA`` of
the database at ``URL`` (``MODE``: ``lease``, publishing alone, or ``claims``, beside other
claiming relays) until no row is pending, then exits. It prints ``ready`` once its producer
is connected, so that the bench times the publishing only. Kafka is the settings' (the
environment the bench hands it).
"""

import asyncio
import sys

from infra.config.kafka import kafka_connection
from infra.config.settings import load_settings
from runtime import Outbox, OutboxClaims, OutboxRelay, new_producer, open_database


async def _relay(url: str, schema: str, mode: str) -> None:
    kafka = kafka_connection(load_settings())
    database = open_database(url, schema=schema)
    outbox = Outbox(database)
    claims = OutboxClaims(database.reopen()) if mode == "claims" else None
    relay = OutboxRelay(outbox, lambda: new_producer(kafka), claims=claims)
    await relay._ensure_producer()
    print("ready", flush=True)
    try:
        while True:
            if await relay.publish_pending():
                continue
            if not outbox.pending_count():
                break
            await asyncio.sleep(0.005)  # the other relays' claims hold the rest: ask again
    finally:
        await relay._drop_producer()
        if claims is not None:
            claims.close()
        database.close()


def main() -> None:
    """Run one relay until the outbox is empty."""
    url, schema, mode = sys.argv[1:4]
    asyncio.run(_relay(url, schema, mode))


if __name__ == "__main__":
    main()
