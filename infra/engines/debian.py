"""Debian's packages the stack needs, installed with apt-get where they are missing.

Only as root, with apt-get on the path: elsewhere the caller's error says what to install.
``apt-get update`` runs once per process, before the first install.
"""

import os
import shutil
import subprocess
import threading
from collections.abc import Callable

from infra.engines.processes import MissingToolError

__all__ = ["apt_install", "can_install", "ensure_chromium_installed"]

CHROMEDRIVER = "/usr/bin/chromedriver"
_CHROMIUM_HINT = (
    "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
)
_updated = threading.Event()
_one_at_a_time = threading.Lock()


def can_install() -> bool:
    """Whether this process may install Debian's packages (root, with apt-get)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str], *, hint: str) -> None:
    """``apt-get install --no-install-recommends packages``, after one ``apt-get update``;
    apt's own progress goes to the terminal.

    Raises:
        MissingToolError: apt-get failed; the message ends with ``hint``.
    """
    apt = shutil.which("apt-get") or "apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    commands = [] if _updated.is_set() else [[apt, "update"]]
    commands.append([apt, "install", "-y", "--no-install-recommends", *packages])
    with _one_at_a_time:
        for command in commands:
            done = subprocess.run(command, env=env, check=False)
            if done.returncode != 0:
                raise MissingToolError(
                    f"{' '.join(command)} failed (exit {done.returncode}): {hint}"
                )
            if command[1] == "update":
                _updated.set()


def ensure_chromium_installed(*, progress: Callable[[str], None] = print) -> str | None:
    """ChromeDriver's path, installing Debian's ``chromium`` and ``chromium-driver`` first
    where it is missing and this process may: the web pages' browser tests drive them.
    ``None`` (and a line saying what to install) where it cannot be installed from here."""
    if os.access(CHROMEDRIVER, os.X_OK):
        return CHROMEDRIVER
    if not can_install():
        progress(f"note: {CHROMEDRIVER} is missing, the browser tests need it: {_CHROMIUM_HINT}")
        return None
    progress("installing Debian's chromium and chromium-driver (for the browser tests)")
    apt_install(["chromium", "chromium-driver"], hint=_CHROMIUM_HINT)
    return CHROMEDRIVER
