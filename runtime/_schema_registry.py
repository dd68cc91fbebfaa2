"""The schema registry's client: ids for the schemas we write, schemas for the ids we read.

It speaks the Confluent-compatible API that Apicurio Registry serves under
``{url}/apis/ccompat/v7``. Subjects are per record type (:func:`contracts.codec.subject_for`):
every version of an event lives in one subject, whose compatibility level the registry
enforces on each new version. Ids are cached for the client's life: an id never changes its
schema, and a schema registered again keeps its id.

Failures carry their behaviour (``retryable``): a registry that cannot be reached, times out
or answers 5xx is :class:`SchemaRegistryUnavailable` (try again later; counted in
``schema_registry_errors_total``); one that refuses a schema as incompatible is
:class:`IncompatibleSchema`, whose message names what broke. An id the registry does not know
is no error here: :meth:`SchemaRegistry.writer_for` answers None, and the record is
undecodable.
"""

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from fastavro import parse_schema

from contracts.codec import decode_event, subject_for, writer_schema_id
from contracts.compatibility import check_versions
from contracts.envelope import AnyEvent, event_name, event_version_number
from contracts.registry import PackagedSchema, packaged_schemas, schema_matching
from infra.config.settings import Settings
from runtime._metrics import SchemaRegistryMetrics

__all__ = [
    "CCOMPAT_PATH",
    "CompatibilityAnswer",
    "IncompatibleSchema",
    "SchemaRegistry",
    "SchemaRegistryError",
    "SchemaRegistryUnavailable",
    "Subject",
    "SubjectVersion",
    "WriterSchema",
    "decode_record",
]

log = logging.getLogger(__name__)

CCOMPAT_PATH = "/apis/ccompat/v7"
"""Where Apicurio Registry serves the Confluent-compatible API, under its URL."""

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_TIMEOUT = httpx.Timeout(5.0, connect=2.0)

WriterSchema = PackagedSchema | dict[str, Any]
"""A writer schema resolved by id: ours (packaged), or the registry's copy of another."""


class SchemaRegistryError(Exception):
    """The registry did not give what was asked."""

    retryable: bool = False


class SchemaRegistryUnavailable(SchemaRegistryError):
    """The registry cannot be reached, timed out or failed (5xx): try again later."""

    retryable = True


class IncompatibleSchema(SchemaRegistryError):
    """The registry refused a schema: it breaks the subject's compatibility level."""

    def __init__(self, event_type: str, message: str) -> None:
        super().__init__(message)
        self.event_type = event_type


@dataclass(frozen=True)
class SubjectVersion:
    """One version of a subject: its number, its schema id, and the event type it is when
    it is one of ours (None for a version registered from elsewhere)."""

    version: int
    schema_id: int
    event_type: str | None


@dataclass(frozen=True)
class Subject:
    """A subject of the registry: its compatibility level and its versions, oldest first."""

    name: str
    compatibility: str | None
    versions: tuple[SubjectVersion, ...]


@dataclass(frozen=True)
class CompatibilityAnswer:
    """Whether the registry would take a schema into its subject, and if not, what breaks."""

    subject: str
    label: str
    """The schema's event type (``eventType``), or its subject when it names none."""
    compatible: bool
    problems: tuple[str, ...]
    """What breaks, field by field (from :mod:`contracts.compatibility`'s walk against our
    versions of the record): the registry's own answer says only yes or no."""


class SchemaRegistry:
    """An async client of one registry (started and stopped with ``async with``)."""

    def __init__(
        self,
        url: str,
        *,
        compatibility: str = "FULL_TRANSITIVE",
        username: str | None = None,
        password: str | None = None,
        metrics: SchemaRegistryMetrics | None = None,
        timeout: httpx.Timeout = _TIMEOUT,
    ) -> None:
        """``url`` is the registry's root (``http://127.0.0.1:8081``); ``compatibility`` the
        level :meth:`register_catalog` sets on every subject."""
        self.url = url.rstrip("/")
        self.compatibility = compatibility
        self._metrics = metrics
        self._http = httpx.AsyncClient(
            base_url=f"{self.url}{CCOMPAT_PATH}",
            auth=httpx.BasicAuth(username, password or "") if username else None,
            timeout=timeout,
            headers={"Accept": _CONTENT_TYPE},
        )
        self._ids: dict[str, int] = {}
        self._writers: dict[int, WriterSchema | None] = {}
        self._subject_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, metrics: SchemaRegistryMetrics | None = None
    ) -> "SchemaRegistry":
        """The registry of ``settings`` (``SAGA_SCHEMA_REGISTRY_*``)."""
        password = settings.schema_registry_password
        return cls(
            settings.schema_registry_url,
            compatibility=settings.schema_registry_compatibility,
            username=settings.schema_registry_username,
            password=password.get_secret_value() if password is not None else None,
            metrics=metrics,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    async def register_catalog(self) -> dict[str, int]:
        """Register every packaged schema (idempotent: the same schema keeps its id) and set
        each subject's compatibility level; return the id of every event type.

        Raises:
            SchemaRegistryUnavailable: the registry is away; what was registered stays.
            IncompatibleSchema: the registry refused a version (the message names the field).
            SchemaRegistryError: the registry refused otherwise (credentials, say).
        """
        for subject in sorted({subject_for(event_type) for event_type in packaged_schemas()}):
            await self._register_subject(subject)
        return dict(self._ids)

    async def id_for(self, event_type: str) -> int:
        """The registry id of ``event_type``'s packaged schema, registering its subject's
        versions (in order) the first time one of them is asked for.

        Raises:
            UnknownEventType: the event type is not in the catalog.
            SchemaRegistryUnavailable, IncompatibleSchema, SchemaRegistryError: as
                :meth:`register_catalog`.
        """
        known = self._ids.get(event_type)
        if known is not None:
            return known
        await self._register_subject(subject_for(event_type))
        return self._ids[event_type]

    async def register_schema(self, definition: Mapping[str, Any]) -> int:
        """Register an Avro record schema (a new version of an event, say) in its record's
        subject, under the level the subject has; return its id.

        Raises:
            IncompatibleSchema: the registry refused it; the message names what broke, as the
                registry says it and as :mod:`contracts.compatibility` finds it against the
                packaged versions of the same record.
            SchemaRegistryUnavailable, SchemaRegistryError: as :meth:`register_catalog`.
        """
        subject, label = _subject_of(definition)
        return await self._register_definition(subject, definition, label)

    async def subjects(self) -> list[Subject]:
        """Every subject the registry holds, with its level and its versions.

        Raises:
            SchemaRegistryUnavailable, SchemaRegistryError: as :meth:`register_catalog`.
        """
        names = (await self._request("GET", "/subjects")).json()
        subjects = []
        for name in sorted(names):
            config = await self._request("GET", f"/config/{name}", allow=(404,))
            level = config.json().get("compatibilityLevel") if config.is_success else None
            versions = []
            for number in (await self._request("GET", f"/subjects/{name}/versions")).json():
                answer = (await self._request("GET", f"/subjects/{name}/versions/{number}")).json()
                writer = _writer(answer)
                event_type = writer.event_type if isinstance(writer, PackagedSchema) else None
                versions.append(SubjectVersion(int(number), int(answer["id"]), event_type))
            subjects.append(Subject(name, level, tuple(versions)))
        return subjects

    async def check(self, definition: Mapping[str, Any]) -> CompatibilityAnswer:
        """Ask the registry whether ``definition`` (an Avro record schema) may join its
        record's subject under the subject's level, without registering it; a subject it
        does not hold yet takes any schema.

        Raises:
            SchemaRegistryUnavailable, SchemaRegistryError: as :meth:`register_catalog`.
        """
        subject, label = _subject_of(definition)
        response = await self._request(
            "POST",
            f"/compatibility/subjects/{subject}/versions",
            json={"schema": json.dumps(definition), "schemaType": "AVRO"},
            allow=(404,),
        )
        compatible = response.status_code == 404 or bool(response.json().get("is_compatible"))
        problems = () if compatible else tuple(_what_broke(definition))
        return CompatibilityAnswer(subject, label, compatible, problems)

    async def writer_for(self, schema_id: int) -> WriterSchema | None:
        """The schema registered under ``schema_id``: the packaged one when it is ours, else
        the registry's copy, parsed; None when the registry knows no such id (cached too:
        ids are never reused).

        Raises:
            SchemaRegistryUnavailable: the registry is away.
            SchemaRegistryError: it answered otherwise (credentials, say).
        """
        if schema_id in self._writers:
            return self._writers[schema_id]
        response = await self._request("GET", f"/schemas/ids/{schema_id}", allow=(404,))
        writer: WriterSchema | None = None
        if response.status_code != 404:
            writer = _writer(response.json())
        self._writers[schema_id] = writer
        return writer

    async def decode(
        self,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        reader_type: str | None = None,
    ) -> AnyEvent:
        """Decode a consumed record in either wire format, resolving a framed one's schema id
        here (see :func:`contracts.codec.decode_event`).

        Raises:
            UndecodableEvent: the record cannot be read as an event (an unknown schema id is
                one reason): dead-letter it.
            UnknownEventType: ``reader_type`` is not in the catalog.
            SchemaRegistryUnavailable, SchemaRegistryError: not the record's fault: read it
                again later.
        """
        schema_id = writer_schema_id(value, headers)
        if schema_id is None:
            return decode_event(value, headers, reader_type)
        return decode_event(value, headers, reader_type, writer=await self.writer_for(schema_id))

    async def _register_subject(self, subject: str) -> None:
        """Register the packaged versions of ``subject`` in version order, under its level."""
        lock = self._subject_locks.setdefault(subject, asyncio.Lock())
        async with lock:
            versions = sorted(
                (s for s in packaged_schemas().values() if subject_for(s.event_type) == subject),
                key=lambda s: event_version_number(s.event_type),
            )
            if all(schema.event_type in self._ids for schema in versions):
                return
            await self._request(
                "PUT", f"/config/{subject}", json={"compatibility": self.compatibility}
            )
            for schema in versions:
                self._ids[schema.event_type] = await self._register(subject, schema)

    async def _register(self, subject: str, schema: PackagedSchema) -> int:
        schema_id = await self._register_definition(subject, schema.definition, schema.event_type)
        self._writers[schema_id] = schema
        return schema_id

    async def _register_definition(
        self, subject: str, definition: Mapping[str, Any], label: str
    ) -> int:
        response = await self._request(
            "POST",
            f"/subjects/{subject}/versions",
            json={"schema": json.dumps(definition), "schemaType": "AVRO"},
            allow=(409,),
        )
        if response.status_code == 409:
            raise IncompatibleSchema(
                label,
                f"the registry refused {label} in subject {subject} "
                f"({self.compatibility}): {_message(response)}"
                + "".join(f"; {problem}" for problem in _what_broke(definition)),
            )
        return int(response.json()["id"])

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One call to the registry; a status in ``allow`` is returned to the caller.

        Raises:
            SchemaRegistryUnavailable: unreachable, timed out, or 5xx.
            SchemaRegistryError: any other status that is not a success.
        """
        headers = {"Content-Type": _CONTENT_TYPE} if json is not None else None
        try:
            response = await self._http.request(method, path, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            self._count("timeout")
            raise SchemaRegistryUnavailable(
                f"schema registry {self.url} timed out ({method} {path})"
            ) from exc
        except httpx.TransportError as exc:
            self._count("unreachable")
            raise SchemaRegistryUnavailable(
                f"schema registry {self.url} unreachable ({method} {path}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code >= 500:
            self._count("server-error")
            raise SchemaRegistryUnavailable(
                f"schema registry {self.url} answered {response.status_code} to {method} {path}: "
                f"{_message(response)}"
            )
        if response.is_success or response.status_code in allow:
            return response
        self._count("refused")
        raise SchemaRegistryError(
            f"schema registry {self.url} answered {response.status_code} to {method} {path}: "
            f"{_message(response)}"
        )

    def _count(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels(kind).inc()


async def decode_record(
    schemas: "SchemaRegistry | None",
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    reader_type: str | None = None,
) -> AnyEvent:
    """Decode a record in either wire format: framed ones through ``schemas``
    (:meth:`SchemaRegistry.decode`); without a registry only legacy records decode, and a
    framed one is undecodable (its schema id unknown).

    Raises:
        UndecodableEvent, UnknownEventType, SchemaRegistryUnavailable, SchemaRegistryError:
            as :meth:`SchemaRegistry.decode`.
    """
    if schemas is None:
        return decode_event(value, headers, reader_type)
    return await schemas.decode(value, headers, reader_type)


def _subject_of(definition: Mapping[str, Any]) -> tuple[str, str]:
    """The subject of a record schema (its full name) and how to name it in messages."""
    name = str(definition["name"])
    namespace = definition.get("namespace")
    subject = name if "." in name or not namespace else f"{namespace}.{name}"
    return subject, str(definition.get("eventType", subject))


def _writer(answer: Any) -> WriterSchema | None:
    """The writer schema of a ``GET /schemas/ids/{id}`` answer (None if it holds none)."""
    try:
        definition = json.loads(answer["schema"])
    except (TypeError, KeyError, ValueError):
        return None
    if answer.get("schemaType", "AVRO") != "AVRO" or not isinstance(definition, dict):
        return None  # the id is another kind of schema: no Avro record of ours reads it
    try:
        packaged = schema_matching(definition)
    except Exception:  # noqa: BLE001 - not Avro: decode_event says so, with the record
        return definition
    return packaged if packaged is not None else definition


def _message(response: httpx.Response) -> str:
    """The registry's own message in an error answer, or the answer's start."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def _what_broke(definition: Mapping[str, Any]) -> list[str]:
    """What the structural walk of :mod:`contracts.compatibility` finds between ``definition``
    and the packaged versions of the same record (the registry's message may not name it)."""
    try:
        parsed: Any = parse_schema(dict(definition))
        full_name = parsed["name"]
    except Exception:  # noqa: BLE001 - not a schema we can walk: the registry's word stands
        return []
    versions = {
        event_version_number(s.event_type): s
        for s in packaged_schemas().values()
        if s.parsed["name"] == full_name and s.definition != definition
    }
    if not versions:
        return []
    event = event_name(next(iter(versions.values())).event_type)
    event_type = definition.get("eventType")
    number = (
        event_version_number(event_type)
        if isinstance(event_type, str) and event_type.startswith(f"{event}.v")
        else max(versions) + 1
    )
    problems: list[str] = []
    for other_number, other in sorted(versions.items()):
        pair = sorted([(other_number, other.definition), (number, definition)], key=_first)
        (old_number, old), (new_number, new) = pair
        problems += map(str, check_versions(event, old_number, old, new_number, new, samples=5))
    return list(dict.fromkeys(problems))


def _first(pair: tuple[int, Mapping[str, Any]]) -> int:
    return pair[0]
