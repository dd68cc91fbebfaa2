"""Consumers that owe nothing to the project, reading its events as another team would: Kafka's
console consumer with Apicurio Registry's Avro deserializer (jars from Maven Central), and
``examples/read_events.py`` (the registry's HTTP API and fastavro)."""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from contracts.topics import TOPICS
from infra.engines.kafka_broker import fetch_maven_jars

AVRO_CONSOLE_POM = resources.files("infra.engines") / "kafka" / "avro-console-pom.xml"
"""Kafka's tools and Apicurio's Avro deserializer, resolved by Maven."""
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
AVRO_DESERIALIZER = "io.apicurio.registry.serde.avro.AvroKafkaDeserializer"
READ_EVENTS = Path(__file__).parents[2] / "examples" / "read_events.py"
DOMAIN_TOPICS = tuple(spec.name for spec in TOPICS)


@dataclass(frozen=True)
class ForeignRecord:
    """One record as a foreign consumer printed it: its key, event type and decoded event."""

    key: str
    event_type: str
    event: dict[str, Any]


def ensure_avro_console_jars(
    cache_dir: Path, version: str, *, maven: str, progress: Callable[[str], None] = print
) -> Path:
    """The folder of the console consumer's and the deserializer's jars, fetched from Maven
    Central the first time, beside the broker's (``<kafka cache>/<version>/avro-console``)."""
    with resources.as_file(AVRO_CONSOLE_POM) as pom:
        return fetch_maven_jars(
            pom,
            cache_dir / version / "avro-console",
            version,
            label="Kafka's console consumer with Apicurio's Avro deserializer",
            maven=maven,
            progress=progress,
        )


def read_with_console_consumer(
    *,
    java: str,
    libs: Path,
    bootstrap: str,
    registry_url: str,
    topics: Sequence[str] = DOMAIN_TOPICS,
    username: str | None = None,
    password: str | None = None,
    idle_ms: int = 5000,
) -> list[ForeignRecord]:
    """Every record of ``topics`` from the beginning, decoded by Apicurio's deserializer
    through the registry's v3 API, until no record came for ``idle_ms``.

    A record the deserializer cannot read (another test's hostile bytes) is skipped.
    """
    deserializer = {
        "value.deserializer": AVRO_DESERIALIZER,
        "value.deserializer.apicurio.registry.url": f"{registry_url}/apis/registry/v3",
        "print.key": "true",
        "print.headers": "true",
    }
    if username is not None and password is not None:
        deserializer["value.deserializer.apicurio.registry.auth.username"] = username
        deserializer["value.deserializer.apicurio.registry.auth.password"] = password
    with tempfile.TemporaryDirectory(prefix="saga-foreign-") as folder:
        # In a file of this user's, not on the command line: it may hold the password.
        config = Path(folder) / "formatter.properties"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{name}={value}\n" for name, value in deserializer.items())
        command = [
            java, "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", f"{libs}/*", CONSOLE_CONSUMER,
            "--bootstrap-server", bootstrap,
            "--include", "|".join(topic.replace(".", r"\.") for topic in topics),
            "--from-beginning", "--timeout-ms", str(idle_ms), "--skip-message-on-error",
            "--formatter-config", str(config),
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=120, check=False
        )
    assert done.returncode == 0, f"the console consumer failed:\n{done.stderr[-3000:]}"
    return [record for line in done.stdout.splitlines() if (record := _console_line(line))]


def _console_line(line: str) -> ForeignRecord | None:
    """The record of a line ``event_type:T<TAB>key<TAB>{record as JSON}`` of the console
    consumer, or None. A skipped record leaves its headers and key without a line end before
    the next record's: the record is the last three fields (Avro escapes tabs in JSON)."""
    fields = line.split("\t")
    if len(fields) < 3 or not fields[-1].startswith("{"):
        return None
    headers, key, value = fields[-3:]
    types = [h.split(":", 1)[1] for h in headers.split(",") if h.startswith("event_type:")]
    return ForeignRecord(key=key, event_type=types[0] if types else "", event=json.loads(value))


def read_with_python_reader(
    *,
    bootstrap: str,
    registry_url: str,
    key: str,
    topics: Sequence[str] = DOMAIN_TOPICS,
    username: str | None = None,
    password: str | None = None,
) -> list[ForeignRecord]:
    """The records of ``key`` in ``topics``, as ``examples/read_events.py`` prints them, run
    as a user would run it (its own process, no import of the project)."""
    command = [sys.executable, str(READ_EVENTS), "--bootstrap", bootstrap]
    command += ["--registry", registry_url, "--key", key]
    for topic in topics:
        command += ["--topic", topic]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if username is not None and password is not None:
        command += ["--registry-user", username]
        env["READ_EVENTS_REGISTRY_PASSWORD"] = password
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
        env=env,
        cwd="/",
    )
    assert done.returncode == 0, f"read_events.py failed:\n{done.stderr[-3000:]}"
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [ForeignRecord(line["key"], line["event_type"], line["event"]) for line in lines]
