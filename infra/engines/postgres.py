"""PostgreSQL for the cluster topology: Debian's server, one database and one role per service.

The server runs from Debian's packages (``/usr/lib/postgresql/<version>/bin``, the highest
version installed, or ``SAGA_POSTGRES_BIN_DIR``) with everything under the run directory:

- ``<run_dir>/postgres/data``: the cluster (``initdb``), owned by the user the server runs as;
- ``<run_dir>/postgres``: its Unix socket (TCP on 127.0.0.1 is what clients use);
- ``<run_dir>/postgres-secrets.json`` (mode 0600): the superuser's and every role's password;
- ``<run_dir>/logs/postgres.log``: the server's log.

PostgreSQL refuses to run as root. As root, ``initdb`` runs through ``runuser -u postgres``
and the server through ``setpriv`` as the ``postgres`` system user, with the folder above
chowned to it: ``setpriv`` execs the server, so the recorded process id is the postmaster's
(``runuser`` would stay as its parent and SIGKILL it two seconds after a SIGTERM). As any
other user both run directly.

Every connection over TCP needs a password (``scram-sha-256``); each service's role owns its
database and may connect to no other (``CONNECT`` is revoked from ``PUBLIC`` everywhere).
"""

import json
import os
import pwd
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from infra.engines.debian import apt_install, can_install
from infra.engines.private_files import ensure_passwords, write_private
from infra.engines.processes import MissingToolError, ProcessRecord, log_tail, spawn, stop_process

__all__ = [
    "DEBIAN_POSTGRES_ROOT",
    "SECRETS_FILE",
    "SUPERUSER",
    "PostgresServer",
    "ensure_postgres_installed",
    "ensure_postgres_secrets",
    "find_postgres_bin",
    "read_postgres_secrets",
    "stop_postgres",
]

DEBIAN_POSTGRES_ROOT = Path("/usr/lib/postgresql")
"""Where Debian's postgresql packages install each major version's programs (``15/bin``)."""

SECRETS_FILE = "postgres-secrets.json"
SUPERUSER = "postgres"
"""The superuser ``initdb`` makes; only provisioning connects as it."""

_SYSTEM_USER = "postgres"
"""The system user the server runs as when this process is root (Debian's package makes it)."""
_INSTALL_HINT = "install it (apt-get install postgresql) or set SAGA_POSTGRES_BIN_DIR"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def find_postgres_bin(override: Path | None = None, root: Path = DEBIAN_POSTGRES_ROOT) -> Path:
    """The folder holding ``initdb`` and ``postgres``: ``override`` if given, else the highest
    major version under ``root`` (Debian's ``/usr/lib/postgresql/<version>/bin``).

    Raises:
        MissingToolError: there is no such folder (the message says how to get one).
    """
    if override is not None:
        if _is_bin_dir(override):
            return override
        raise MissingToolError(
            f"no initdb and postgres in {override} (SAGA_POSTGRES_BIN_DIR): PostgreSQL needs "
            "both; point the setting at the bin folder of an installed PostgreSQL or unset it"
        )
    versions = []
    if root.is_dir():
        for entry in root.iterdir():
            version = tuple(int(part) for part in re.findall(r"\d+", entry.name))
            if version and _is_bin_dir(entry / "bin"):
                versions.append((version, entry / "bin"))
    if not versions:
        raise MissingToolError(
            f"PostgreSQL not found (no {root}/<version>/bin with initdb and postgres): the "
            f"cluster topology needs it; {_INSTALL_HINT}"
        )
    return max(versions)[1]


def ensure_postgres_installed(
    override: Path | None = None, *, progress: Callable[[str], None] = print
) -> Path:
    """The bin folder of an installed PostgreSQL, installing Debian's package first where it is
    missing and this process may (root, with apt-get), showing apt's progress.

    Raises:
        MissingToolError: it is missing and cannot be installed from here (the message says how).
    """
    try:
        return find_postgres_bin(override)
    except MissingToolError:
        if override is not None or not can_install():
            raise
    progress(
        "PostgreSQL is not installed: installing Debian's package (apt-get install postgresql)"
    )
    apt_install(["postgresql"], hint=_INSTALL_HINT)
    return find_postgres_bin()


def _is_bin_dir(folder: Path) -> bool:
    return all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "postgres"))


def read_postgres_secrets(run_dir: Path) -> dict[str, str] | None:
    """The passwords kept in ``<run_dir>/postgres-secrets.json``, or None if there are none."""
    try:
        kept = json.loads((run_dir / SECRETS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return {str(name): str(password) for name, password in kept.items()}


def ensure_postgres_secrets(run_dir: Path, roles: Iterable[str]) -> dict[str, str]:
    """Every kept password, with one made (URL-safe, 32 random bytes) for each of ``roles``
    that has none; the file is rewritten (mode 0600) only when a password was added."""
    return ensure_passwords(
        run_dir / SECRETS_FILE, read_postgres_secrets(run_dir), roles, keep_others=True
    )


@dataclass(frozen=True)
class PostgresServer:
    """One PostgreSQL server on loopback, its files under ``run_dir``."""

    bin_dir: Path
    run_dir: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def home(self) -> Path:
        """The folder the server's user owns: its data directory and its Unix socket."""
        return self.run_dir / "postgres"

    @property
    def data_dir(self) -> Path:
        """The database cluster ``initdb`` makes."""
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        """The server's output."""
        return self.run_dir / "logs" / "postgres.log"

    @property
    def runs_as(self) -> str | None:
        """The system user the server runs as, or None for this process's own user."""
        return _SYSTEM_USER if os.geteuid() == 0 else None

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser's URL (provisioning only: no service connects as it)."""
        password = ensure_postgres_secrets(self.run_dir, [SUPERUSER])[SUPERUSER]
        return self._url(SUPERUSER, password, database)

    def _url(self, role: str, password: str, database: str) -> str:
        secret = quote(password, safe="")
        return f"postgresql://{quote(role)}:{secret}@{self.host}:{self.port}/{quote(database)}"

    def init(self) -> None:
        """Make the database cluster once (``initdb``); an existing one is left as it is.

        Raises:
            RuntimeError: the server's user cannot reach the run directory, or ``initdb``
                failed (its output is in the message).
        """
        password = ensure_postgres_secrets(self.run_dir, [SUPERUSER])[SUPERUSER]
        self._prepare_home()
        if (self.data_dir / "PG_VERSION").exists():
            return
        # initdb reads the superuser's password from a file the server's user can read;
        # it is removed as soon as initdb is done (the kept copy is the secrets file).
        pwfile = self.home / ".initdb-password"
        write_private(pwfile, password + "\n")
        self._give_to_server_user(pwfile)
        try:
            result = subprocess.run(
                [*self._as_server_user("runuser"), str(self.bin_dir / "initdb"),
                 "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                 "--encoding=UTF8", "--no-locale"],
                capture_output=True, text=True, check=False, cwd=self.home,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.data_dir}:\n{result.stdout}{result.stderr}")

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        user = self.runs_as
        if user is None:
            return
        blocked = _unreachable_by(user, self.home.resolve().parent)
        if blocked is not None:
            raise RuntimeError(
                f"PostgreSQL runs as the system user {user!r}, which cannot enter {blocked} "
                f"(mode {stat.S_IMODE(blocked.stat().st_mode):04o}): put the run directory "
                "(SAGA_RUN_DIR) where that user can reach it"
            )
        self._give_to_server_user(self.home)
        if self.data_dir.exists():
            self._give_to_server_user(self.data_dir)

    def _give_to_server_user(self, path: Path) -> None:
        if self.runs_as is not None:
            entry = pwd.getpwnam(self.runs_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _as_server_user(self, how: str) -> list[str]:
        user = self.runs_as
        if user is None:
            return []
        if how == "runuser":
            return ["runuser", "-u", user, "--"]
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]

    def command(self) -> list[str]:
        """The command line that runs the server (through ``setpriv`` as root: it execs)."""
        return [
            *self._as_server_user("setpriv"), str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir), "-p", str(self.port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={self.home}",
        ]  # fmt: skip

    def start(self, *, timeout: float = 60.0) -> ProcessRecord:
        """Make the cluster if needed, start the server and wait until it accepts a connection.

        Returns:
            The record of the postmaster's process (stop it with :func:`stop_postgres`).

        Raises:
            RuntimeError: the server did not answer within ``timeout`` seconds, or ended
                (the end of its log is in the message); it is stopped.
        """
        self.init()
        _, record = spawn("postgres", self.command(), self.log_path, cwd=self.home)
        try:
            self.wait_until_ready(record, timeout=timeout)
        except BaseException:
            stop_postgres(record)
            raise
        return record

    def wait_until_ready(self, record: ProcessRecord, *, timeout: float = 60.0) -> None:
        """Wait until the superuser can connect over TCP and run a query.

        Raises:
            RuntimeError: the server ended, or did not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        url = self.admin_url()
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError as error:
                last = str(error).strip()
            else:
                return
            if not record.is_alive():
                raise RuntimeError(f"PostgreSQL ended during start:\n{log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not answer on {self.host}:{self.port} within {timeout:.0f} s "
                    f"({last}):\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def provision(self, services: Sequence[str]) -> dict[str, str]:
        """One database and one role per service, the role owning its database and allowed
        to connect to it only; passwords kept in the secrets file. Running it again changes
        nothing but sets the kept passwords once more.

        Returns:
            Each service's database URL (``postgresql://role:password@host:port/db``).
        """
        for service in services:
            _check_name(service)
        return {service: self.provision_role(service, [service])[service] for service in services}

    def provision_role(self, role: str, databases: Sequence[str]) -> dict[str, str]:
        """A role owning ``databases`` and allowed to connect to those only (Temporal's server
        keeps its history and its visibility in two); its password kept in the secrets file.
        Running it again changes nothing but sets the kept password once more.

        Returns:
            Each database's URL as ``role`` (``postgresql://role:password@host:port/db``).
        """
        for name in (role, *databases):
            _check_name(name)
        password = ensure_postgres_secrets(self.run_dir, [role])[role]
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            # Nobody but a database's own role (and the superuser) may connect to it,
            # nor to the superuser's databases.
            for shared in ("postgres", "template1"):
                conn.execute(
                    sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                        sql.Identifier(shared)
                    )
                )
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            conn.execute(
                sql.SQL(
                    "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                ).format(
                    sql.SQL("ALTER" if exists else "CREATE"),
                    sql.Identifier(role),
                    sql.Literal(password),
                )
            )
            for name in databases:
                database, owner = sql.Identifier(name), sql.Identifier(role)
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, owner))
                else:
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, owner))
                conn.execute(
                    sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(database)
                )
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, owner))
        return {name: self._url(role, password, name) for name in databases}


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} cannot name a role and a database: [a-z][a-z0-9_]*")


def _unreachable_by(user: str, folder: Path) -> Path | None:
    """The first of ``folder`` and its ancestors that ``user`` may not enter (no search
    permission for it), or None when it can reach ``folder``."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for path in [*reversed(folder.parents), folder]:
        info = path.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return path
    return None


def stop_postgres(record: ProcessRecord, *, timeout: float = 20.0) -> bool:
    """Stop the recorded postmaster: SIGINT first (PostgreSQL's fast shutdown: open sessions
    are rolled back and closed, then a checkpoint), then as :func:`stop_process` does.

    A bare SIGTERM is PostgreSQL's smart shutdown, which waits for every client to leave.

    Returns:
        True if the server was running and has been stopped, False if it was not running.
    """
    if not record.is_alive():
        return False
    try:
        os.kill(record.pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    stop_process(record, timeout=timeout)
    return True
