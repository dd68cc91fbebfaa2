"""The `saga` command as a person runs it: a process of its own, given only the settings the
test names (none of the ``SAGA_*`` variables of the environment the tests run in)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from infra.config.settings import ENV_PREFIX
from infra.engines.processes import reserve_ports
from tests.support.stacks import stack_ports

SAGA = (sys.executable, "-m", "cli")


def without_settings() -> dict[str, str]:
    """This process's environment without any ``SAGA_*`` setting."""
    return {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}


def own_stack_env(run_dir: Path) -> dict[str, str]:
    """Settings for a stack of its own: ``run_dir`` and free ports for everything, no two the
    same (Temporal's HTTP and metrics ports and each process's SDK metrics port free too)."""
    with reserve_ports() as ports:
        addresses = stack_ports(ports)
    return {
        **without_settings(),
        f"{ENV_PREFIX}RUN_DIR": str(run_dir),
        **{ENV_PREFIX + name.upper(): str(value) for name, value in addresses.items()},
        f"{ENV_PREFIX}STARTUP_TIMEOUT_SECONDS": "90",
    }


def run_saga(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """`saga ARGS` with ``env`` (and ``stdin``), its output captured; it may fail."""
    return subprocess.run(
        [*SAGA, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one `saga: ...` line of an expected failure, which exited with ``code``."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("saga: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def saga_ps(env: dict[str, str]) -> dict[str, dict[str, object]]:
    """`saga ps --json`: each component's row by its name."""
    ps = run_saga(env, "ps", "--json")
    assert ps.returncode == 0, ps.stderr
    return {row["name"]: row for row in json.loads(ps.stdout)}
