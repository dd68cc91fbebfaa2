"""Fixtures of both tiers. None starts a server but :func:`postgres_database`, which the store
tests' PostgreSQL half asks for (marked ``postgres``; ``make test-unit`` leaves it out); the
others are in ``tests/system/conftest.py``."""

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from runtime import Where
from tests.support.cli import own_stack_env
from tests.support.postgres import running_postgres


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
