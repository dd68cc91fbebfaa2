"""The PostgreSQL server of the cluster topology: Debian's PostgreSQL started for the run, one
database and one role per service, each role shut out of every database but its own."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from infra.engines.postgres import (
    SECRETS_FILE,
    read_postgres_secrets,
    stop_postgres,
)
from infra.engines.processes import ProcessRecord, start_ticks_of
from tests.support.postgres import (
    RunningPostgres,
    postgres_run_dir,
    running_postgres,
    start_postgres,
)

SERVICES = ("payment", "inventory", "shipping", "orchestrator")


@pytest.fixture(scope="module")
def postgres() -> Iterator[RunningPostgres]:
    """A PostgreSQL server for this module, provisioned for the four services."""
    with running_postgres(SERVICES) as running:
        yield running


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def test_each_role_connects_to_its_own_database_and_creates_a_table(
    postgres: RunningPostgres,
) -> None:
    """Every service's URL logs its role into its database, where it may create, write and
    read a table of its own."""
    for service, url in postgres.urls.items():
        table = f"probe_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, connect_timeout=5) as conn:
            who = conn.execute("SELECT current_user, current_database()").fetchone()
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
            conn.execute(f"INSERT INTO {table} VALUES (1, %s)", (service,))
            assert conn.execute(f"SELECT note FROM {table}").fetchone() == (service,)
        assert who == (service, service)


def test_a_role_cannot_connect_to_another_services_database(postgres: RunningPostgres) -> None:
    """Payment's role is refused by inventory's database and by the superuser's, and the
    refusal names the missing CONNECT privilege."""
    payment = postgres.urls["payment"]
    for database in ("inventory", "orchestrator", "postgres"):
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(_with_database(payment, database), connect_timeout=5).close()
        message = str(refused.value)
        assert f'permission denied for database "{database}"' in message, message
        assert "CONNECT privilege" in message, message


def test_a_wrong_password_is_refused(postgres: RunningPostgres) -> None:
    """TCP connections need the role's password: another one is refused."""
    url = urlsplit(postgres.urls["shipping"])
    wrong = url._replace(netloc=f"shipping:not-the-password@{url.hostname}:{url.port}")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(urlunsplit(wrong), connect_timeout=5).close()


def test_provisioning_again_keeps_the_passwords_and_works(postgres: RunningPostgres) -> None:
    """A second provisioning returns the same URLs, keeps the secrets file private, and the
    roles still connect (the tables they made are still theirs)."""
    again = postgres.server.provision(SERVICES)
    assert again == postgres.urls
    secrets_file = postgres.server.run_dir / SECRETS_FILE
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    kept = read_postgres_secrets(postgres.server.run_dir)
    assert kept is not None
    assert {service: kept[service] for service in SERVICES} == {
        service: urlsplit(url).password for service, url in again.items()
    }
    for url in again.values():
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def _processes_using(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (the data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(folder) in command and start_ticks_of(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def test_stopping_by_pid_leaves_no_postgres_process() -> None:
    """The recorded process is the postmaster itself (running as the server's user when the
    tests run as root); stopping it by that id, with a client still connected, ends it and
    every one of its processes."""
    run_dir = postgres_run_dir()
    record: ProcessRecord | None = None
    try:
        server, record = start_postgres(run_dir)
        client = psycopg.connect(server.provision(["payment"])["payment"], connect_timeout=5)
        try:
            command = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
            assert Path(command[0].decode()).name == "postgres"
            owner = Path(f"/proc/{record.pid}").stat().st_uid
            assert owner != 0 if os.geteuid() == 0 else owner == os.geteuid()
            workers = {pid: start_ticks_of(pid) for pid in _children_of(record.pid)}
            assert len(workers) >= 3, "a running postmaster has its background processes"
            assert _processes_using(server.data_dir) == [record.pid]

            assert stop_postgres(record, timeout=20)
        finally:
            client.close()
        assert not record.is_alive()
        assert [pid for pid, ticks in workers.items() if start_ticks_of(pid) == ticks] == []
        assert _processes_using(server.data_dir) == []
        assert "database system is shut down" in server.log_path.read_text()
    finally:
        if record is not None:
            stop_postgres(record)
        shutil.rmtree(run_dir, ignore_errors=True)
