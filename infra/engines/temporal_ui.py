"""Temporal's Web UI beside Temporal's full server, for the cluster topology.

The CLI's dev server carries the Web UI inside; the full server does not. This runs the UI's own
server, ``github.com/temporalio/ui-server/v2`` (the one the CLI embeds, its pages and assets
inside), built once per version by :func:`infra.engines.temporal_build.ensure_temporal_ui`, as
a process of its own, everything under the run directory:

- ``<run_dir>/temporal-ui/config/saga.yaml``: the frontend's gRPC address, the UI's listener
  on 127.0.0.1, the codec endpoint when payloads are encrypted (as the dev server's UI gets
  with ``--ui-codec-endpoint``), and with mTLS on the frontend the run's CA and client
  certificate (see :class:`~infra.engines.temporal_full.FrontendTls`), host name checked;
- ``<run_dir>/logs/temporal-ui.log``: its output.

It keeps no state: stopping it (by process id) loses nothing.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from infra.engines.processes import ProcessRecord, log_tail, spawn, stop_process
from infra.engines.temporal_build import TemporalUiBuild
from infra.engines.temporal_full import FrontendTls

__all__ = ["TemporalUiServer"]

_ENV = "saga"
"""The UI server reads ``config/<env>.yaml`` under its root (``--env``)."""
_READY_PATH = "/api/v1/system-info"
"""Answered by the frontend through the UI server: 200 once the UI reaches Temporal."""


@dataclass(frozen=True)
class TemporalUiServer:
    """Temporal's Web UI server on loopback, in front of a Temporal frontend."""

    build: TemporalUiBuild
    run_dir: Path
    port: int
    temporal_address: str
    """The frontend's gRPC address (``host:port``)."""
    namespace: str = "default"
    """The namespace the UI opens on."""
    codec_endpoint: str | None = None
    """The codec endpoint (``<api>/codec``) the UI decodes encrypted payloads with."""
    tls: FrontendTls | None = None
    """mTLS to the frontend: the run's CA, and the client certificate the UI presents."""
    tls_server_name: str = "localhost"
    """The name the frontend's certificate is checked against."""
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """Where a browser opens the UI."""
        return f"http://{self.host}:{self.port}"

    @property
    def home(self) -> Path:
        """The UI server's root folder (``--root``): its configuration."""
        return self.run_dir / "temporal-ui"

    @property
    def config_path(self) -> Path:
        """The configuration the UI server starts with."""
        return self.home / "config" / f"{_ENV}.yaml"

    @property
    def log_path(self) -> Path:
        """The UI server's output."""
        return self.run_dir / "logs" / "temporal-ui.log"

    def config(self) -> dict[str, Any]:
        """The UI server's configuration: what the CLI gives the dev server's UI (the UI on,
        its CSRF cookie allowed over plain HTTP, news not fetched, the codec endpoint), plus
        TLS to the frontend when :attr:`tls` is set."""
        config: dict[str, Any] = {
            "temporalGrpcAddress": self.temporal_address,
            "host": self.host,
            "port": self.port,
            "enableUi": True,
            "defaultNamespace": self.namespace,
            "disableNewsFetch": True,
            "hideLogs": True,
            # The UI is served over plain HTTP on loopback, as the dev server's is.
            "cors": {"cookieInsecure": True},
        }
        if self.codec_endpoint is not None:
            config["codec"] = {"endpoint": self.codec_endpoint}
        if self.tls is not None:
            config["tls"] = {
                "caFile": str(self.tls.ca),
                "certFile": str(self.tls.client_cert),
                "keyFile": str(self.tls.client_key),
                "serverName": self.tls_server_name,
                # Off, the UI server would skip checking the frontend's certificate.
                "enableHostVerification": True,
            }
        return config

    def write_config(self) -> Path:
        """Write :meth:`config` (it holds paths, no secret) and return its path."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        header = "# Written by saga-orchestrator for this run (infra/engines/temporal_ui.py).\n"
        self.config_path.write_text(header + yaml.safe_dump(self.config(), sort_keys=False))
        return self.config_path

    def command(self) -> list[str]:
        """The command line that runs the UI server on :attr:`config_path`."""
        return [
            str(self.build.server),
            "--root",
            str(self.home),
            "--config",
            "config",
            "--env",
            _ENV,
            "start",
        ]

    def start(self, *, timeout: float = 60.0) -> ProcessRecord:
        """Write the configuration, start the UI server and wait until it reaches Temporal.

        Returns:
            The UI server's process record (stop it with
            :func:`~infra.engines.processes.stop_process`).

        Raises:
            RuntimeError: the UI server ended, or did not reach Temporal within ``timeout``
                seconds (the end of its log is in the message); it is stopped.
        """
        self.write_config()
        _, record = spawn("temporal-ui", self.command(), self.log_path, cwd=self.home)
        try:
            self.wait_until_ready(record, time.monotonic() + timeout)
        except BaseException:
            stop_process(record)
            raise
        return record

    def wait_until_ready(self, record: ProcessRecord, deadline: float) -> None:
        """Wait until the UI server of ``record`` answers with the frontend's system
        information (so it reaches Temporal, through TLS if set), by ``deadline``
        (``time.monotonic()``).

        Raises:
            RuntimeError: the UI server ended, or did not get there in time.
        """
        last = "no answer"
        with httpx.Client(timeout=5.0) as http:
            while True:
                try:
                    response = http.get(self.url + _READY_PATH)
                except httpx.HTTPError as error:
                    last = f"{type(error).__name__}: {error}"
                else:
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text.strip()[:200]}"
                if not record.is_alive():
                    raise RuntimeError(
                        f"Temporal's Web UI server ended during start:\n{log_tail(self.log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Temporal's Web UI at {self.url} did not reach Temporal at "
                        f"{self.temporal_address} in time ({last}):\n{log_tail(self.log_path)}"
                    )
                time.sleep(0.2)
