"""No event schema carries personal data: it travels only in (encrypted) Temporal payloads."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import contracts

SCHEMAS = sorted((Path(contracts.__file__).parent / "schemas").rglob("*.avsc"))
# Parts of a field name that mean personal data, compared without case and "_".
PERSONAL = frozenset(
    {
        "name",
        "address",
        "email",
        "street",
        "line1",
        "line2",
        "postalcode",
        "zip",
        "phone",
        "paymenttoken",
        "city",
    }
)


def _field_names(schema: Any, where: str = "") -> Iterator[str]:
    """Every field name of every record in ``schema``, at any depth, as ``a.b.c``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _field_names(branch, where)
    elif isinstance(schema, dict):
        for field in schema.get("fields", []):
            path = f"{where}{field['name']}"
            yield path
            yield from _field_names(field["type"], f"{path}.")
        for nested in ("items", "values"):
            if nested in schema:
                yield from _field_names(schema[nested], where)


def _personal_fields(schema: Any) -> list[str]:
    return [
        path
        for path in _field_names(schema)
        if any(part in path.rsplit(".", 1)[-1].replace("_", "").lower() for part in PERSONAL)
    ]


def test_every_schema_is_checked() -> None:
    assert len(SCHEMAS) >= 15
    assert any(path.name == "order.placed.v2.avsc" for path in SCHEMAS)


@pytest.mark.parametrize("schema_path", SCHEMAS, ids=[path.stem for path in SCHEMAS])
def test_no_event_field_is_named_like_personal_data(schema_path: Path) -> None:
    """A name, an address, an email, a phone or a payment token has no place in an event."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))

    assert "data" in list(_field_names(schema))
    assert _personal_fields(schema) == [], f"{schema_path.name} carries personal data"


def test_the_check_finds_a_personal_field_at_any_depth() -> None:
    schema = {
        "type": "record",
        "fields": [
            {
                "name": "data",
                "type": {
                    "type": "record",
                    "fields": [
                        {"name": "shipping_country", "type": "string"},
                        {
                            "name": "lines",
                            "type": {
                                "type": "array",
                                "items": {
                                    "type": "record",
                                    "fields": [{"name": "customerEmail", "type": "string"}],
                                },
                            },
                        },
                        {"name": "shipping_postal_code", "type": ["null", "string"]},
                    ],
                },
            }
        ],
    }

    assert _personal_fields(schema) == ["data.lines.customerEmail", "data.shipping_postal_code"]
