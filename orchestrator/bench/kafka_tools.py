"""Apache Kafka's own ``ProducerPerformance``: fetched from Maven Central on first use, then run.

The jars of ``org.apache.kafka:kafka-tools`` (the broker's version) are kept in a folder of
their own beside the broker's (``<kafka cache>/<version>/tools``), so fetching them never
touches the broker's jars.
"""

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from infra.kafka_broker import MissingToolError
from orchestrator.bench.publisher import PublisherFigures
from orchestrator.bench.stats import LatencySummary

__all__ = ["ensure_kafka_tools_jars", "parse_summary", "run_producer_performance"]

_COMPLETE_MARKER = ".complete"
_TOOL = "org.apache.kafka.tools.ProducerPerformance"
_SUMMARY = re.compile(
    r"(?P<count>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)

Say = Callable[[str], None]


def _tool(name: str, what: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"{name!r} not found: {what} needs it; {hint}")
    return path


def ensure_kafka_tools_jars(cache_dir: Path, version: str, *, maven: str, say: Say) -> Path:
    """The folder of kafka-tools ``version``'s jars, fetched from Maven Central the first time.

    Raises:
        MissingToolError: Maven is not installed.
        RuntimeError: Maven could not resolve the jars (its last lines are in the message).
    """
    libs = cache_dir / version / "tools"
    if (libs / _COMPLETE_MARKER).exists():
        return libs
    mvn = _tool(maven, "fetching kafka-tools", "install Maven or set SAGA_MAVEN")
    if libs.exists():
        shutil.rmtree(libs)  # an interrupted fetch leaves a partial set of jars
    libs.mkdir(parents=True)
    say(f"Fetching Apache Kafka's tools {version} from Maven Central into {libs} (first time only)")
    with resources.as_file(resources.files("infra") / "kafka" / "tools-pom.xml") as pom:
        command = [
            mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-Dkafka.version={version}", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ]  # fmt: skip
        tail: list[str] = []
        fetched = 0
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as maven_run:
            assert maven_run.stdout is not None
            for line in maven_run.stdout:
                tail = [*tail[-19:], line.rstrip()]
                downloaded = re.search(r"Downloaded from \S+: \S+/([^/\s]+\.jar) \(([^)]*)\)", line)
                if downloaded:
                    fetched += 1
                    say(f"  [{fetched:>3}] {downloaded.group(1)} ({downloaded.group(2)})")
    if maven_run.returncode != 0:
        shutil.rmtree(libs, ignore_errors=True)
        raise RuntimeError(
            f"Maven could not fetch kafka-tools {version} (is Maven Central reachable?):\n"
            + "\n".join(tail)
        )
    (libs / _COMPLETE_MARKER).write_text(version)
    say(f"kafka-tools {version}: {len(list(libs.glob('*.jar')))} jars ready")
    return libs


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
    command = [
        _tool(java, "Kafka's ProducerPerformance", "install Java 17 or set SAGA_JAVA"),
        "-Xmx512m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp", f"{libs}/*", _TOOL,
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_bytes),
        "--throughput", "-1",
        "--producer-props", *(f"{name}={value}" for name, value in producer_props.items()),
    ]  # fmt: skip
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
