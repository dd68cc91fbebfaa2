"""`saga schemas`: the event schemas at the schema registry: list them, check a new version
against them (the registry's own verdict beside the project's compatibility check), register
one."""

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from cli.output import fail, print_json, table
from infra.config.settings import Settings

__all__ = ["register"]

_T = TypeVar("_T")

Handler = Callable[[Settings, argparse.Namespace], int]


def register(commands: Any) -> None:
    """Add `saga schemas list|check|register` to the ``saga`` command's subcommands."""
    schemas = commands.add_parser(
        "schemas", help="Event schemas at the schema registry: list, check, register."
    )
    sub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
        parser.set_defaults(handler=handler)
        parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
        return parser

    add("list", _list, "Every subject at the registry: its level, versions, ids, event types.")
    check = add(
        "check",
        _check,
        "Check the packaged schemas against each other (contracts.compatibility) and against "
        "what the registry holds, and each FILE (a new version) before registering it.",
    )
    check.add_argument("files", nargs="*", metavar="FILE.avsc", help="schemas to check")
    put = add(
        "register",
        _register,
        "Register each FILE (a new version of an event) under its record's subject; without "
        "FILE, the whole packaged catalog (idempotent).",
    )
    put.add_argument("files", nargs="*", metavar="FILE.avsc", help="schemas to register")


def _run(settings: Settings, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``work(registry)`` with a client of the settings' registry."""
    from runtime import SchemaRegistry

    async def main() -> _T:
        async with SchemaRegistry.from_settings(settings) as registry:
            return await work(registry)

    return asyncio.run(main())


def _guarded(handler: Handler) -> Handler:
    """``handler``, with the registry's failures as one line saying what to do."""

    def guarded(settings: Settings, args: argparse.Namespace) -> int:
        from runtime import SchemaRegistryError

        try:
            return handler(settings, args)
        except SchemaRegistryError as exc:
            hint = " (is the stack up? `saga ps`, `saga up`)" if exc.retryable else ""
            return fail(f"{exc}{hint}", 1)

    return guarded


def _read(files: list[str]) -> list[dict[str, Any]]:
    definitions = []
    for name in files:
        try:
            definition = json.loads(Path(name).read_text())
        except (OSError, ValueError) as exc:
            raise _BadFile(f"{name}: not a readable JSON schema ({exc})") from None
        if not isinstance(definition, dict) or definition.get("type") != "record":
            raise _BadFile(f"{name}: not an Avro record schema (its type must be record)")
        definitions.append(definition)
    return definitions


class _BadFile(Exception):
    pass


@_guarded
def _list(settings: Settings, args: argparse.Namespace) -> int:
    subjects = _run(settings, lambda registry: registry.subjects())
    if args.json:
        return print_json([asdict(subject) for subject in subjects])
    rows = [
        [
            subject.name,
            subject.compatibility or "-",
            ", ".join(f"v{v.version}: id {v.schema_id}" for v in subject.versions),
            ", ".join(v.event_type or "(not ours)" for v in subject.versions),
        ]
        for subject in subjects
    ]
    print(table(rows, ["SUBJECT", "LEVEL", "VERSIONS", "EVENT TYPES"]))
    print(f"{len(subjects)} subject(s) at {settings.schema_registry_url}")
    return 0


@_guarded
def _check(settings: Settings, args: argparse.Namespace) -> int:
    from contracts.compatibility import check_compatibility
    from contracts.registry import packaged_schemas

    try:
        proposed = _read(args.files)
    except _BadFile as exc:
        return fail(exc, 2)
    local = check_compatibility()
    definitions = proposed or [schema.definition for schema in packaged_schemas().values()]

    async def ask(registry: Any) -> list[Any]:
        return [await registry.check(definition) for definition in definitions]

    answers = _run(settings, ask)
    if args.json:
        print_json(
            {
                "local": {"ok": local.ok, "problems": [str(f) for f in local.findings]},
                "registry": [asdict(answer) for answer in answers],
            }
        )
    else:
        print(f"packaged schemas, with each other: {'compatible' if local.ok else 'BROKEN'}")
        for finding in local.findings:
            print(f"  {finding}")
        for answer in answers:
            verdict = "compatible" if answer.compatible else "REFUSED"
            print(f"{answer.label} at {settings.schema_registry_url} ({answer.subject}): {verdict}")
            for problem in answer.problems:
                print(f"  {problem}")
    return 0 if local.ok and all(answer.compatible for answer in answers) else 1


@_guarded
def _register(settings: Settings, args: argparse.Namespace) -> int:
    from runtime import IncompatibleSchema

    try:
        proposed = _read(args.files)
    except _BadFile as exc:
        return fail(exc, 2)

    async def put(registry: Any) -> dict[str, int]:
        if not proposed:
            ids: dict[str, int] = await registry.register_catalog()
            return ids
        return {
            str(definition.get("eventType", definition["name"])): await registry.register_schema(
                definition
            )
            for definition in proposed
        }

    try:
        ids = _run(settings, put)
    except IncompatibleSchema as exc:
        return fail(f"{exc}; keep the old fields and give every new one a default", 1)
    if args.json:
        return print_json(ids)
    print(
        table(
            [[event_type, schema_id] for event_type, schema_id in ids.items()], ["EVENT TYPE", "ID"]
        )
    )
    return 0
