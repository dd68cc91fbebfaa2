"""Temporal's full server and its Web UI, built from source with the Go command.

Temporal publishes no server binary that this project could pin the way it pins the CLI's
wheel, so both are built per version with ``go install`` from the Go module proxy, by one
function, :func:`ensure_go_module`, and kept in a cache folder per version:

- :func:`ensure_temporal_server`: ``go.temporal.io/server`` (about 5 minutes on two cores the
  first time, and 3 GB of Go's own module and build caches) under
  ``SAGA_TEMPORAL_SERVER_CACHE_DIR/<version>``: ``bin/server``, the server (frontend, history,
  matching and worker services in one process), and ``bin/sql``, temporal-sql-tool, which sets
  up and migrates the server's PostgreSQL schemas (it carries them inside);
- :func:`ensure_temporal_ui`: ``github.com/temporalio/ui-server/v2``, the Web UI's server (the
  one the CLI embeds, its built pages inside), under ``SAGA_TEMPORAL_UI_CACHE_DIR/<version>``:
  ``bin/server`` (about 20 s once the server's build has filled Go's caches);
- in each version folder, ``build.log``: the Go command's output of the build.

:mod:`infra.engines.temporal_full` and :mod:`infra.engines.temporal_ui` run them.
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
from pathlib import Path, PurePosixPath

from infra.engines.processes import MissingToolError

__all__ = [
    "DEFAULT_GO_TOOLCHAIN",
    "DEFAULT_UI_VERSION",
    "DEFAULT_VERSION",
    "MODULE",
    "TEMPORAL_SERVER",
    "TEMPORAL_UI",
    "GoModule",
    "TemporalServerBuild",
    "TemporalUiBuild",
    "ensure_go_module",
    "ensure_temporal_server",
    "ensure_temporal_ui",
]

DEFAULT_VERSION = "1.32.2"
DEFAULT_UI_VERSION = "2.54.1"
"""The Web UI of the CLI 1.9.1's dev server (v2.58.1 does not build from this proxy)."""
DEFAULT_GO_TOOLCHAIN = "go1.27.3"
"""The Go release ``go.temporal.io/server`` 1.32 needs (its go.mod asks for 1.26.10 or newer)."""

MODULE = "go.temporal.io/server"
_PROGRESS_EVERY = 15.0
_GO_HINT = (
    "install Go (https://go.dev/dl, or apt-get install golang-go) or point SAGA_GO at the go "
    "command; it fetches the Go release the build needs by itself"
)


@dataclass(frozen=True)
class GoModule:
    """Commands of one Go module that :func:`ensure_go_module` builds with ``go install``."""

    label: str
    """What the build is called in its progress lines and errors."""
    path: str
    """The module path (its versions are tagged ``v<version>``)."""
    packages: tuple[str, ...]
    """The module's commands, each installed as ``bin/<last element>``."""
    first_build: str
    """How long the first build takes, said when it starts."""

    def binaries(self, root: Path) -> list[Path]:
        """The executables a build of this module puts under ``root``."""
        return [root / "bin" / PurePosixPath(package).name for package in self.packages]

    def is_built(self, root: Path) -> bool:
        """Whether every executable is under ``root`` (a build moves them in only when it
        succeeded)."""
        return all(os.access(binary, os.X_OK) for binary in self.binaries(root))


TEMPORAL_SERVER = GoModule(
    label="Temporal's server",
    path=MODULE,
    packages=("cmd/server", "cmd/tools/sql"),
    first_build="the first time takes about 5 minutes on two cores and 3 GB of Go's caches",
)
TEMPORAL_UI = GoModule(
    label="Temporal's Web UI",
    path="github.com/temporalio/ui-server/v2",
    packages=("cmd/server",),
    first_build="about 20 s once Temporal's server has been built (Go's caches hold the rest)",
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
        return TEMPORAL_SERVER.is_built(self.root)


@dataclass(frozen=True)
class TemporalUiBuild:
    """Temporal's Web UI server of one version, built under ``root``."""

    root: Path

    @property
    def server(self) -> Path:
        """The UI server executable (it carries the UI's pages and assets)."""
        return self.root / "bin" / "server"

    def is_complete(self) -> bool:
        """Whether the executable is there."""
        return TEMPORAL_UI.is_built(self.root)


def ensure_temporal_server(
    cache_dir: Path,
    version: str = DEFAULT_VERSION,
    *,
    go: str = "go",
    toolchain: str = DEFAULT_GO_TOOLCHAIN,
    progress: Callable[[str], None] = print,
) -> TemporalServerBuild:
    """Temporal's server and SQL tool of ``version`` under ``cache_dir/<version>``, built the
    first time (about 5 minutes on two cores; see :func:`ensure_go_module`).

    Raises:
        MissingToolError: the Go command is missing, or the build failed (the message names
            its log).
    """
    root = ensure_go_module(
        TEMPORAL_SERVER, cache_dir, version, go=go, toolchain=toolchain, progress=progress
    )
    return TemporalServerBuild(root)


def ensure_temporal_ui(
    cache_dir: Path,
    version: str = DEFAULT_UI_VERSION,
    *,
    go: str = "go",
    toolchain: str = DEFAULT_GO_TOOLCHAIN,
    progress: Callable[[str], None] = print,
) -> TemporalUiBuild:
    """Temporal's Web UI server of ``version`` under ``cache_dir/<version>``, built the first
    time (see :func:`ensure_go_module`).

    Raises:
        MissingToolError: the Go command is missing, or the build failed (the message names
            its log).
    """
    root = ensure_go_module(
        TEMPORAL_UI, cache_dir, version, go=go, toolchain=toolchain, progress=progress
    )
    return TemporalUiBuild(root)


def ensure_go_module(
    module: GoModule,
    cache_dir: Path,
    version: str,
    *,
    go: str = "go",
    toolchain: str = DEFAULT_GO_TOOLCHAIN,
    progress: Callable[[str], None] = print,
) -> Path:
    """The folder ``cache_dir/<version>`` holding ``module``'s commands of ``version`` in
    ``bin/``, built with ``go install`` from the Go module proxy the first time, showing how
    many packages are compiled as it goes. Two processes building at once take turns: the
    second finds the first's build.

    Raises:
        MissingToolError: the Go command is missing, or the build failed (the message names
            its log).
    """
    root = cache_dir / version
    if module.is_built(root):
        return root
    go_path = shutil.which(go)
    if go_path is None:
        raise MissingToolError(
            f"{go!r} not found: {module.label} is built from source with Go; {_GO_HINT}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{version}.lock"):
        if module.is_built(root):
            return root
        _go_install(go_path, module, root, version, toolchain, progress)
    return root


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
    module: GoModule,
    root: Path,
    version: str,
    toolchain: str,
    progress: Callable[[str], None],
) -> None:
    staging = root.with_name(f".{root.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    log_path = staging / "build.log"
    packages = [f"{module.path}/{package}@v{version}" for package in module.packages]
    env = {**os.environ, "GOTOOLCHAIN": toolchain, "GOBIN": str(staging / "bin")}
    progress(
        f"{module.label} {version}: building it from {module.path} with Go ({toolchain}); "
        f"{module.first_build}"
    )
    started = time.monotonic()
    counts = {"compiled": 0, "downloaded": 0}
    tail: deque[str] = deque(maxlen=5)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            # -s -w: no symbol table or DWARF, which only debuggers read: a shorter link and a
            # binary a third smaller.
            [go, "install", "-v", "-ldflags=-s -w", *packages],
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
                    f"building {module.label}: {counts['compiled']} packages compiled, "
                    f"{counts['downloaded']} modules downloaded, "
                    f"{time.monotonic() - started:.0f} s"
                )
            else:
                break
        reader.join()
    if code != 0 or not module.is_built(staging):
        kept = root.with_name(f"build-{root.name}-failed.log")
        shutil.copyfile(log_path, kept)
        shutil.rmtree(staging, ignore_errors=True)
        last = tail[-1] if tail else "no output"
        raise MissingToolError(
            f"building {module.label} {version} failed (go install exit {code}: {last}); "
            f"the Go command's output is in {kept}: check that the Go module proxy "
            "(GOPROXY) is reachable, then run `saga fetch` again"
        )
    shutil.rmtree(root, ignore_errors=True)
    staging.replace(root)
    compiled = counts["compiled"] or "no"  # none: Go's build cache held every package
    progress(
        f"{module.label} {version} built in {time.monotonic() - started:.0f} s "
        f"({compiled} packages compiled): {root}"
    )
