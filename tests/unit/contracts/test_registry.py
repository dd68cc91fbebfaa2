"""The catalog, its schema files and its models say the same thing."""

import json
import re
import types
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Union, get_args, get_origin
from uuid import UUID

import pytest
from fastavro import parse_schema
from pydantic import BaseModel

from contracts import (
    DOMAIN_TOPICS,
    EVENT_TYPES,
    TOPICS,
    UnknownEventType,
    event_name,
    event_version_number,
    model_for,
    packaged_schemas,
    schema_by_fingerprint,
    schema_for,
    topic_for_event_type,
)

REQUIRED_EVENT_TYPES = {
    "order.placed.v1",
    "order.completed.v1",
    "order.cancelled.v1",
    "payment.completed.v1",
    "payment.failed.v1",
    "payment.refunded.v1",
    "inventory.reserved.v1",
    "inventory.unavailable.v1",
    "inventory.released.v1",
    "shipping.scheduled.v1",
    "shipping.failed.v1",
    "shipping.cancelled.v1",
    "shipping.dispatched.v1",
    # The return saga's (issue 17).
    "return.authorized.v1",
    "return.rejected.v1",
    "return.expired.v1",
    "return.completed.v1",
    "shipping.return_label_issued.v1",
    "shipping.return_label_voided.v1",
    "shipping.return_received.v1",
    "inventory.restocked.v1",
    "payment.refunded.v2",
}

# Envelope fields the model fills in itself; on the wire they are always present.
_GENERATED_BY_THE_MODEL = {"eventId", "eventType", "eventVersion", "timestamp"}

_SCHEMAS_DIR = Path(str(files("contracts") / "schemas"))


def test_the_catalog_holds_every_required_event_type() -> None:
    """The sagas' events, as issues 3 and 17 list them, are all in the catalog."""
    assert set(EVENT_TYPES) >= REQUIRED_EVENT_TYPES
    assert "order.placed.v2" in EVENT_TYPES


def test_every_event_type_has_exactly_one_schema_file() -> None:
    """Each event type and version has one file, ``schemas/<domain>/<event type>.avsc``."""
    found: dict[str, list[Path]] = {}
    for path in _SCHEMAS_DIR.rglob("*.avsc"):
        found.setdefault(path.name.removesuffix(".avsc"), []).append(path)

    assert set(found) == set(EVENT_TYPES)
    for event_type, paths in found.items():
        assert len(paths) == 1, f"{event_type}: {paths}"
        domain = event_type.partition(".")[0]
        assert paths[0].relative_to(_SCHEMAS_DIR) == Path(domain, f"{event_type}.avsc")


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_schema_declares_its_own_event_type_and_version(event_type: str) -> None:
    """A file's ``eventType`` and ``eventVersion`` are its name's and its model's."""
    schema = schema_for(event_type)
    model = model_for(event_type)

    assert schema.event_type == event_type == model.EVENT_TYPE
    assert schema.event_version == model.EVENT_VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+", schema.event_version)
    assert int(schema.event_version.partition(".")[0]) == event_version_number(event_type)


def test_versions_of_an_event_count_up_from_one() -> None:
    """No version is skipped, so every pair of consecutive versions can be checked."""
    versions: dict[str, set[int]] = {}
    for event_type in EVENT_TYPES:
        versions.setdefault(event_name(event_type), set()).add(event_version_number(event_type))

    for name, numbers in versions.items():
        assert numbers == set(range(1, max(numbers) + 1)), name


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_has_a_topic(event_type: str) -> None:
    """Each event type is carried by its domain's topic, one of the catalog's topics."""
    topic = topic_for_event_type(event_type)

    assert topic == DOMAIN_TOPICS[event_type.partition(".")[0]]
    assert topic in {spec.name for spec in TOPICS}


def test_schemas_are_found_by_fingerprint() -> None:
    """Fingerprints are distinct, and each leads back to its schema."""
    schemas = packaged_schemas().values()

    assert len({schema.fingerprint for schema in schemas}) == len(EVENT_TYPES)
    for schema in schemas:
        assert schema_by_fingerprint(schema.fingerprint) is schema
        assert re.fullmatch(r"[0-9a-f]{16}", schema.fingerprint)
    assert schema_by_fingerprint("0000000000000000") is None


def test_an_unknown_event_type_is_refused() -> None:
    """Looking up a type outside the catalog raises UnknownEventType."""
    with pytest.raises(UnknownEventType, match=r"payment\.teleported\.v1"):
        model_for("payment.teleported.v1")
    with pytest.raises(UnknownEventType, match=r"payment\.teleported\.v1"):
        schema_for("payment.teleported.v1")


def test_every_data_record_has_the_order_id() -> None:
    """``order_id`` is the first field of every event's data, a string."""
    for event_type in EVENT_TYPES:
        data = _field(schema_for(event_type).definition, "data")["type"]
        assert data["fields"][0] == {"name": "order_id", "type": "string"}, event_type


def test_no_event_carries_personal_data() -> None:
    """No field names a person or an address: only the country travels."""
    personal = re.compile(r"name|email|phone|address|street|city|zip|postcode|birth")
    for event_type in EVENT_TYPES:
        text = json.dumps(schema_for(event_type).definition)
        names = re.findall(r'"name": "([^"]+)"', text)
        assert not [name for name in names if personal.search(name.lower())], event_type


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_model_and_schema_agree(event_type: str) -> None:
    """Field names, order, types, nullability and defaults of model and schema match."""
    schema = parse_schema(schema_for(event_type).definition, expand=True)

    _assert_record_agrees(model_for(event_type), schema, path=event_type)


class _DriftedMoney(BaseModel):
    amount_minor: str
    currency: str


class _NullableMoney(BaseModel):
    amount_minor: int | None = None
    currency: str


class _ReorderedMoney(BaseModel):
    currency: str
    amount_minor: int


@pytest.mark.parametrize("drifted", [_DriftedMoney, _NullableMoney, _ReorderedMoney])
def test_the_agreement_check_catches_a_drifted_model(drifted: type[BaseModel]) -> None:
    """A model whose field type, nullability or order left its schema fails the check."""
    money = _field(_field(schema_for("payment.completed.v1").definition, "data")["type"], "amount")

    with pytest.raises(AssertionError):
        _assert_record_agrees(drifted, parse_schema(money["type"]), path="Money")


def _field(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(field for field in record["fields"] if field["name"] == name)


def _assert_record_agrees(model: type[BaseModel], record: Any, path: str) -> None:
    assert record["type"] == "record", path
    by_wire_name = {info.alias or name: info for name, info in model.model_fields.items()}
    assert [field["name"] for field in record["fields"]] == list(by_wire_name), path
    for field in record["fields"]:
        info = by_wire_name[field["name"]]
        where = f"{path}.{field['name']}"
        if "default" in field:
            assert not info.is_required(), where
            assert info.default == field["default"], where
        elif field["name"] not in _GENERATED_BY_THE_MODEL:
            assert info.is_required(), f"{where} has a default the schema lacks"
        _assert_type_agrees(info.annotation, field["type"], where)


def _assert_type_agrees(annotation: Any, avro: Any, path: str) -> None:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        assert isinstance(avro, list), f"{path}: {annotation} is nullable, {avro} is not"
        assert avro[0] == "null" and len(avro) == 2 and type(None) in args, path
        (inner,) = (arg for arg in args if arg is not type(None))
        _assert_type_agrees(inner, avro[1], path)
        return
    assert not isinstance(avro, list), f"{path}: {avro} is nullable, {annotation} is not"
    if origin is list:
        assert isinstance(avro, dict) and avro["type"] == "array", path
        _assert_type_agrees(args[0], avro["items"], f"{path}[]")
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        assert isinstance(avro, dict), path
        _assert_record_agrees(annotation, avro, path)
        return
    expected: dict[Any, Any] = {
        str: {"string"},
        int: {"int", "long"},
        bool: {"boolean"},
        UUID: {("string", "uuid")},
        datetime: {("long", "timestamp-millis")},
    }
    actual = (avro["type"], avro.get("logicalType")) if isinstance(avro, dict) else avro
    if isinstance(actual, tuple) and actual[1] is None:
        actual = actual[0]
    assert actual in expected[annotation], f"{path}: {annotation} is not Avro {avro}"
