"""`saga schemas` against a real Apicurio Registry of the test's own: the catalog registered
and listed, a breaking new version refused by the registry with the field named, a compatible
one registered under its record's subject."""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.registry import packaged_schemas, schema_for
from infra.engines.schema_registry import SchemaRegistryServer
from tests.support.cli import refusal, run_saga, without_settings
from tests.support.stacks import running_registry

SUBJECT = "saga.contracts.order.OrderPlaced"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture
def env(registry: SchemaRegistryServer, tmp_path: Path) -> dict[str, str]:
    return {
        **without_settings(),
        "SAGA_RUN_DIR": str(tmp_path),
        "SAGA_SCHEMA_REGISTRY_URL": registry.url,
    }


def _placed_v3(tmp_path: Path, *, default: bool) -> Path:
    """order.placed.v3: v2 with a gift note in its data, with or without a default."""
    definition: dict[str, Any] = copy.deepcopy(dict(schema_for("order.placed.v2").definition))
    definition["eventType"] = "order.placed.v3"
    data = next(f for f in definition["fields"] if f["name"] == "data")
    note: dict[str, Any] = {"name": "gift_note", "type": "string"}
    if default:
        note["default"] = ""
    data["type"]["fields"].append(note)
    path = tmp_path / f"order.placed.v3{'' if default else '-breaking'}.avsc"
    path.write_text(json.dumps(definition, indent=2))
    return path


def test_the_catalog_is_registered_listed_and_checked(env: dict[str, str]) -> None:
    registered = run_saga(env, "schemas", "register", "--json")
    assert registered.returncode == 0, registered.stderr
    ids = json.loads(registered.stdout)
    assert set(ids) == set(packaged_schemas())
    again = run_saga(env, "schemas", "register", "--json")
    assert json.loads(again.stdout) == ids  # idempotent: same schemas, same ids

    listed = run_saga(env, "schemas", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    subjects = {s["name"]: s for s in json.loads(listed.stdout)}
    placed = subjects[SUBJECT]
    assert placed["compatibility"] == "FULL_TRANSITIVE"
    assert [(v["version"], v["event_type"]) for v in placed["versions"]] == [
        (1, "order.placed.v1"),
        (2, "order.placed.v2"),
    ]
    assert [v["schema_id"] for v in placed["versions"]] == [
        ids["order.placed.v1"],
        ids["order.placed.v2"],
    ]
    table = run_saga(env, "schemas", "list")
    assert f"{SUBJECT}" in table.stdout and "FULL_TRANSITIVE" in table.stdout

    checked = run_saga(env, "schemas", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "packaged schemas, with each other: compatible" in checked.stdout
    assert f"order.placed.v2 at {env['SAGA_SCHEMA_REGISTRY_URL']} ({SUBJECT}): compatible" in (
        checked.stdout
    )


def test_a_breaking_version_is_refused_naming_its_field_and_a_compatible_one_registered(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run_saga(env, "schemas", "register").returncode == 0
    breaking = _placed_v3(tmp_path, default=False)

    checked = run_saga(env, "schemas", "check", str(breaking))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "order.placed.v3" in checked.stdout and "REFUSED" in checked.stdout
    assert "field 'data.gift_note' added without a default" in checked.stdout

    refused = refusal(run_saga(env, "schemas", "register", str(breaking)))
    assert "gift_note" in refused and "FULL_TRANSITIVE" in refused
    assert "Traceback" not in refused
    listed = json.loads(run_saga(env, "schemas", "list", "--json").stdout)
    placed = next(s for s in listed if s["name"] == SUBJECT)
    assert len(placed["versions"]) == 2  # nothing was registered

    compatible = _placed_v3(tmp_path, default=True)
    assert run_saga(env, "schemas", "check", str(compatible)).returncode == 0
    registered = run_saga(env, "schemas", "register", str(compatible), "--json")
    assert registered.returncode == 0, registered.stderr
    new_id = json.loads(registered.stdout)["order.placed.v3"]
    listed = json.loads(run_saga(env, "schemas", "list", "--json").stdout)
    placed = next(s for s in listed if s["name"] == SUBJECT)
    assert [v["schema_id"] for v in placed["versions"]][-1] == new_id
    assert placed["versions"][-1]["event_type"] is None  # not a packaged version (yet)


def test_an_unreachable_registry_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    env = {
        **without_settings(),
        "SAGA_RUN_DIR": str(tmp_path),
        "SAGA_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
    }
    message = refusal(run_saga(env, "schemas", "list"))
    assert "unreachable" in message and "saga up" in message
    assert "Traceback" not in message
