"""`saga up`, `saga ps` and `saga down` on a real stack of its own."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config.settings import Settings
from infra.engines.processes import start_ticks_of
from infra.engines.stack import Stack
from tests.support.cli import run_saga, saga_ps


@pytest.fixture
def running_stack(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A stack brought up with `saga up`, and brought down again whatever the test did."""
    try:
        up = run_saga(stack_env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack_env
    finally:
        run_saga(stack_env, "down")


def test_up_ps_up_again_and_down(running_stack: dict[str, str]) -> None:
    """Up starts every component once, ps shows them, down stops exactly those processes."""
    env = running_stack
    # The embedded topology's: its broker and dev server, the services and the API.
    components = Stack(Settings(run_dir=Path(env["SAGA_RUN_DIR"]))).components()
    first = saga_ps(env)
    assert set(first) == set(components)
    for name, row in first.items():
        assert row["state"] == "running", (name, row)
        assert isinstance(row["pid"], int)
        assert start_ticks_of(row["pid"]) is not None
    assert first["kafka"]["version"] == "Apache Kafka 4.1.1"
    assert first["api"]["address"] == f"http://127.0.0.1:{env['SAGA_API_PORT']}"

    again = run_saga(env, "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == len(components)
    assert "other settings" not in again.stdout  # the same settings give the same commands
    token = run_saga(env, "token")
    assert token.returncode == 0, token.stderr
    assert f"API token    {token.stdout.splitlines()[-1]}  " in again.stdout
    # Settings that would start Temporal otherwise (in memory) are named, not silently kept.
    drifted = run_saga({**env, "SAGA_TEMPORAL_STORAGE": "memory"}, "up")
    assert drifted.returncode == 0, drifted.stderr
    assert drifted.stdout.count("started with other settings than these") == 1, drifted.stdout
    assert {n: r["pid"] for n, r in saga_ps(env).items()} == {n: r["pid"] for n, r in first.items()}

    down = run_saga(env, "down")
    assert down.returncode == 0, down.stderr
    for name, row in first.items():
        assert isinstance(row["pid"], int)
        assert start_ticks_of(row["pid"]) is None, f"{name} (pid {row['pid']}) is still running"
    assert {row["state"] for row in saga_ps(env).values()} == {"stopped"}
