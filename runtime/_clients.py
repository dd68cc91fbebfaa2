"""Kafka clients with this project's settings, never aiokafka's unsafe defaults.

Every client of the project is made here, from a :class:`KafkaConnection`: where the brokers
are and how to authenticate to them (PLAINTEXT, or SASL/SCRAM-SHA-512 over TLS). A plain
``host:port,...`` string is accepted wherever a connection is, and means PLAINTEXT: what the
tests' own unsecured brokers and ad hoc tools use.
"""

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.codec import has_lz4, has_zstd
from aiokafka.errors import KafkaError

from infra.config.kafka import KafkaTarget, as_connection

__all__ = [
    "KafkaUnavailableError",
    "compression_type",
    "new_admin",
    "new_consumer",
    "new_producer",
    "wait_for_kafka",
]

log = logging.getLogger(__name__)


def compression_type() -> str | None:
    """lz4 if the client can compress with it, else zstd, else none (with a log line)."""
    if has_lz4():
        return "lz4"
    if has_zstd():
        return "zstd"
    log.warning("neither lz4 nor zstd is installed for aiokafka: publishing uncompressed")
    return None


def new_producer(kafka: KafkaTarget, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica, tuned for low latency."""
    config: dict[str, Any] = {
        **as_connection(kafka).client_kwargs(),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": compression_type(),
        # No lingering: the relay hands the producer whole batches, and what it sends while a
        # request is in flight is batched anyway. 2 ms of linger cost the paced bench about
        # 2.5 ms of publish latency at P50 and 7 ms at P95, and no events/s.
        "linger_ms": 0,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15000,
    }
    config.update(overrides)
    return AIOKafkaProducer(**config)


def new_consumer(kafka: KafkaTarget, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that commits only what it has handled and starts at the earliest record."""
    config: dict[str, Any] = {
        **as_connection(kafka).client_kwargs(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 200,
        "session_timeout_ms": 30000,
        "heartbeat_interval_ms": 3000,
    }
    config.update(overrides)
    return AIOKafkaConsumer(**config)


def new_admin(kafka: KafkaTarget, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client (not started)."""
    config: dict[str, Any] = {**as_connection(kafka).client_kwargs(), **overrides}
    return AIOKafkaAdminClient(**config)


class KafkaUnavailableError(Exception):
    """Kafka did not answer; the message says where it was looked for."""


async def wait_for_kafka(bootstrap_servers: KafkaTarget, *, wait_seconds: float) -> int:
    """Wait until the cluster answers a metadata request; return its number of brokers.

    Raises:
        KafkaUnavailableError: no answer within ``wait_seconds`` seconds.
    """
    deadline = asyncio.get_running_loop().time() + wait_seconds
    last_error: BaseException | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = new_admin(bootstrap_servers, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), timeout=10)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=10)
            return len(cluster["brokers"])
        except (KafkaError, OSError, TimeoutError) as exc:
            last_error = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise KafkaUnavailableError(
        f"Kafka at {bootstrap_servers} did not answer within {wait_seconds:.0f} s "
        f"({type(last_error).__name__}): start the stack with `saga up`, or set "
        "SAGA_KAFKA_BOOTSTRAP_SERVERS "
        "to a running cluster"
    )
