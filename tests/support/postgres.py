"""A PostgreSQL server of Debian's for tests: started in a run directory its user can enter."""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.engines.postgres import PostgresServer, find_postgres_bin, stop_postgres
from infra.engines.processes import ProcessRecord, reserve_ports


@dataclass(frozen=True)
class RunningPostgres:
    """A started server, its process and the URL of each provisioned service."""

    server: PostgresServer
    record: ProcessRecord
    urls: dict[str, str]


def postgres_run_dir() -> Path:
    """A run directory the server's system user can enter (pytest's own are mode 0700 under
    root's): PostgreSQL runs as ``postgres`` when the tests run as root."""
    folder = Path(tempfile.mkdtemp(prefix="saga-pg-"))
    folder.chmod(0o711)
    return folder


def start_postgres(run_dir: Path) -> tuple[PostgresServer, ProcessRecord]:
    """Start a server in ``run_dir`` on a free port; the test fails if it does not start."""
    with reserve_ports() as ports:
        port = ports.port()
    server = PostgresServer(bin_dir=find_postgres_bin(), run_dir=run_dir, port=port)
    try:
        record = server.start(timeout=60)
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        pytest.fail(f"PostgreSQL did not start: {exc}", pytrace=False)
    return server, record


@contextlib.contextmanager
def running_postgres(services: Sequence[str] = ()) -> Iterator[RunningPostgres]:
    """A server provisioned for ``services`` (a role and a database each, if any), stopped
    and its run directory removed after."""
    run_dir = postgres_run_dir()
    server, record = start_postgres(run_dir)
    try:
        yield RunningPostgres(server, record, server.provision(services) if services else {})
    finally:
        stop_postgres(record)
        shutil.rmtree(run_dir, ignore_errors=True)
