"""Fixtures of both tiers. None starts a server but :func:`postgres_database`, which the store
tests' PostgreSQL half asks for (marked ``postgres``; ``make test-unit`` leaves it out); the
others are in ``tests/system/conftest.py``.

Also how the suite shares the machine (``make test`` runs it on two pytest-xdist workers, one
taking one lane of :func:`lane`) and the figures a test reports whether it passes or not
(:func:`figures`, printed at the end of the run).
"""

import os
import uuid
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from infra.engines.processes import PORTS, use_ports
from runtime import Where
from tests.support.cli import own_stack_env
from tests.support.postgres import running_postgres

ENGINES_LANE = "engines"
"""The lane of the unit tests and of the system tests that start engines or stacks of their
own (the time-skipping test server included) or use the session's stack of the cluster
topology. The other lane, ``shared``, runs the tests of the session's embedded engines and
stack meanwhile; each session engine is started by the one worker whose tests ask for it.
The two lanes take about as long (13 to 14 minutes each on two cores)."""
SHARED_LANE = "shared"
ENGINES_TESTS = (
    "tests/unit/*",
    "tests/system/ops/test_chaos.py::*",
    "tests/system/ops/test_chaos_cluster.py::*",
    "tests/system/infra/test_kafka_cluster.py::*",
    "tests/system/infra/test_kafka_secured_stack.py::*",
    "tests/system/infra/test_postgres.py::*",
    "tests/system/infra/test_temporal_full_server.py::*",
    "tests/system/cli/test_cli.py::*",
    "tests/system/cli/test_schemas_cli.py::*",
    "tests/system/infra/test_temporal_ui.py::*",
    # Workflows on Temporal's time-skipping test server.
    "tests/system/orchestrator/test_order_saga.py::*",
    "tests/system/orchestrator/test_return_saga.py::*",
    "tests/system/orchestrator/test_saga_outcomes.py::*",
    "tests/system/orchestrator/test_parking.py::*",
    "tests/system/orchestrator/test_dispatch_bridge.py::*",
    "*[[]cluster[]]",
)
"""Node ids of the ``engines`` lane (fnmatch patterns), beside the tests that ask for the
session's cluster stack."""
CLUSTER_FIXTURES = frozenset({"cluster", "cluster_stack_started"})
FIGURES = "figures"


def lane(item: pytest.Item) -> str:
    """The xdist group of a test: ``engines`` or ``shared``."""
    if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return ENGINES_LANE
    return ENGINES_LANE if any(fnmatch(item.nodeid, p) for p in ENGINES_TESTS) else SHARED_LANE


def pytest_configure() -> None:
    """On a pytest-xdist worker, choose ports from a slice of the range of this worker's own:
    a port another worker's stack has reserved but not bound yet is never chosen here."""
    worker, workers = (
        os.environ.get("PYTEST_XDIST_WORKER"),
        os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
    )
    if worker and workers:
        size = len(PORTS) // int(workers)
        start = PORTS.start + int(worker.removeprefix("gw")) * size
        use_ports(range(start, start + size))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test in its lane, before pytest-xdist reads the groups (``--dist loadgroup``:
    one worker takes each lane and runs it in the order collected)."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(lane(item)))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Report a text (a run's figures) in the summary at the end, passed or not; on a worker
    of pytest-xdist, a test's own output never reaches the terminal."""
    return lambda text: request.node.add_report_section("call", FIGURES, text)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the tests reported (:func:`figures`)."""
    title = f"Captured {FIGURES} call"
    shown: set[str] = set()  # a report can be filed under more than one outcome
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, text in getattr(report, "sections", []):
                if name == title and report.nodeid not in shown:
                    shown.add(report.nodeid)
                    terminalreporter.write_sep("-", f"figures: {report.nodeid}")
                    terminalreporter.write_line(text)


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a stack of its own: a fresh run directory and free ports for everything."""
    return own_stack_env(tmp_path / "run")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL server for the session (started only if a test asks), with one database
    for the store tests: its URL."""
    with running_postgres(["stores"]) as running:
        yield running.urls["stores"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_at(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Where]:
    """Where a store test keeps a database it names, on each engine: a SQLite file in the
    test's directory, or a schema of its own in the session's PostgreSQL database (a URL that
    puts it first on the search path). The same name gives the same database."""
    if request.param == "sqlite":
        return lambda name: tmp_path / f"{name}.db"
    url: str = request.getfixturevalue("postgres_database")
    made: dict[str, str] = {}

    def where(name: str) -> Where:
        if name not in made:
            schema = f"t_{uuid.uuid4().hex[:12]}_{name.replace('-', '_')}"[:63]
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            made[name] = f"{url}?options=-csearch_path%3D{schema}"
        return made[name]

    return where
