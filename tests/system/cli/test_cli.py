"""`saga up`, `saga ps` and `saga down` on a real stack, and the one-line errors of bad input."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.engines.processes import free_port
from infra.engines.stack import COMPONENTS

_SAGA = [sys.executable, "-m", "cli"]


def _saga(
    env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_SAGA, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a stack of its own: a fresh run directory and free ports for everything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGA_")}
    env.update(
        SAGA_RUN_DIR=str(tmp_path / "run"),
        SAGA_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        SAGA_KAFKA_CONTROLLER_PORT=str(free_port()),
        SAGA_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        SAGA_TEMPORAL_UI_PORT=str(free_port()),
        SAGA_API_PORT=str(free_port()),
        SAGA_PAYMENT_PORT=str(free_port()),
        SAGA_INVENTORY_PORT=str(free_port()),
        SAGA_SHIPPING_PORT=str(free_port()),
        SAGA_ORCHESTRATOR_PORT=str(free_port()),
        SAGA_STARTUP_TIMEOUT_SECONDS="90",
    )
    return env


@pytest.fixture
def running_stack(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A stack brought up with `saga up`, and brought down again whatever the test did."""
    try:
        up = _saga(stack_env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack_env
    finally:
        _saga(stack_env, "down")


def _ps(env: dict[str, str]) -> dict[str, dict[str, object]]:
    ps = _saga(env, "ps", "--json")
    assert ps.returncode == 0, ps.stderr
    return {row["name"]: row for row in json.loads(ps.stdout)}


def test_up_ps_up_again_and_down(running_stack: dict[str, str]) -> None:
    """Up starts every component once, ps shows them, down stops exactly those processes."""
    env = running_stack
    first = _ps(env)
    assert set(first) == set(COMPONENTS)
    for name, row in first.items():
        assert row["state"] == "running", (name, row)
        assert isinstance(row["pid"], int)
        assert _pid_alive(row["pid"])
    assert first["kafka"]["version"] == "Apache Kafka 4.1.1"
    assert first["api"]["address"] == f"http://127.0.0.1:{env['SAGA_API_PORT']}"

    again = _saga(env, "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == len(COMPONENTS)
    assert "other settings" not in again.stdout  # the same settings give the same commands
    token = _saga(env, "token")
    assert token.returncode == 0, token.stderr
    assert f"API token    {token.stdout.splitlines()[-1]}  " in again.stdout
    # Settings that would start Temporal otherwise (in memory) are named, not silently kept.
    drifted = _saga({**env, "SAGA_TEMPORAL_STORAGE": "memory"}, "up")
    assert drifted.returncode == 0, drifted.stderr
    assert drifted.stdout.count("started with other settings than these") == 1, drifted.stdout
    assert {n: r["pid"] for n, r in _ps(env).items()} == {n: r["pid"] for n, r in first.items()}

    down = _saga(env, "down")
    assert down.returncode == 0, down.stderr
    for name, row in first.items():
        assert isinstance(row["pid"], int)
        assert not _pid_alive(row["pid"]), f"{name} (pid {row['pid']}) is still running"
    assert {row["state"] for row in _ps(env).values()} == {"stopped"}


def _assert_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("saga: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_a_malformed_setting_is_named(stack_env: dict[str, str]) -> None:
    """A setting that is not a number names its variable and exits with 2."""
    result = _saga({**stack_env, "SAGA_API_PORT": "eighty"}, "ps")
    assert result.returncode == 2
    _assert_clear_error(result, "SAGA_API_PORT", "eighty")


def test_a_taken_port_is_named(stack_env: dict[str, str]) -> None:
    """If Kafka's port is taken by someone else, up says which port and starts nothing."""
    port = int(stack_env["SAGA_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = _saga(stack_env, "up")
    _assert_clear_error(result, f"127.0.0.1:{port}", "already in use")
    assert {row["state"] for row in _ps(stack_env).values()} == {"stopped"}


def test_a_missing_java_is_named(stack_env: dict[str, str]) -> None:
    """Without Java, up says that Java is missing and how to get it."""
    result = _saga({**stack_env, "SAGA_JAVA": "/nonexistent/java"}, "up")
    _assert_clear_error(result, "/nonexistent/java", "SAGA_JAVA")


def test_an_unreachable_external_kafka_is_named(stack_env: dict[str, str]) -> None:
    """With an external Kafka that does not answer, up names its address."""
    env = {
        **stack_env,
        "SAGA_KAFKA_EMBEDDED": "false",
        "SAGA_TEMPORAL_EMBEDDED": "false",
        "SAGA_STARTUP_TIMEOUT_SECONDS": "2",
    }
    result = _saga(env, "up")
    _assert_clear_error(
        result,
        f"Kafka at {env['SAGA_KAFKA_BOOTSTRAP_SERVERS']} did not answer",
        "SAGA_KAFKA_BOOTSTRAP_SERVERS",
        f"Temporal at {env['SAGA_TEMPORAL_ADDRESS']} did not answer",
    )
