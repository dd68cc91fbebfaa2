"""Apicurio Registry, the schema registry beside Kafka, from Maven Central.

Apicurio publishes its ready application (a Quarkus "fast jar") on Maven Central as
``io.apicurio:apicurio-registry-app:<version>:tar.gz:all``; :func:`ensure_apicurio` has
Maven fetch it once, showing its progress, and unpacks it into the cache. It needs Java 21
or newer (:func:`find_java`). One process, on loopback, everything under the run directory:

- ``<run_dir>/registry/config/application.properties`` (mode 0600): where it keeps its
  schemas and, when secured, its users and their passwords (Quarkus reads this file from the
  folder it runs in); the ports and the storage kind are on its command line;
- its schemas: an H2 database file under ``<run_dir>/registry/`` in the embedded topology,
  its own PostgreSQL database (role ``registry``) in the cluster topology. Both outlive a
  restart, so an event's schema id never changes (the default in-memory H2 forgets them);
- its API on ``schema_registry_url``'s port, its management interface (``/health/ready``,
  ``/metrics``) on the port above it (Quarkus would take 9000 otherwise).
"""

import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.engines.private_files import write_private
from infra.engines.processes import ProcessRecord, log_tail, require_tool

__all__ = [
    "JAVA_FOR_REGISTRY",
    "REGISTRY_ROLES",
    "RegistryDatabase",
    "RegistryUser",
    "SchemaRegistryServer",
    "ensure_apicurio",
    "find_java",
    "java_version",
]

JAVA_FOR_REGISTRY = 21
"""Apicurio Registry 3 is built for Java 21 (class file version 65)."""
_ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
_COMPLETE_MARKER = ".complete"
_READY_PATH = "/health/ready"
_JVM_DIR = Path("/usr/lib/jvm")
REGISTRY_ROLES = ("sr-admin", "sr-developer", "sr-readonly")
"""Apicurio's roles: administer (rules, configuration), write schemas, read them."""


def ensure_apicurio(
    cache_dir: Path,
    version: str,
    *,
    maven: str = "mvn",
    progress: Callable[[str], None] = print,
) -> Path:
    """The folder of Apicurio Registry ``version``'s application (``quarkus-run.jar`` in it),
    fetched from Maven Central by Maven and unpacked the first time, its download shown as it
    grows.

    Raises:
        MissingToolError: Maven is not installed.
        RuntimeError: Maven could not fetch it (its last lines are in the message).
    """
    app = cache_dir / version
    if (app / _COMPLETE_MARKER).exists():
        return app
    mvn = require_tool(
        maven,
        "fetching Apicurio Registry",
        "install Maven (apt-get install maven) or set SAGA_MAVEN",
    )
    if app.exists():
        shutil.rmtree(app)  # an interrupted unpacking leaves part of the files
    download = cache_dir / f".download-{version}"
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    artifact = _ARTIFACT.format(version=version)
    progress(
        f"Fetching Apicurio Registry {version} from Maven Central (about 151 MiB, first time only)"
    )
    command = [
        mvn,
        "-B",
        "dependency:copy",
        f"-Dartifact={artifact}",
        f"-DoutputDirectory={download}",
    ]
    tail: list[str] = []
    done = threading.Event()
    watcher = threading.Thread(target=_show_download, args=(version, progress, done), daemon=True)
    watcher.start()
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=download
        ) as maven_run:
            assert maven_run.stdout is not None
            for line in maven_run.stdout:
                tail = [*tail[-19:], line.rstrip()]
    finally:
        done.set()
        watcher.join()
    archives = list(download.glob("*.tar.gz"))
    if maven_run.returncode != 0 or not archives:
        shutil.rmtree(download, ignore_errors=True)
        raise RuntimeError(
            f"Maven could not fetch {artifact} (is Maven Central reachable?):\n" + "\n".join(tail)
        )
    progress(f"Unpacking Apicurio Registry {version} into {app}")
    staging = cache_dir / f".unpack-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archives[0]) as archive:
        archive.extractall(staging, filter="data")
    jars = list(staging.rglob("quarkus-run.jar"))
    if not jars:
        raise RuntimeError(f"{archives[0].name} holds no quarkus-run.jar: is {artifact} right?")
    jars[0].parent.rename(app)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(download, ignore_errors=True)
    (app / _COMPLETE_MARKER).write_text(version)
    progress(f"Apicurio Registry {version} ready in {app}")
    return app


def _show_download(version: str, progress: Callable[[str], None], done: threading.Event) -> None:
    """Say how much of the archive Maven has downloaded, every few seconds, until ``done``.

    Maven writes the archive into its local repository under a temporary name while it
    downloads (and shows no progress in batch mode), so the size of that file is the
    progress."""
    folder = Path.home() / ".m2" / "repository" / "io" / "apicurio" / "apicurio-registry-app"
    folder /= version
    shown = 0
    while not done.wait(3.0):
        sizes = [path.stat().st_size for path in folder.glob("*all.tar.gz*") if path.is_file()]
        size = max(sizes, default=0) // (1 << 20)
        if size > shown:
            progress(f"  {size} MiB downloaded")
            shown = size


def java_version(java: str | Path) -> int | None:
    """The major version of the Java executable ``java`` (21 for "21.0.5"), or None when it
    cannot be run or says none: from the ``release`` file of its JDK when there is one (no
    JVM started), else from ``java -version``."""
    executable = shutil.which(str(java))
    if executable is None:
        return None
    home = Path(executable).resolve().parent.parent
    try:
        release = (home / "release").read_text()
    except OSError:
        release = ""
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    if match is None:
        try:
            run = subprocess.run(
                [executable, "-version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r'version "(\d+)', run.stderr)
    return int(match.group(1)) if match else None


def find_java(explicit: str | None = None, *, at_least: int = JAVA_FOR_REGISTRY) -> str:
    """A Java executable of version ``at_least`` or newer: ``explicit`` when given, else
    ``java`` on the PATH when it is new enough, else the newest JDK under /usr/lib/jvm.

    Raises:
        RuntimeError: none is new enough (the message says what to install or set).
    """
    if explicit:
        version = java_version(explicit)
        if version is None or version < at_least:
            raise RuntimeError(
                f"SAGA_SCHEMA_REGISTRY_JAVA={explicit} is Java {version or 'that cannot run'}: "
                f"Apicurio Registry needs Java {at_least} or newer"
            )
        return explicit
    candidates: dict[str, int] = {}
    on_path = java_version("java")
    if on_path is not None:
        candidates["java"] = on_path
    for home in sorted(_JVM_DIR.glob("*")) if _JVM_DIR.is_dir() else []:
        executable = home / "bin" / "java"
        version = java_version(executable) if executable.is_file() else None
        if version is not None:
            candidates[str(executable)] = version
    suitable = {java: version for java, version in candidates.items() if version >= at_least}
    if not suitable:
        found = ", ".join(f"{java} ({v})" for java, v in candidates.items()) or "none"
        raise RuntimeError(
            f"Apicurio Registry needs Java {at_least} or newer; found {found}: install one "
            f"(e.g. a Temurin JDK under {_JVM_DIR}) or set SAGA_SCHEMA_REGISTRY_JAVA"
        )
    return max(suitable, key=lambda java: (suitable[java], java != "java"))


@dataclass(frozen=True)
class RegistryDatabase:
    """A PostgreSQL database the registry keeps its schemas in."""

    host: str
    port: int
    name: str
    user: str
    password: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.name}"


@dataclass(frozen=True)
class RegistryUser:
    """One user of a secured registry: its password and its Apicurio role."""

    password: str
    role: str


@dataclass(frozen=True)
class SchemaRegistryServer:
    """Apicurio Registry on loopback: its API on :attr:`port`, its management interface on
    the port above."""

    app: Path
    """The unpacked application (:func:`ensure_apicurio`)."""
    run_dir: Path
    port: int
    java: str
    heap: str = "256m"
    database: RegistryDatabase | None = None
    """PostgreSQL to keep the schemas in; None: an H2 file under the run directory."""
    users: Mapping[str, RegistryUser] = field(default_factory=dict)
    """Users and passwords it asks for with HTTP basic authentication; none: it asks for
    nothing."""
    host: str = "127.0.0.1"

    @property
    def management_port(self) -> int:
        return self.port + 1

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    @property
    def home(self) -> Path:
        """The folder it runs in: its configuration and, embedded, its database file."""
        return self.run_dir / "registry"

    @property
    def config_path(self) -> Path:
        return self.home / "config" / "application.properties"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "logs" / "registry.log"

    def command(self) -> list[str]:
        """The command line: what may change between runs (ports, storage kind, heap) is on
        it, so `saga up` can tell a registry started with other settings; secrets are not."""
        storage = "postgresql" if self.database is not None else "h2"
        return [
            self.java,
            f"-Xmx{self.heap}",
            # Ready in 2.5 s instead of 4 on two cores: the C1 compiler alone and the serial
            # collector spend less CPU at start, and a registry's load is light (clients
            # cache every schema by id).
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Dquarkus.http.host={self.host}",
            f"-Dquarkus.http.port={self.port}",
            f"-Dquarkus.management.host={self.host}",
            f"-Dquarkus.management.port={self.management_port}",
            "-Dapicurio.storage.kind=sql",
            f"-Dapicurio.storage.sql.kind={storage}",
            f"-Dquarkus.http.auth.basic={'true' if self.users else 'false'}",
            "-jar",
            str(self.app / "quarkus-run.jar"),
        ]

    def properties(self) -> dict[str, str]:
        """What :attr:`config_path` holds: where the schemas are kept, and the users."""
        props: dict[str, str] = {}
        if self.database is None:
            props["apicurio.datasource.url"] = f"jdbc:h2:file:{self.home / 'data' / 'registry'}"
        else:
            props["apicurio.datasource.url"] = self.database.jdbc_url
            props["apicurio.datasource.username"] = self.database.user
            props["apicurio.datasource.password"] = self.database.password
        props.update(self._security_properties())
        return props

    def _security_properties(self) -> dict[str, str]:
        if not self.users:
            return {}
        props = {
            "quarkus.security.users.embedded.enabled": "true",
            "quarkus.security.users.embedded.plain-text": "true",
            # Without it every user that signs in may do everything (register, or set a
            # subject's compatibility to NONE); with it each user's role decides.
            "apicurio.auth.role-based-authorization": "true",
        }
        for name, user in self.users.items():
            props[f"quarkus.security.users.embedded.users.{name}"] = user.password
            props[f"quarkus.security.users.embedded.roles.{name}"] = user.role
        return props

    def write_config(self) -> Path:
        """Write :meth:`properties` (mode 0600: it may hold passwords) and return its path."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Written by saga-orchestrator for this run (infra/engines/schema_registry.py)."]
        lines += [f"{key}={_escaped(value)}" for key, value in self.properties().items()]
        write_private(self.config_path, "\n".join(lines) + "\n")
        return self.config_path

    def wait_until_ready(self, record: ProcessRecord, deadline: float) -> None:
        """Wait until the registry of ``record`` says it is ready (its storage reachable), by
        ``deadline`` (``time.monotonic()``).

        Raises:
            RuntimeError: it ended, or was not ready in time (the end of its log is in the
                message).
        """
        last = "no answer"
        with httpx.Client(timeout=5.0) as http:
            while True:
                try:
                    response = http.get(self.management_url + _READY_PATH)
                except httpx.HTTPError as error:
                    last = f"{type(error).__name__}: {error}"
                else:
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text.strip()[:200]}"
                if not record.is_alive():
                    raise RuntimeError(
                        f"Apicurio Registry ended during start:\n{log_tail(self.log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Apicurio Registry at {self.url} was not ready in time ({last}):\n"
                        f"{log_tail(self.log_path)}"
                    )
                time.sleep(0.2)


def _escaped(value: str) -> str:
    """``value`` as a .properties value: backslashes doubled (a path or password keeps them)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")
