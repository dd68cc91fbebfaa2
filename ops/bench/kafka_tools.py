"""Apache Kafka's own ``ProducerPerformance``: fetched from Maven Central on first use, then run.

The jars of ``org.apache.kafka:kafka-tools`` (the broker's version) are kept in a folder of
their own beside the broker's (``<kafka cache>/<version>/tools``), so fetching them never
touches the broker's jars.
"""

import asyncio
import os
import re
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from infra.engines.kafka_broker import fetch_maven_jars
from infra.engines.processes import require_tool
from ops.bench.load import Say
from ops.bench.publisher import PublisherFigures
from ops.bench.stats import LatencySummary

__all__ = ["ensure_kafka_tools_jars", "parse_summary", "run_producer_performance"]

_TOOL = "org.apache.kafka.tools.ProducerPerformance"
_SUMMARY = re.compile(
    r"(?P<count>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


TOOLS_POM = resources.files("infra.engines") / "kafka" / "tools-pom.xml"
"""The Maven project that resolves Kafka's tools (``ProducerPerformance``)."""


def ensure_kafka_tools_jars(cache_dir: Path, version: str, *, maven: str, say: Say) -> Path:
    """The folder of kafka-tools ``version``'s jars, fetched from Maven Central the first time.

    Raises:
        MissingToolError: Maven is not installed.
        RuntimeError: Maven could not resolve the jars (its last lines are in the message).
    """
    with resources.as_file(TOOLS_POM) as pom:
        return fetch_maven_jars(
            pom,
            cache_dir / version / "tools",
            version,
            label="Apache Kafka's tools",
            maven=maven,
            progress=say,
        )


def parse_summary(line: str) -> PublisherFigures | None:
    """The figures of ProducerPerformance's last line, or None if ``line`` is not it."""
    found = _SUMMARY.search(line)
    if found is None or "ms 50th" not in line:
        return None
    count = int(found["count"])
    rate = float(found["rate"])
    return PublisherFigures(
        publisher=f"Apache Kafka {_TOOL.rsplit('.', 1)[1]} (Java client)",
        records=count,
        record_bytes=0,
        duration_s=round(count / rate, 3) if rate else 0.0,
        records_per_s=round(rate, 1),
        mb_per_s=float(found["mb"]),
        latency=LatencySummary(
            count=count,
            p50_ms=float(found["p50"]),
            p95_ms=float(found["p95"]),
            p99_ms=float(found["p99"]),
            mean_ms=float(found["avg"]),
            max_ms=float(found["max"]),
        ),
        notes=["its own figures (milliseconds, whole numbers); values only, no key or headers"],
    )


async def run_producer_performance(
    *,
    java: str,
    libs: Path,
    topic: str,
    records: int,
    record_bytes: int,
    producer_props: Mapping[str, str],
    say: Say,
    limit_seconds: float = 600.0,
) -> PublisherFigures:
    """Run ``ProducerPerformance`` at full speed (``--throughput -1``) and read its summary.

    Raises:
        MissingToolError: Java is not installed.
        RuntimeError: the tool failed or printed no summary (its last lines are in the message).
    """
    # The properties go in a file only this user can read: they may hold a SCRAM password,
    # which a command line would show to every user of the machine.
    with tempfile.TemporaryDirectory(prefix="saga-bench-") as folder:
        config = Path(folder) / "producer.properties"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{name}={value}\n" for name, value in producer_props.items())
        command = [
            require_tool(java, "Kafka's ProducerPerformance", "install Java 17 or set SAGA_JAVA"),
            "-Xmx512m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", f"{libs}/*", _TOOL,
            "--topic", topic, "--num-records", str(records), "--record-size", str(record_bytes),
            "--throughput", "-1", "--producer.config", str(config),
        ]  # fmt: skip
        return await _run_tool(command, record_bytes, say, limit_seconds)


async def _run_tool(
    command: list[str], record_bytes: int, say: Say, limit_seconds: float
) -> PublisherFigures:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    tail: list[str] = []
    summary: PublisherFigures | None = None

    async def read() -> None:
        nonlocal summary, tail
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail = [*tail[-19:], line]
            summary = parse_summary(line) or summary
            if "records sent" in line:
                say(f"  ProducerPerformance: {line}")

    try:
        await asyncio.wait_for(read(), limit_seconds)
        code = await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        raise RuntimeError(
            f"ProducerPerformance did not finish within {limit_seconds:.0f} s"
        ) from None
    finally:
        if process.returncode is None:  # timed out or interrupted: stop the tool we started
            process.kill()
            await process.wait()
    if code != 0 or summary is None:
        raise RuntimeError(f"ProducerPerformance failed (exit {code}):\n" + "\n".join(tail))
    return summary.model_copy(update={"record_bytes": record_bytes})
