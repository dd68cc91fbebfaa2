"""Read the project's events from Kafka with nothing of the project: the registry's HTTP API and
fastavro decode them, as another team's consumer would.

Every record's value is in the schema registry's wire format: a zero byte, the writer schema's
id (4 bytes, big-endian), then the event in Avro binary. The id is the one the registry's
Confluent-compatible API returns (``GET /apis/ccompat/v7/schemas/ids/{id}``); each schema is
fetched once. One JSON line is printed per event::

    python examples/read_events.py --bootstrap 127.0.0.1:9092 \\
        --registry http://127.0.0.1:8081 --topic order.events --topic payment.events \\
        --key order-7f3a

It reads every partition from the beginning up to the end it finds at start, then exits; a
record that is not in the wire format, or whose schema the registry lacks, is reported on stderr
and skipped. Needs
``aiokafka``, ``fastavro`` and ``httpx`` (``pip install aiokafka fastavro httpx``).
"""

import argparse
import asyncio
import json
import os
import struct
import sys
from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.helpers import create_ssl_context
from fastavro import parse_schema, schemaless_reader

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class UnknownSchemaError(LookupError):
    """A record names a schema id the registry does not have."""


class SchemaRegistry:
    """Writer schemas by id, from the registry's Confluent-compatible API, each fetched once."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._schemas: dict[int, Any] = {}

    async def schema(self, schema_id: int) -> Any:
        """The parsed writer schema of ``schema_id``.

        Raises:
            UnknownSchemaError: the registry has no schema of that id.
            httpx.HTTPStatusError: the registry refused (401, 403) or failed.
        """
        if schema_id not in self._schemas:
            answer = await self._http.get(f"/apis/ccompat/v7/schemas/ids/{schema_id}")
            if answer.status_code == 404:
                raise UnknownSchemaError(f"the registry has no schema of id {schema_id}")
            answer.raise_for_status()
            self._schemas[schema_id] = parse_schema(json.loads(answer.json()["schema"]))
        return self._schemas[schema_id]

    async def decode(self, value: bytes | None) -> tuple[int, Any]:
        """The schema id of a framed ``value`` and the event it holds.

        Raises:
            ValueError: ``value`` is not in the registry's wire format, or its body is not
                a record of the schema its id names.
            UnknownSchemaError: the registry has no schema of its id.
        """
        if value is None or len(value) < _HEADER.size or value[0] != MAGIC_BYTE:
            start = value[:5] if value is not None else None
            raise ValueError(f"not in the registry's wire format: starts with {start!r}")
        _, schema_id = _HEADER.unpack_from(value)
        schema = await self.schema(schema_id)
        try:
            event = schemaless_reader(BytesIO(value[_HEADER.size :]), schema, None)
        except Exception as error:  # any bytes fail in their own way
            raise ValueError(f"not a record of schema {schema_id}: {error!r:.200}") from error
        return schema_id, event


async def records_until_end(
    consumer: AIOKafkaConsumer,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of the consumer's topics, from the beginning up to the end offsets found at
    start.

    Without a group, a started consumer is assigned every partition of its topics, and starts
    at the offset its ``auto_offset_reset`` says.
    """
    partitions = list(consumer.assignment())
    if not partitions:
        raise SystemExit(f"none of the topics {sorted(consumer.subscription())} exists")
    ends = await consumer.end_offsets(partitions)
    remaining = set(partitions)
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record
        remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}


async def read_events(args: argparse.Namespace) -> int:
    """Print every event of ``args.topic`` (of key ``args.key`` only, if given); their count."""
    auth = (args.registry_user, args.registry_password) if args.registry_user else None
    consumer = AIOKafkaConsumer(
        *args.topic,
        bootstrap_servers=args.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        security_protocol=args.security_protocol,
        sasl_mechanism=args.sasl_mechanism,
        sasl_plain_username=args.sasl_user,
        sasl_plain_password=args.sasl_password,
        ssl_context=create_ssl_context(cafile=args.cafile) if args.cafile else None,
    )
    printed = 0
    async with httpx.AsyncClient(base_url=args.registry, auth=auth, timeout=10) as http:
        registry = SchemaRegistry(http)
        await consumer.start()
        try:
            async for record in records_until_end(consumer):
                # Anyone may write to a topic: a key need not be text.
                key = record.key.decode(errors="replace") if record.key is not None else None
                if args.key is not None and key != args.key:
                    continue
                try:
                    schema_id, event = await registry.decode(record.value)
                except (ValueError, UnknownSchemaError) as error:
                    where = f"{record.topic}[{record.partition}]@{record.offset}"
                    print(f"skipped {where}: {error}", file=sys.stderr)
                    continue
                headers = {name: value.decode(errors="replace") for name, value in record.headers}
                line = {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": key,
                    "event_type": headers.get("event_type"),
                    "schema_id": schema_id,
                    "event": event,
                }
                print(json.dumps(line, default=_json_value), flush=True)
                printed += 1
        finally:
            await consumer.stop()
    return printed


def _json_value(value: object) -> str:
    """Timestamps (``timestamp-millis``) as ISO 8601, UUIDs and the like as text."""
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; passwords may come from the environment instead."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--topic", action="append", required=True, help="repeat for several")
    parser.add_argument("--key", help="only the records of this key (an order id)")
    parser.add_argument("--registry-user", help="basic auth at the registry")
    parser.add_argument(
        "--registry-password",
        default=os.environ.get("READ_EVENTS_REGISTRY_PASSWORD"),
        help="default: $READ_EVENTS_REGISTRY_PASSWORD",
    )
    parser.add_argument("--security-protocol", default="PLAINTEXT", help="e.g. SASL_SSL")
    parser.add_argument("--sasl-mechanism", default="PLAIN", help="e.g. SCRAM-SHA-512")
    parser.add_argument("--sasl-user")
    parser.add_argument(
        "--sasl-password",
        default=os.environ.get("READ_EVENTS_SASL_PASSWORD"),
        help="default: $READ_EVENTS_SASL_PASSWORD",
    )
    parser.add_argument("--cafile", help="the CA that signed the brokers' certificates")
    return parser.parse_args(argv)


def main() -> None:
    """Read, print, and say on stderr how many events were printed."""
    try:
        printed = asyncio.run(read_events(parse_args()))
    except httpx.HTTPStatusError as error:
        raise SystemExit(f"the registry answered {error.response.status_code}: {error}") from None
    print(f"{printed} events", file=sys.stderr)


if __name__ == "__main__":
    main()
