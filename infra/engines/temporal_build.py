"""Temporal's full server, built from source: ``go.temporal.io/server`` with the Go command.

Temporal publishes no server binary that this project could pin the way it pins the CLI's
wheel, so :func:`ensure_temporal_server` builds one per version with ``go install`` from the Go
module proxy (about 5 minutes on two cores the first time, and 3 GB of Go's own module and
build caches) and keeps it under ``SAGA_TEMPORAL_SERVER_CACHE_DIR/<version>``:

- ``bin/server``: the server (frontend, history, matching and worker services in one process);
- ``bin/sql``: temporal-sql-tool, which sets up and migrates the server's PostgreSQL schemas
  (it carries them inside: ``--schema-name postgresql/v12/temporal``);
- ``build.log``: the Go command's output of the build.

:mod:`infra.engines.temporal_full` runs it.
"""

import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.engines.processes import MissingToolError

__all__ = [
    "DEFAULT_GO_TOOLCHAIN",
    "DEFAULT_VERSION",
    "MODULE",
    "TemporalServerBuild",
    "ensure_temporal_server",
]

DEFAULT_VERSION = "1.32.2"
DEFAULT_GO_TOOLCHAIN = "go1.27.3"
"""The Go release ``go.temporal.io/server`` 1.32 needs (its go.mod asks for 1.26.10 or newer)."""

MODULE = "go.temporal.io/server"
_PACKAGES = ("cmd/server", "cmd/tools/sql")
_PROGRESS_EVERY = 15.0
_GO_HINT = (
    "install Go (https://go.dev/dl, or apt-get install golang-go) or point SAGA_GO at the go "
    "command; it fetches the Go release the server needs by itself"
)


@dataclass(frozen=True)
class TemporalServerBuild:
    """Temporal's server and SQL tool of one version, built under ``root``."""

    root: Path

    @property
    def server(self) -> Path:
        """The server executable."""
        return self.root / "bin" / "server"

    @property
    def sql_tool(self) -> Path:
        """temporal-sql-tool, which sets up and migrates the schemas."""
        return self.root / "bin" / "sql"

    def is_complete(self) -> bool:
        """Whether both executables are there (a build moves them in only when it succeeded)."""
        return all(os.access(tool, os.X_OK) for tool in (self.server, self.sql_tool))


def ensure_temporal_server(
    cache_dir: Path,
    version: str = DEFAULT_VERSION,
    *,
    go: str = "go",
    toolchain: str = DEFAULT_GO_TOOLCHAIN,
    progress: Callable[[str], None] = print,
) -> TemporalServerBuild:
    """Temporal's server and SQL tool of ``version`` under ``cache_dir/<version>``, built with
    ``go install`` from the Go module proxy the first time (about 5 minutes on two cores),
    showing how many packages are compiled as it goes. Two processes building at once take
    turns: the second finds the first's build.

    Raises:
        MissingToolError: the Go command is missing, or the build failed (the message names
            its log).
    """
    build = TemporalServerBuild(cache_dir / version)
    if build.is_complete():
        return build
    go_path = shutil.which(go)
    if go_path is None:
        raise MissingToolError(
            f"{go!r} not found: Temporal's full server is built from source with Go; {_GO_HINT}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{version}.lock"):
        if build.is_complete():
            return build
        _go_install(go_path, build, version, toolchain, progress)
    return build


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _go_install(
    go: str,
    build: TemporalServerBuild,
    version: str,
    toolchain: str,
    progress: Callable[[str], None],
) -> None:
    staging = build.root.with_name(f".{build.root.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    log_path = staging / "build.log"
    packages = [f"{MODULE}/{package}@v{version}" for package in _PACKAGES]
    env = {**os.environ, "GOTOOLCHAIN": toolchain, "GOBIN": str(staging / "bin")}
    progress(
        f"Temporal's server {version}: building it from {MODULE} with Go ({toolchain}); "
        "the first time takes about 5 minutes on two cores and 3 GB of Go's caches"
    )
    started = time.monotonic()
    counts = {"compiled": 0, "downloaded": 0}
    tail: deque[str] = deque(maxlen=5)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [go, "install", "-v", *packages],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=staging,
        )
        assert process.stdout is not None
        output = process.stdout

        def read() -> None:
            # `go install -v` names each package as it compiles it; the rest is downloads.
            for line in output:
                log.write(line)
                text = line.strip()
                if text.startswith("go: downloading"):
                    counts["downloaded"] += 1
                elif text and not text.startswith("go: "):
                    counts["compiled"] += 1
                if text:
                    tail.append(text)

        reader = threading.Thread(target=read, name="go-install-output", daemon=True)
        reader.start()
        while True:
            try:
                code = process.wait(timeout=_PROGRESS_EVERY)
            except subprocess.TimeoutExpired:
                progress(
                    f"building Temporal's server: {counts['compiled']} packages compiled, "
                    f"{counts['downloaded']} modules downloaded, "
                    f"{time.monotonic() - started:.0f} s"
                )
            else:
                break
        reader.join()
    if code != 0 or not TemporalServerBuild(staging).is_complete():
        kept = build.root.with_name(f"build-{build.root.name}-failed.log")
        shutil.copyfile(log_path, kept)
        shutil.rmtree(staging, ignore_errors=True)
        last = tail[-1] if tail else "no output"
        raise MissingToolError(
            f"building Temporal's server {version} failed (go install exit {code}: {last}); "
            f"the Go command's output is in {kept}: check that the Go module proxy "
            "(GOPROXY) is reachable, then run `saga fetch` again"
        )
    shutil.rmtree(build.root, ignore_errors=True)
    staging.replace(build.root)
    compiled = counts["compiled"] or "no"  # none: Go's build cache held every package
    progress(
        f"Temporal's server {version} built in {time.monotonic() - started:.0f} s "
        f"({compiled} packages compiled): {build.root}"
    )
