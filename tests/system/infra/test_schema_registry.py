"""Apicurio Registry as the stack runs it: its schemas outlive a restart, ids unchanged; in the
cluster topology they are kept in PostgreSQL."""

import json
from pathlib import Path

import httpx
import psycopg
import pytest

from infra.engines.postgres import read_postgres_secrets
from infra.engines.processes import stop_process
from tests.support.cli import saga_ps
from tests.support.stacks import ClusterStack, own_registry, start_registry

_SCHEMA: dict[str, object] = {
    "type": "record",
    "name": "Probe",
    "namespace": "saga.tests",
    "fields": [{"name": "id", "type": "string"}],
}
_CONTENT = "application/vnd.schemaregistry.v1+json"


def _register(url: str, subject: str, schema: dict[str, object]) -> int:
    response = httpx.post(
        f"{url}/apis/ccompat/v7/subjects/{subject}/versions",
        json={"schema": json.dumps(schema)},
        headers={"Content-Type": _CONTENT},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    schema_id: int = response.json()["id"]
    return schema_id


def test_a_restart_keeps_every_schema_and_its_id(tmp_path: Path) -> None:
    """The default in-memory storage would forget them; the H2 file under the run directory
    does not."""
    registry = own_registry(tmp_path)
    record = start_registry(registry)
    try:
        first = _register(registry.url, "saga.tests.Probe", _SCHEMA)
        assert _register(registry.url, "saga.tests.Probe", _SCHEMA) == first  # same schema, same id
    finally:
        stop_process(record)
    assert not record.is_alive()

    record = start_registry(registry)
    try:
        subjects = httpx.get(f"{registry.url}/apis/ccompat/v7/subjects", timeout=10).json()
        assert "saga.tests.Probe" in subjects
        kept = httpx.get(f"{registry.url}/apis/ccompat/v7/schemas/ids/{first}", timeout=10)
        assert kept.status_code == 200 and json.loads(kept.json()["schema"]) == _SCHEMA
        assert _register(registry.url, "saga.tests.Probe", _SCHEMA) == first
    finally:
        stop_process(record)


@pytest.mark.timeout(900)
def test_the_cluster_keeps_its_schemas_in_postgresql(cluster_stack_started: ClusterStack) -> None:
    """`saga up --topology cluster` runs the registry on a PostgreSQL database of its own,
    which its own role reaches: what it registers is kept there."""
    env, settings = cluster_stack_started.env, cluster_stack_started.settings
    row = saga_ps(env)["registry"]
    assert (row["state"], row["address"]) == ("running", settings.schema_registry_url)
    assert row["version"] == "Apicurio Registry 3.3.3"
    metrics = row["metrics"]
    assert isinstance(metrics, list)
    assert f"http://127.0.0.1:{settings.schema_registry_port + 1}/metrics" in metrics

    schema_id = _register(settings.schema_registry_url, "saga.tests.ClusterProbe", _SCHEMA)
    password = (read_postgres_secrets(settings.run_dir) or {})["registry"]
    url = f"postgresql://registry:{password}@127.0.0.1:{settings.postgres_port}/registry"
    with psycopg.connect(url) as db:
        kept = db.execute(
            "SELECT COUNT(*) FROM versions WHERE artifactId = %s",
            ("saga.tests.ClusterProbe",),
        ).fetchone()
    assert kept == (1,), f"schema {schema_id} is not in the registry's PostgreSQL database"
