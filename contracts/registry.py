"""The event catalog: every event type, its Python model and its packaged Avro schema.

The ``.avsc`` files under ``contracts/schemas/<domain>/<event type>.avsc`` are the source
of truth; the models mirror them (the tests hold the two together). Schemas are read
from the installed package the first time one is asked for, never at import.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from contracts.envelope import AnyEvent, EventData
from contracts.errors import UnknownEventType
from contracts.events import (
    InventoryReleased,
    InventoryReserved,
    InventoryRestocked,
    InventoryUnavailable,
    OrderCancelled,
    OrderCompleted,
    OrderPlaced,
    OrderPlacedV2,
    OrderRepaired,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    PaymentRefundedV2,
    ReturnAuthorized,
    ReturnCompleted,
    ReturnExpired,
    ReturnRejected,
    SagaIncidentOpened,
    SagaIncidentResolved,
    ShippingCancelled,
    ShippingDispatched,
    ShippingFailed,
    ShippingReturnLabelIssued,
    ShippingReturnLabelVoided,
    ShippingReturnReceived,
    ShippingScheduled,
)

__all__ = [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "FINGERPRINT_ALGORITHM",
    "PackagedSchema",
    "model_carrying",
    "model_for",
    "packaged_schemas",
    "schema_by_fingerprint",
    "schema_for",
    "schema_matching",
]

FINGERPRINT_ALGORITHM = "CRC-64-AVRO"
"""Avro's own 64-bit Rabin fingerprint of a schema's Parsing Canonical Form."""

EVENT_MODELS: Mapping[str, type[AnyEvent]] = MappingProxyType(
    {
        model.EVENT_TYPE: model
        for model in (
            OrderPlaced,
            OrderPlacedV2,
            OrderCompleted,
            OrderCancelled,
            OrderRepaired,
            PaymentCompleted,
            PaymentFailed,
            PaymentRefunded,
            PaymentRefundedV2,
            InventoryReserved,
            InventoryUnavailable,
            InventoryReleased,
            InventoryRestocked,
            ShippingScheduled,
            ShippingFailed,
            ShippingCancelled,
            ShippingDispatched,
            ShippingReturnLabelIssued,
            ShippingReturnLabelVoided,
            ShippingReturnReceived,
            ReturnAuthorized,
            ReturnRejected,
            ReturnExpired,
            ReturnCompleted,
            SagaIncidentOpened,
            SagaIncidentResolved,
        )
    }
)
"""Event type (``payment.completed.v1``) -> the model of that event."""

EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)
"""Every event type of the catalog, every version of it included."""


def _by_data_model() -> Mapping[type[EventData], type[AnyEvent]]:
    models: dict[type[EventData], type[AnyEvent]] = {}
    for model in EVENT_MODELS.values():
        data_model = model.model_fields["data"].annotation
        if not isinstance(data_model, type) or not issubclass(data_model, EventData):
            raise TypeError(f"{model.__name__}: its data is not an EventData")
        if data_model in models:
            raise TypeError(f"{model.__name__} and {models[data_model].__name__} share their data")
        models[data_model] = model
    return MappingProxyType(models)


_MODEL_CARRYING = _by_data_model()
"""Data model (``PaymentCompletedData``) -> the model of the event that carries it."""


@dataclass(frozen=True)
class PackagedSchema:
    """One ``.avsc`` file of the package, parsed and fingerprinted."""

    event_type: str
    event_version: str
    path: str
    """Where it lives inside the package (``schemas/order/order.placed.v1.avsc``)."""
    definition: dict[str, Any]
    """The JSON of the file, as written."""
    parsed: dict[str, Any]
    """The schema as fastavro parsed it, ready for its readers and writers."""
    fingerprint: str
    """Hex CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form."""


def model_for(event_type: str) -> type[AnyEvent]:
    """The model of ``event_type``.

    Raises:
        UnknownEventType: the event type is not in the catalog.
    """
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def model_carrying(data: EventData) -> type[AnyEvent]:
    """The model of the one event whose data ``data`` is (``PaymentCompletedData`` ->
    ``PaymentCompleted``).

    Raises:
        KeyError: ``data`` is of no event of the catalog.
    """
    return _MODEL_CARRYING[type(data)]


def schema_for(event_type: str) -> PackagedSchema:
    """The packaged schema of ``event_type``.

    Raises:
        UnknownEventType: no schema file describes the event type.
    """
    try:
        return packaged_schemas()[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def schema_by_fingerprint(schema_fingerprint: str) -> PackagedSchema | None:
    """The packaged schema with this fingerprint, if there is one."""
    return _by_fingerprint().get(schema_fingerprint)


def schema_matching(definition: Mapping[str, Any] | list[Any] | str) -> PackagedSchema | None:
    """The packaged schema that ``definition`` is, whatever its layout, docs and extra
    attributes (a registry hands back its own copy of it), or None.

    Raises:
        fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError: ``definition``
            is not an Avro schema.
    """
    schema = dict(definition) if isinstance(definition, Mapping) else definition
    canonical = to_parsing_canonical_form(parse_schema(schema))
    return schema_by_fingerprint(fingerprint(canonical, FINGERPRINT_ALGORITHM))


@cache
def packaged_schemas() -> Mapping[str, PackagedSchema]:
    """Every schema file of the package, by the event type it declares.

    Raises:
        ValueError: two files declare the same event type.
    """
    schemas: dict[str, PackagedSchema] = {}
    root = files("contracts") / "schemas"
    for domain in sorted(root.iterdir(), key=lambda entry: entry.name):
        if not domain.is_dir():
            continue
        for file in sorted(domain.iterdir(), key=lambda entry: entry.name):
            if not file.name.endswith(".avsc"):
                continue
            schema = _packaged(
                json.loads(file.read_text(encoding="utf-8")),
                path=f"schemas/{domain.name}/{file.name}",
            )
            if schema.event_type in schemas:
                raise ValueError(
                    f"{schema.path} and {schemas[schema.event_type].path} "
                    f"both declare {schema.event_type}"
                )
            schemas[schema.event_type] = schema
    return MappingProxyType(schemas)


def _packaged(definition: dict[str, Any], path: str) -> PackagedSchema:
    parsed = parse_schema(definition)
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError(f"{path} is not an Avro record schema")
    return PackagedSchema(
        event_type=definition["eventType"],
        event_version=definition["eventVersion"],
        path=path,
        definition=definition,
        parsed=parsed,
        fingerprint=fingerprint(to_parsing_canonical_form(parsed), FINGERPRINT_ALGORITHM),
    )


@cache
def _by_fingerprint() -> Mapping[str, PackagedSchema]:
    return MappingProxyType({schema.fingerprint: schema for schema in packaged_schemas().values()})
