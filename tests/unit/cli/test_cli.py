"""The one-line errors of `saga up` and `saga ps` on bad input, before any engine starts."""

import os
import socket
import subprocess
from pathlib import Path

from infra.engines.processes import ProcessTable
from tests.support.cli import run_saga, saga_ps


def _assert_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("saga: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_a_malformed_setting_is_named(stack_env: dict[str, str]) -> None:
    """A setting that is not a number names its variable and exits with 2."""
    result = run_saga({**stack_env, "SAGA_API_PORT": "eighty"}, "ps")
    assert result.returncode == 2
    _assert_clear_error(result, "SAGA_API_PORT", "eighty")


def test_a_taken_port_is_named(stack_env: dict[str, str]) -> None:
    """If Kafka's port is taken by someone else, up says which port and starts nothing."""
    port = int(stack_env["SAGA_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = run_saga(stack_env, "up")
    _assert_clear_error(result, f"127.0.0.1:{port}", "already in use")
    assert f"by pid {os.getpid()} (" in result.stderr  # the squatter: this test's process
    assert {row["state"] for row in saga_ps(stack_env).values()} == {"stopped"}


def test_a_missing_java_is_named(stack_env: dict[str, str]) -> None:
    """Without Java, up says that Java is missing and how to get it."""
    result = run_saga({**stack_env, "SAGA_JAVA": "/nonexistent/java"}, "up")
    _assert_clear_error(result, "/nonexistent/java", "SAGA_JAVA")


def test_an_unreachable_external_kafka_is_named(stack_env: dict[str, str]) -> None:
    """With an external Kafka, Temporal and registry that do not answer, up names each one's
    address (and starts nothing: a unit test runs no server)."""
    env = {
        **stack_env,
        "SAGA_KAFKA_EMBEDDED": "false",
        "SAGA_TEMPORAL_EMBEDDED": "false",
        "SAGA_SCHEMA_REGISTRY_EMBEDDED": "false",
        "SAGA_STARTUP_TIMEOUT_SECONDS": "2",
    }
    result = run_saga(env, "up")
    _assert_clear_error(
        result,
        f"Kafka at {env['SAGA_KAFKA_BOOTSTRAP_SERVERS']} did not answer",
        "SAGA_KAFKA_BOOTSTRAP_SERVERS",
        f"Temporal at {env['SAGA_TEMPORAL_ADDRESS']} did not answer",
        f"the schema registry at {env['SAGA_SCHEMA_REGISTRY_URL']} cannot be reached",
    )
    assert ProcessTable(Path(env["SAGA_RUN_DIR"])).names() == []
