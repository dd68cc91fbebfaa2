"""Schema evolution: does each version of an event read, and is it read by, the one before?

For every pair of consecutive versions of an event (``order.placed.v1`` -> ``v2``):

- **backward**: a consumer on the new version reads records written with the old one;
- **forward**: a consumer still on the old version reads records written with the new one.

Both are checked twice. fastavro writes sample records (``fastavro.utils.generate_many``)
with one schema and reads them with the other through its own schema resolution, which is
the proof; a structural walk of the two schemas, following Avro's resolution rules, names
what broke (``field 'data.total' changed type long -> string``), which fastavro's first
error would not. Run ``python -m contracts.compatibility``: it prints the report and
exits 1 when anything is broken.
"""

import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from io import BytesIO
from itertools import pairwise
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from contracts.envelope import event_name, event_version_number
from contracts.registry import packaged_schemas

__all__ = [
    "CompatibilityReport",
    "Direction",
    "Finding",
    "check_compatibility",
    "check_versions",
    "main",
]

_SAMPLES = 50

# Reader types each writer type may be read as (Avro 1.11 specification, "Schema Resolution").
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NAMED = frozenset({"record", "enum", "fixed"})


class Direction(StrEnum):
    """Which way a pair of versions is read."""

    BACKWARD = "BACKWARD"
    """The new version reads what the old one wrote."""
    FORWARD = "FORWARD"
    """The old version reads what the new one wrote."""


@dataclass(frozen=True)
class Finding:
    """One way in which one version of an event cannot read the other."""

    event: str
    old_version: int
    new_version: int
    direction: Direction
    problem: str
    fastavro_error: str | None = None
    """What fastavro raised reading a sample record this way, if it did."""

    def __str__(self) -> str:
        return (
            f"{self.event} v{self.old_version} -> v{self.new_version}: "
            f"{self.direction} broken: {self.problem}"
        )


@dataclass(frozen=True)
class CompatibilityReport:
    """What was checked and what is broken."""

    checked: tuple[str, ...]
    """The pairs of versions checked, as ``order.placed v1 -> v2``."""
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """Whether every pair reads both ways."""
        return not self.findings

    def __str__(self) -> str:
        if not self.checked:
            return "no event has more than one version: nothing to check"
        lines = [f"checked {pair}" for pair in self.checked]
        for finding in self.findings:
            lines.append(str(finding))
            if finding.fastavro_error:
                lines.append(f"    fastavro: {finding.fastavro_error}")
        lines.append("compatible" if self.ok else f"{len(self.findings)} problem(s)")
        return "\n".join(lines)


def check_compatibility(
    schemas: Mapping[str, Mapping[str, Any]] | None = None, *, samples: int = _SAMPLES
) -> CompatibilityReport:
    """Check every pair of consecutive versions in ``schemas`` (event type -> Avro schema).

    Without ``schemas``, the schemas packaged with ``contracts`` are checked.
    """
    if schemas is None:
        schemas = {event_type: s.definition for event_type, s in packaged_schemas().items()}
    versions: defaultdict[str, dict[int, Mapping[str, Any]]] = defaultdict(dict)
    for event_type, schema in schemas.items():
        versions[event_name(event_type)][event_version_number(event_type)] = schema
    checked: list[str] = []
    findings: list[Finding] = []
    for name in sorted(versions):
        numbers = sorted(versions[name])
        for old, new in pairwise(numbers):
            checked.append(f"{name} v{old} -> v{new}")
            findings += check_versions(
                name, old, versions[name][old], new, versions[name][new], samples=samples
            )
    return CompatibilityReport(checked=tuple(checked), findings=tuple(findings))


def check_versions(
    event: str,
    old_version: int,
    old_schema: Mapping[str, Any],
    new_version: int,
    new_schema: Mapping[str, Any],
    *,
    samples: int = _SAMPLES,
) -> list[Finding]:
    """Check that two versions of ``event`` read each other's records, both ways."""
    old = parse_schema(dict(old_schema), expand=True)
    new = parse_schema(dict(new_schema), expand=True)
    findings: list[Finding] = []
    for direction, writer, reader in (
        (Direction.BACKWARD, old, new),
        (Direction.FORWARD, new, old),
    ):
        problems = _Walk(old_is_writer=direction is Direction.BACKWARD).resolve(writer, reader)
        failure = _sample_failure(writer, reader, samples)
        if failure is not None and not problems:
            # The walk knows the common rules; fastavro has the last word.
            problems = ["fastavro cannot read a sample record"]
        findings += [
            Finding(event, old_version, new_version, direction, problem, fastavro_error=failure)
            for problem in _unique(problems)
        ]
    return findings


def main() -> int:
    """Print the report on the packaged schemas; 1 when something is broken."""
    report = check_compatibility()
    print(report)
    return 0 if report.ok else 1


def _sample_failure(writer: Any, reader: Any, samples: int) -> str | None:
    for record in generate_many(writer, samples):
        buffer = BytesIO()
        try:
            schemaless_writer(buffer, writer, record)
            buffer.seek(0)
            schemaless_reader(buffer, writer, reader)
        except Exception as error:  # noqa: BLE001 - whatever fastavro raises is the finding
            return f"{type(error).__name__}: {error}"
    return None


class _Walk:
    """Avro schema resolution of a writer schema against a reader schema, as messages."""

    def __init__(self, *, old_is_writer: bool) -> None:
        self._old_is_writer = old_is_writer

    def resolve(self, writer: Any, reader: Any, path: str = "") -> list[str]:
        """What stops ``reader`` from reading data written with ``writer``, at ``path``."""
        if isinstance(writer, list):
            branches = [(branch, _reader_branch(branch, reader)) for branch in writer]
            if any(match is None for _, match in branches):
                return [self._changed(writer, reader, path)]
            return [
                problem
                for branch, match in branches
                for problem in self.resolve(branch, match, path)
            ]
        match = _reader_branch(writer, reader)
        if match is None:
            return [self._changed(writer, reader, path)]
        kind = _kind(writer)
        if kind == "record":
            return list(self._fields(writer, match, path))
        if kind == "array":
            return self.resolve(writer["items"], match["items"], f"{path}[]")
        if kind == "map":
            return self.resolve(writer["values"], match["values"], f"{path}{{}}")
        if kind == "enum":
            return self._symbols(writer, match, path)
        return []

    def _fields(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> Iterator[str]:
        written = {field["name"]: field for field in writer["fields"]}
        for field in reader["fields"]:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            source = next(
                (
                    written[name]
                    for name in (field["name"], *field.get("aliases", ()))
                    if name in written
                ),
                None,
            )
            if source is not None:
                yield from self.resolve(source["type"], field["type"], field_path)
            elif "default" not in field:
                yield (
                    f"field '{field_path}' added without a default"
                    if self._old_is_writer
                    else f"required field '{field_path}' removed (the old version has no default)"
                )

    def _symbols(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> list[str]:
        unknown = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
        if not unknown or "default" in reader:
            return []
        change = "removed" if self._old_is_writer else "added"
        return [f"field '{path}': symbol(s) {', '.join(unknown)} {change} without an enum default"]

    def _changed(self, writer: Any, reader: Any, path: str) -> str:
        old, new = (writer, reader) if self._old_is_writer else (reader, writer)
        subject = f"field '{path}'" if path else "the record"
        return f"{subject} changed type {_describe(old)} -> {_describe(new)}"


def _reader_branch(writer: Any, reader: Any) -> Any:
    """The part of ``reader`` that reads a (non-union) ``writer``, or None."""
    candidates = reader if isinstance(reader, list) else [reader]
    exact = [branch for branch in candidates if _matches(writer, branch, promote=False)]
    promoted = [branch for branch in candidates if _matches(writer, branch, promote=True)]
    return (exact or promoted or [None])[0]


def _matches(writer: Any, reader: Any, *, promote: bool) -> bool:
    if isinstance(reader, list):
        return False
    kind, reader_kind = _kind(writer), _kind(reader)
    if _logical_type(writer) != _logical_type(reader):
        return False
    if kind in _NAMED or reader_kind in _NAMED:
        return (
            kind == reader_kind
            and _short_name(writer["name"])
            in {_short_name(reader["name"]), *map(_short_name, reader.get("aliases", ()))}
            and (kind != "fixed" or writer["size"] == reader["size"])
        )
    if kind != reader_kind:
        return promote and reader_kind in _PROMOTIONS.get(kind, frozenset())
    return True


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return _kind(schema["type"])
    return str(schema)


def _logical_type(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _short_name(name: str) -> str:
    return name.rpartition(".")[2]


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "|".join(_describe(branch) for branch in schema)
    if not isinstance(schema, dict):
        return str(schema)
    kind = _kind(schema)
    if kind in _NAMED:
        return f"{kind} {_short_name(schema['name'])}"
    if kind == "array":
        return f"array<{_describe(schema['items'])}>"
    if kind == "map":
        return f"map<{_describe(schema['values'])}>"
    logical = _logical_type(schema)
    return f"{kind}({logical})" if logical else kind


def _unique(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))


if __name__ == "__main__":
    sys.exit(main())
