"""Consecutive versions of an event read each other, and a break is reported readably."""

import copy
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from contracts import compatibility, schema_for
from contracts.compatibility import (
    CompatibilityReport,
    Direction,
    check_compatibility,
)

Schema = dict[str, Any]


def _v1() -> Schema:
    return copy.deepcopy(schema_for("order.placed.v1").definition)


def _data_fields(schema: Schema) -> list[dict[str, Any]]:
    data = next(field for field in schema["fields"] if field["name"] == "data")
    fields: list[dict[str, Any]] = data["type"]["fields"]
    return fields


def _v2(change: Callable[[list[dict[str, Any]]], None]) -> Schema:
    schema = _v1()
    schema["eventType"], schema["eventVersion"] = "order.placed.v2", "2.0.0"
    change(_data_fields(schema))
    return schema


def _check(v2: Schema) -> CompatibilityReport:
    return check_compatibility({"order.placed.v1": _v1(), "order.placed.v2": v2})


def _add_field(field: dict[str, Any]) -> Callable[[list[dict[str, Any]]], None]:
    return lambda fields: fields.append(field)


def _remove_field(name: str) -> Callable[[list[dict[str, Any]]], None]:
    return lambda fields: fields.remove(next(f for f in fields if f["name"] == name))


def _retype_field(path: tuple[str, ...], avro_type: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(fields: list[dict[str, Any]]) -> None:
        *records, name = path
        for record in records:
            fields = next(f for f in fields if f["name"] == record)["type"]["fields"]
        next(f for f in fields if f["name"] == name)["type"] = avro_type

    return change


def test_the_shipped_schemas_are_compatible() -> None:
    """order.placed and payment.refunded v1 and v2, as packaged, read each other both ways."""
    report = check_compatibility()

    assert report.checked == ("order.placed v1 -> v2", "payment.refunded v1 -> v2")
    assert report.ok, str(report)


def test_adding_an_optional_field_with_a_default_passes_both_ways() -> None:
    """A nullable field defaulting to null is backward and forward compatible."""
    report = _check(
        _v2(_add_field({"name": "coupon", "type": ["null", "string"], "default": None}))
    )

    assert report.ok, str(report)
    assert report.checked == ("order.placed v1 -> v2",)


def test_adding_a_field_without_a_default_breaks_backward() -> None:
    """A new reader has no value for a field old records lack."""
    report = _check(_v2(_add_field({"name": "coupon", "type": "string"})))

    assert not report.ok
    assert [str(finding) for finding in report.findings] == [
        "order.placed v1 -> v2: BACKWARD broken: field 'data.coupon' added without a default"
    ]


def test_removing_a_required_field_breaks_forward() -> None:
    """An old reader still needs the field and has no default for it."""
    report = _check(_v2(_remove_field("customer_id")))

    assert not report.ok
    (finding,) = report.findings
    assert finding.direction is Direction.FORWARD
    assert str(finding) == (
        "order.placed v1 -> v2: FORWARD broken: required field 'data.customer_id' removed "
        "(the old version has no default)"
    )
    assert finding.fastavro_error is not None
    assert "SchemaResolutionError" in finding.fastavro_error


def test_changing_a_field_type_breaks_both_ways() -> None:
    """long -> string cannot be resolved in either direction."""
    report = _check(_v2(_retype_field(("total", "amount_minor"), "string")))

    assert [str(finding) for finding in report.findings] == [
        "order.placed v1 -> v2: BACKWARD broken: "
        "field 'data.total.amount_minor' changed type long -> string",
        "order.placed v1 -> v2: FORWARD broken: "
        "field 'data.total.amount_minor' changed type long -> string",
    ]
    for finding in report.findings:
        assert finding.fastavro_error is not None
        assert "SchemaResolutionError" in finding.fastavro_error
    assert "fastavro: SchemaResolutionError" in str(report)


def test_a_promotion_breaks_only_the_way_avro_cannot_promote() -> None:
    """A new double reads an old long, but an old long reader cannot read a double."""
    report = _check(_v2(_retype_field(("total", "amount_minor"), "double")))

    assert [str(finding) for finding in report.findings] == [
        "order.placed v1 -> v2: FORWARD broken: "
        "field 'data.total.amount_minor' changed type long -> double"
    ]


def test_making_a_field_nullable_breaks_forward() -> None:
    """An old reader of a string cannot read the null a new writer may write."""
    report = _check(_v2(_retype_field(("customer_id",), ["null", "string"])))

    assert [str(finding) for finding in report.findings] == [
        "order.placed v1 -> v2: FORWARD broken: "
        "field 'data.customer_id' changed type string -> null|string"
    ]


def test_the_command_prints_the_report_and_exits_zero_when_compatible() -> None:
    """``python -m contracts.compatibility`` succeeds on the shipped schemas."""
    result = subprocess.run(
        [sys.executable, "-m", "contracts.compatibility"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "checked order.placed v1 -> v2",
        "checked payment.refunded v1 -> v2",
        "compatible",
    ]


def test_the_command_exits_one_on_a_break(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A break is printed and makes the command fail."""
    broken = {"order.placed.v1": _v1(), "order.placed.v2": _v2(_remove_field("total"))}

    class _Packaged:
        def __init__(self, definition: Mapping[str, Any]) -> None:
            self.definition = definition

    monkeypatch.setattr(
        compatibility,
        "packaged_schemas",
        lambda: {event_type: _Packaged(schema) for event_type, schema in broken.items()},
    )

    assert compatibility.main() == 1
    assert "FORWARD broken: required field 'data.total' removed" in capsys.readouterr().out
