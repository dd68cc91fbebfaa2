"""Apicurio Registry as the stack runs it: its schemas outlive a restart, ids unchanged."""

import json
from pathlib import Path

import httpx

from infra.engines.processes import stop_process
from tests.support.stacks import own_registry, start_registry

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
