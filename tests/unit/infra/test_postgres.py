"""The pure parts of the PostgreSQL engine: which installation it uses, where its passwords
are kept, and the command line it runs the server with."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.engines import postgres
from infra.engines.postgres import (
    SECRETS_FILE,
    PostgresServer,
    ensure_postgres_installed,
    ensure_postgres_secrets,
    find_postgres_bin,
    read_postgres_secrets,
)
from infra.engines.processes import MissingToolError


def _install(root: Path, version: str, tools: tuple[str, ...] = ("initdb", "postgres")) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for tool in tools:
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def test_the_highest_installed_version_is_found_by_number(tmp_path: Path) -> None:
    """15 beats 13 and 9.6 (a text sort would take 9.6), and a folder without the server
    program (a client-only package) is not a candidate."""
    _install(tmp_path, "9.6")
    _install(tmp_path, "13")
    fifteen = _install(tmp_path, "15")
    _install(tmp_path, "17", tools=("initdb",))
    assert find_postgres_bin(root=tmp_path) == fifteen


def test_the_setting_overrides_the_search(tmp_path: Path) -> None:
    """SAGA_POSTGRES_BIN_DIR is used as given, even where an installation would be found."""
    _install(tmp_path / "debian", "15")
    mine = _install(tmp_path / "mine", "14")
    assert find_postgres_bin(mine, root=tmp_path / "debian") == mine


def test_an_override_without_the_programs_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError, match="SAGA_POSTGRES_BIN_DIR"):
        find_postgres_bin(tmp_path, root=tmp_path)


@pytest.mark.parametrize("present", [False, True])
def test_no_installation_says_how_to_install_one(tmp_path: Path, present: bool) -> None:
    """No /usr/lib/postgresql (or one without a server in it): the error names the apt
    package and the setting."""
    root = tmp_path / "postgresql"
    if present:
        _install(root, "15", tools=("initdb",))
    with pytest.raises(MissingToolError) as missing:
        find_postgres_bin(root=root)
    assert "apt-get install postgresql" in str(missing.value)
    assert "SAGA_POSTGRES_BIN_DIR" in str(missing.value)


def test_passwords_are_kept_private_and_stable(tmp_path: Path) -> None:
    """The secrets file is mode 0600; a second call keeps every password and adds only the
    missing ones."""
    first = ensure_postgres_secrets(tmp_path, ["postgres", "payment"])
    assert (tmp_path / SECRETS_FILE).stat().st_mode & 0o777 == 0o600
    assert len(set(first.values())) == 2
    assert all(len(password) >= 40 for password in first.values())
    second = ensure_postgres_secrets(tmp_path, ["payment", "inventory"])
    assert {k: second[k] for k in first} == first
    assert set(second) == {"postgres", "payment", "inventory"}
    assert read_postgres_secrets(tmp_path) == second
    assert json.loads((tmp_path / SECRETS_FILE).read_text()) == second
    assert (tmp_path / SECRETS_FILE).stat().st_mode & 0o777 == 0o600


def test_no_secrets_file_reads_as_none(tmp_path: Path) -> None:
    assert read_postgres_secrets(tmp_path) is None


def _server(tmp_path: Path) -> PostgresServer:
    return PostgresServer(bin_dir=Path("/pg/bin"), run_dir=tmp_path, port=25432)


def test_as_root_the_server_runs_as_postgres_through_setpriv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setpriv execs the server (the recorded pid is the postmaster's); it listens on the
    loopback port and puts its socket inside the run directory."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    command = _server(tmp_path).command()
    split = command.index("--")
    assert command[0] == "setpriv"
    assert "--reuid=postgres" in command[:split]
    assert command[split + 1 :][:3] == ["/pg/bin/postgres", "-D", str(tmp_path / "postgres/data")]
    assert "listen_addresses=127.0.0.1" in command
    assert f"unix_socket_directories={tmp_path / 'postgres'}" in command
    assert command[command.index("-p") + 1] == "25432"


def test_as_another_user_the_server_runs_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert _server(tmp_path).command()[0] == "/pg/bin/postgres"
    assert _server(tmp_path).runs_as is None


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder under /tmp that every user may enter (pytest's own are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="saga-pg-unit-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


def test_a_folder_the_server_user_cannot_enter_is_named(open_folder: Path) -> None:
    """The first ancestor without search permission for that user is the one reported."""
    closed = open_folder / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    assert postgres._unreachable_by("nobody", closed / "inner") == closed
    assert postgres._unreachable_by("nobody", open_folder) is None


def test_service_names_must_be_plain_identifiers(tmp_path: Path) -> None:
    """A name that is no plain lower-case identifier is refused before any connection."""
    with pytest.raises(ValueError, match="cannot name a role"):
        _server(tmp_path).provision(["payment", "Inventory; DROP ROLE postgres"])


def test_an_installed_postgresql_is_found_without_installing_anything(tmp_path: Path) -> None:
    """Where a PostgreSQL is installed (as on the reference machine), fetching only finds it."""
    said: list[str] = []
    found = ensure_postgres_installed(progress=said.append)
    assert (found / "initdb").is_file() and (found / "postgres").is_file()
    assert said == []
