"""`saga start/show/list/stuck/cancel/repair/ops-log` and `saga return start/show`: the orchestrator
API's operations from a shell.

Each command is a call of the running API (``OrchestratorApiClient``), so every operation has
one implementation, the API's. Tables for people; ``--json`` prints the API's answer. Exit
codes: 0 done, 1 refused or the API does not answer, 2 bad arguments.
"""

import argparse
import functools
import getpass
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cli.output import fail, print_json, table
from contracts.activities import SagaStatus
from infra.config.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pydantic import BaseModel

    from cli.api_client import OrchestratorApiClient, SagaEnded
    from orchestrator.api.models import (
        EventView,
        OperatorLogEntry,
        ReturnView,
        SagaType,
        SagaView,
        StuckSaga,
    )

__all__ = ["register"]

_Handler = Callable[[Settings, argparse.Namespace], int]
_AddCommand = Callable[[str, _Handler, str], argparse.ArgumentParser]
_Request = TypeVar("_Request", bound="BaseModel")
_ApiHandler = Callable[["OrchestratorApiClient", argparse.Namespace], int]

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_OPTION_OF = {
    "older_than_seconds": "--older-than",
    "rate_per_second": "--rate",
    "limit": "--limit",
    "operator": "--operator",
    "requested_by": "--by",
    "reason": "--reason",
    "step": "--step",
}
_ERROR_WIDTH = 60
_SAGA_TYPES = ("order", "return")
# The `SagaStatus` search attribute's values (orchestrator.api.models.SearchStatus, not
# imported: the parser is built before any command runs).
_STATUSES = ("RUNNING", "COMPENSATING", "COMPLETED", "CANCELLED", "REJECTED", "EXPIRED")


class _BadArguments(Exception):
    """The command line cannot be used as given (exit 2)."""


def register(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", add: _AddCommand
) -> None:
    """Add the operations commands to ``saga``.

    Args:
        commands: ``saga``'s subcommands; these commands are all top-level, so ``add`` is
            enough for them.
        add: ``saga``'s ``add(name, handler, help)``, which makes one subcommand.
    """
    start = add("start", _calling_api(_start), "Place an order (an OrderRequest JSON file).")
    start.add_argument("file", metavar="FILE.json", help="the order; `-` reads standard input")
    _json_option(start)

    show = add("show", _calling_api(_show), "Show a saga: its steps, notes and events.")
    show.add_argument("order_id", metavar="ORDER_ID")
    show.add_argument(
        "-f", "--follow", action="store_true", help="print each event as it arrives until the end"
    )
    _json_option(show, "one JSON object (with --follow: one per line)")

    list_ = add("list", _calling_api(_list), "List sagas by type, status, step, customer and age.")
    _type_option(list_, "only sagas of this type (default: both)")
    list_.add_argument("--status", type=str.upper, choices=_STATUSES)
    list_.add_argument("--step", help="the current step (charge_payment, ...)")
    list_.add_argument("--customer", metavar="CUSTOMER_ID")
    list_.add_argument("--older-than", type=_seconds, metavar="AGE", help="started before (5m)")
    list_.add_argument("--newer-than", type=_seconds, metavar="AGE", help="started since (1h)")
    list_.add_argument("--page-size", type=int, default=50, help="sagas per page (default 50)")
    list_.add_argument("--page-token", help="the next page, as a previous page named it")
    _json_option(list_)

    stuck = add(
        "stuck",
        _calling_api(_stuck),
        "List running sagas whose step (or compensation) has not moved for a while.",
    )
    stuck.add_argument("--older-than", type=_seconds, default=300, metavar="AGE", help="default 5m")
    stuck.add_argument("--step", help="only this step")
    _type_option(stuck, "only sagas of this type (default: both)")
    _json_option(stuck, "one JSON array, for scripts")

    cancel = add(
        "cancel", _calling_api(_cancel), "Ask a saga to cancel its order (refused after dispatch)."
    )
    cancel.add_argument("order_id", metavar="ORDER_ID")
    cancel.add_argument("--reason", required=True, help="why")
    cancel.add_argument(
        "--by",
        metavar="WHO",
        help="who asks, recorded beside the API token's name (default: your login name)",
    )
    _json_option(cancel)

    repair = add(
        "repair",
        _calling_api(_repair),
        "Move a stuck step on: retry it now, or record that it was settled by hand. "
        "One saga, or with --bulk every saga stuck on the step (a dry run unless --apply).",
    )
    repair.add_argument(
        "order_id",
        metavar="ID",
        nargs="?",
        help="the order id (a return's saga: the return id, with --type return); omit with --bulk",
    )
    _type_option(repair, "the saga's type (default: order); with --bulk, only sagas of this type")
    repair.add_argument("--step", required=True, help="the stuck step (charge_payment, ...)")
    action = repair.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--retry-now", dest="action", action="store_const", const="retry_now", help="try it now"
    )
    action.add_argument(
        "--resolve",
        dest="action",
        action="store_const",
        const="resolve_manually",
        help="a person settled it by hand; the saga goes on",
    )
    repair.add_argument("--reason", required=True, help="why")
    repair.add_argument(
        "--operator",
        metavar="WHO",
        help="who, recorded beside the API token's name (default: your login name)",
    )
    repair.add_argument("--bulk", action="store_true", help="every saga stuck on --step")
    repair.add_argument(
        "--older-than", type=_seconds, metavar="AGE", help="--bulk: stuck for at least (10m)"
    )
    repair.add_argument("--apply", action="store_true", help="--bulk: do it (default: dry run)")
    repair.add_argument("--rate", type=float, help="--bulk: sagas per second (default 2)")
    repair.add_argument("--limit", type=int, help="--bulk: at most this many (default 100)")
    _json_option(repair)

    ops_log = add(
        "ops-log",
        _calling_api(_ops_log),
        "The operator log: every cancel, retry-now, resolve and bulk repair, newest first.",
    )
    ops_log.add_argument("--order", metavar="ORDER_ID", help="only actions on this order's sagas")
    ops_log.add_argument("--since", type=_seconds, metavar="AGE", help="only the last AGE (1h)")
    _type_option(ops_log, "only actions on sagas of this type (default: both)")
    ops_log.add_argument("--page-size", type=int, default=50, help="entries per page (default 50)")
    ops_log.add_argument("--page-token", help="the next (older) page, as a previous page named it")
    _json_option(ops_log, "the API's page as JSON, for scripts")

    returns = commands.add_parser(
        "return",
        help="Returns: start one (items of an order sent back), show one.",
        description="Returns: start one (items of an order sent back), show one.",
    )
    return_commands = returns.add_subparsers(
        dest="return_command", required=True, metavar="COMMAND"
    )
    start_return = return_commands.add_parser(
        "start",
        help="Start a return (a JSON file: return_id, items, reason).",
        description="Start a return (a JSON file: return_id, items, reason; see "
        "examples/return.json).",
    )
    start_return.set_defaults(handler=_calling_api(_start_return))
    start_return.add_argument(
        "file", metavar="FILE.json", help="the return; `-` reads standard input"
    )
    start_return.add_argument(
        "--order",
        metavar="ORDER_ID",
        help="the order the items come from (default: the file's order_id)",
    )
    _json_option(start_return)
    show_return = return_commands.add_parser(
        "show",
        help="Show a return: its saga's steps, outcome and notes, and its events.",
        description="Show a return: its saga's steps, outcome and notes, and its events.",
    )
    show_return.set_defaults(handler=_calling_api(_show_return))
    show_return.add_argument("return_id", metavar="RETURN_ID")
    show_return.add_argument(
        "-f", "--follow", action="store_true", help="print each event as it arrives until the end"
    )
    _json_option(show_return, "one JSON object (with --follow: one per line)")


# --- Commands ------------------------------------------------------------------------------


def _start(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    accepted = api.place_order(_read_body(args.file, "an OrderRequest"))
    if args.json:
        return print_json(accepted)
    if accepted.created:
        print(f"order {accepted.order_id}: created, saga {accepted.workflow_id} started")
    else:
        print(
            f"order {accepted.order_id}: existing, the same order was placed before "
            f"(saga {accepted.workflow_id})"
        )
    print(f"  saga    {accepted.links.saga}")
    print(f"  events  {accepted.links.events}")
    print(f"  Web UI  {accepted.links.web_ui}")
    print(f"Follow it with `saga show {accepted.order_id} --follow`.")
    return 0


def _show(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    if args.follow:

        def ended() -> None:
            view = api.get_saga(args.order_id)
            _print_status(view)
            print()
            print(f"Web UI: {view.links.web_ui}")

        return _follow(api.follow_saga(args.order_id), ended, json_output=args.json)
    view = api.get_saga(args.order_id)
    if args.json:
        return print_json(view)
    _print_status(view)
    print()
    print(_events_table(view.events) if view.events else "no events yet")
    print()
    print(f"Web UI: {view.links.web_ui}")
    return 0


def _start_return(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    body = _read_body(args.file, "a return (return_id, items, reason)")
    named = body.pop("order_id", None)
    order_id = args.order or named
    if not isinstance(order_id, str) or not order_id:
        raise _BadArguments(
            "name the order the items come from: --order ORDER_ID, or an order_id in the file"
        )
    accepted = api.start_return(order_id, body)
    if args.json:
        return print_json(accepted)
    state = (
        f"created, saga {accepted.workflow_id} started"
        if accepted.created
        else f"existing, the same return was asked for before (saga {accepted.workflow_id})"
    )
    print(f"return {accepted.return_id} of order {accepted.order_id}: {state}")
    print(f"  saga    {accepted.links.saga}")
    print(f"  events  {accepted.links.events}")
    print(f"  Web UI  {accepted.links.web_ui}")
    print(f"Follow it with `saga return show {accepted.return_id} --follow`.")
    return 0


def _show_return(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    if args.follow:

        def ended() -> None:
            view = api.get_return(args.return_id)
            _print_return(view)
            print()
            print(f"Web UI: {view.links.web_ui}")

        return _follow(api.follow_return(args.return_id), ended, json_output=args.json)
    view = api.get_return(args.return_id)
    if args.json:
        return print_json(view)
    _print_return(view)
    print()
    print(_events_table(view.events) if view.events else "no events yet")
    print()
    print(f"Web UI: {view.links.web_ui}")
    return 0


def _follow(
    messages: "Iterator[EventView | SagaEnded]",
    print_end: Callable[[], None],
    *,
    json_output: bool,
) -> int:
    """Print each event of a saga's stream as it arrives; at its end, the saga's status (with
    ``print_end``), or with ``json_output`` one JSON object per line."""
    from cli.api_client import SagaEnded

    if not json_output:
        print(f"{'TIME':<24}  {'TYPE':<26}  SOURCE")
    try:
        for message in messages:
            if isinstance(message, SagaEnded):
                if json_output:
                    end = {"status": message.status}
                    if message.outcome is not None:
                        end["outcome"] = message.outcome
                    print(json.dumps(end), flush=True)
                    return 0
                print()
                print_end()
                return 0
            if json_output:
                print(message.model_dump_json(), flush=True)
            else:
                row = f"{_when(message.timestamp):<24}  {message.event_type:<26}  {message.source}"
                print(row, flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


def _list(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    from orchestrator.api.models import SagaType, SearchStatus

    page = api.list_sagas(
        saga_type=SagaType(args.type) if args.type else None,
        status=SearchStatus(args.status) if args.status else None,
        step=args.step,
        customer_id=args.customer,
        older_than_seconds=args.older_than,
        newer_than_seconds=args.newer_than,
        page_size=args.page_size,
        page_token=args.page_token,
    )
    if args.json:
        return print_json(page)
    if not page.sagas:
        print("no saga matches")
        return 0
    rows = [
        [
            saga.saga_type.value,
            saga.saga_id,
            saga.order_id,
            saga.saga_status or "-",
            saga.saga_step or "-",
            saga.customer_id or "-",
            saga.execution_status,
            _when(saga.started_at, seconds_only=True),
            _when(saga.closed_at, seconds_only=True),
        ]
        for saga in page.sagas
    ]
    headers = ["TYPE", "ID", "ORDER", "STATUS", "STEP", "CUSTOMER", "TEMPORAL", "STARTED"]
    print(table(rows, [*headers, "CLOSED"]))
    if page.next_page_token:
        print(f"more: repeat with --page-token {page.next_page_token}")
    return 0


def _stuck(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    stuck = api.stuck_sagas(args.older_than, step=args.step, saga_type=_saga_type(args))
    if args.json:
        return print_json(stuck)
    if not stuck:
        on = f" on {args.step}" if args.step else ""
        kind = f"{args.type} saga" if args.type else "saga"
        print(f"no {kind} stuck{on} for {_duration(args.older_than)} or more")
        return 0
    print(_stuck_table(stuck))
    print(
        f"{len(stuck)} saga(s) stuck; move a FLAGGED one on with `saga repair ID "
        "[--type return] --step STEP --retry-now|--resolve --reason WHY`"
    )
    return 0


def _cancel(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    from orchestrator.api.models import CancelRequest

    request = _build(CancelRequest, reason=args.reason, requested_by=args.by or _login_name())
    status = api.cancel_saga(args.order_id, request)
    if args.json:
        return print_json(status)
    print(
        f"order {args.order_id}: cancel asked; the saga is {status.status.value} "
        f"(step {status.current_step or '-'}); it refuses once the parcel is dispatched. "
        f"Follow it with `saga show {args.order_id} --follow`."
    )
    return 0


def _repair(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    from orchestrator.api.models import RepairRequest

    if args.bulk:
        return _bulk_repair(api, args)
    if args.order_id is None:
        raise _BadArguments(
            "name the saga to repair (ORDER_ID; with --type return, RETURN_ID), or pass --bulk"
        )
    bulk_only = [
        option
        for option, value in (
            ("--older-than", args.older_than),
            ("--rate", args.rate),
            ("--limit", args.limit),
            ("--apply", args.apply or None),
        )
        if value is not None
    ]
    if bulk_only:
        raise _BadArguments(f"{', '.join(bulk_only)}: only with --bulk")
    request = _build(
        RepairRequest,
        action=args.action,
        step=args.step,
        operator=args.operator or _login_name(),
        reason=args.reason,
    )
    saga_type = _saga_type(args)
    if saga_type is None:
        from orchestrator.api.models import SagaType

        saga_type = SagaType.ORDER
    result = api.repair_saga(args.order_id, request, saga_type=saga_type)
    if args.json:
        return print_json(result)
    print(f"{result.saga_type.value} {result.saga_id}: {result.detail}")
    return 0


def _bulk_repair(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    from orchestrator.api.models import BulkRepairRequest

    if args.order_id is not None:
        raise _BadArguments("--bulk repairs every saga stuck on --step: leave out the ID")
    if args.older_than is None:
        raise _BadArguments("--bulk needs --older-than (e.g. 10m): how long stuck at least")
    paced = {"rate_per_second": args.rate, "limit": args.limit}
    request = _build(
        BulkRepairRequest,
        action=args.action,
        step=args.step,
        older_than_seconds=args.older_than,
        operator=args.operator or _login_name(),
        reason=args.reason,
        dry_run=not args.apply,
        saga_type=_saga_type(args),
        **{name: value for name, value in paced.items() if value is not None},
    )
    report = api.bulk_repair(request)
    refused = sum(item.outcome in ("refused", "error") for item in report.items)
    if args.json:
        print_json(report)
        return 1 if refused and not report.dry_run else 0
    age = _duration(request.older_than_seconds)
    if not report.items:
        print(f"no saga stuck on {report.step} for {age} or more")
        return 0
    rows = [
        [item.saga_type.value, item.saga_id, item.step, item.outcome, item.detail]
        for item in report.items
    ]
    print(table(rows, ["TYPE", "ID", "STEP", "OUTCOME", "DETAIL"]))
    if report.dry_run:
        would = sum(item.outcome == "would-repair" for item in report.items)
        print(
            f"dry run: {report.matched} saga(s) stuck on {report.step} for {age} or more, "
            f"{would} would be repaired ({report.action}); repeat with --apply to do it"
        )
        return 0
    repaired = sum(item.outcome == "repaired" for item in report.items)
    skipped = sum(item.outcome == "skipped" for item in report.items)
    print(
        f"{report.action}: {repaired} repaired, {skipped} skipped (already repaired in this "
        f"stuck episode, or moved on), {refused} refused or failed of {report.matched}; "
        f"`saga ops-log` shows it (bulk {report.bulk_id})"
    )
    return 1 if refused else 0


def _ops_log(api: "OrchestratorApiClient", args: argparse.Namespace) -> int:
    page = api.operator_log(
        order_id=args.order,
        saga_type=_saga_type(args),
        since_seconds=args.since,
        page_size=args.page_size,
        page_token=args.page_token,
    )
    if args.json:
        return print_json(page)
    if not page.entries:
        print("no operator action matches")
        return 0
    print(table([_ops_log_row(entry) for entry in page.entries], _OPS_LOG_HEADERS))
    if page.next_page_token:
        print(f"more: repeat with --page-token {page.next_page_token}")
    return 0


# --- Output --------------------------------------------------------------------------------

_OPS_LOG_HEADERS = ["SEQ", "TIME", "WHO", "ACTION", "SAGA", "STEP", "OUTCOME", "DETAIL"]


def _ops_log_row(entry: "OperatorLogEntry") -> list[str]:
    selection = entry.selection
    if selection is not None:
        action = f"bulk {selection.action}" + (" (dry run)" if selection.dry_run else "")
        saga = f"{len(entry.items or [])} saga(s)"
    else:
        action = entry.action + (" (bulk)" if entry.bulk_id else "")
        saga = f"{entry.saga_type.value} {entry.saga_id}" if entry.saga_type else "-"
    return [
        str(entry.seq),
        _when(entry.at, seconds_only=True),
        entry.principal,
        action,
        saga,
        entry.step or "-",
        entry.outcome,
        _short(entry.detail),
    ]


def _print_status(view: "SagaView") -> None:
    saga = view.saga
    print(
        f"order {view.order_id}  {saga.status.value}  (Temporal: {view.execution_status})  "
        f"customer {saga.customer_id}  current step: {saga.current_step or '-'}"
    )
    _print_saga(saga)


def _print_return(view: "ReturnView") -> None:
    saga = view.saga
    print(
        f"return {view.return_id} of order {view.order_id}  {saga.outcome.value}  "
        f"(saga: {saga.status.value}, Temporal: {view.execution_status})  "
        f"customer {saga.customer_id}  current step: {saga.current_step or '-'}"
    )
    _print_saga(saga)


def _print_saga(saga: SagaStatus) -> None:
    """A saga's steps, its failure and its notes."""
    print()
    print(_steps_table(saga))
    if saga.failure_reason:
        print()
        print(f"failure: {saga.failure_reason} (step {saga.failed_step or '-'})")
    if saga.notes:
        print()
        print("notes:")
        notes = [[_when(note.at), note.kind, note.detail] for note in saga.notes]
        print(table(notes, ["AT", "KIND", "DETAIL"]))


def _steps_table(saga: SagaStatus) -> str:
    rows = [
        [
            step.name,
            step.state.value,
            str(step.attempts),
            _short(step.last_error),
            str(step.compensation_attempts),
            _short(step.compensation_last_error),
            (
                f"resolved by {step.resolution.operator}"
                if step.resolution
                else f"parked since {_when(step.parked_since, seconds_only=True)}"
                if step.parked_since
                else "yes"
                if step.stuck
                else "-"
            ),
        ]
        for step in saga.steps
    ]
    headers = ["STEP", "STATE", "ATTEMPTS", "LAST ERROR", "COMP. ATTEMPTS", "COMP. ERROR", "STUCK"]
    return table(rows, headers)


def _events_table(events: "list[EventView]") -> str:
    rows = [[_when(event.timestamp), event.event_type, event.source] for event in events]
    return table(rows, ["TIME", "TYPE", "SOURCE"])


def _stuck_table(stuck: "list[StuckSaga]") -> str:
    rows = [
        [
            saga.saga_type.value,
            saga.saga_id,
            saga.step + (" (undo)" if saga.compensating else ""),
            saga.saga_status,
            saga.owner or "-",
            _duration(saga.stuck_for_seconds),
            str(saga.attempts),
            "parked" if saga.parked_since else "yes" if saga.flagged_stuck else "-",
            _short(saga.last_failure),
        ]
        for saga in stuck
    ]
    headers = ["TYPE", "ID", "STEP", "STATUS", "OWNER", "FOR", "ATTEMPTS", "FLAGGED"]
    headers.append("LAST FAILURE")
    return table(rows, headers)


def _when(moment: datetime | None, *, seconds_only: bool = False) -> str:
    if moment is None:
        return "-"
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (text[:-7] if seconds_only else text[:-3]) + "Z"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            rest = whole % size
            if not rest:
                return f"{whole // size}{unit}"
            smaller = {"d": ("h", 3600), "h": ("m", 60), "m": ("s", 1)}[unit]
            return f"{whole // size}{unit}{rest // smaller[1]:02d}{smaller[0]}"
    return f"{whole}s"


def _short(text: str | None) -> str:
    if not text:
        return "-"
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 3] + "..."


# --- Input ---------------------------------------------------------------------------------


def _seconds(text: str) -> int:
    """A duration: ``90s``, ``5m``, ``2h``, ``1d``, or plain seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write 90s, 5m, 2h, 1d or plain seconds"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _read_body(file: str, what: str) -> dict[str, Any]:
    """The JSON object in ``file`` (``-``: standard input), ``what`` the command sends."""
    name = "standard input" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise _BadArguments(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise _BadArguments(f"{name} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadArguments(f"{name} holds no JSON object: {what} is one")
    return body


def _build(kind: type[_Request], **fields: object) -> _Request:
    from pydantic import ValidationError

    from cli.api_client import describe_field_errors

    try:
        return kind.model_validate(fields)
    except ValidationError as exc:
        raise _BadArguments(describe_field_errors(exc.errors(), _OPTION_OF)) from None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "saga-cli"


def _type_option(parser: argparse.ArgumentParser, help_: str) -> None:
    parser.add_argument("--type", choices=_SAGA_TYPES, help=help_)


def _saga_type(args: argparse.Namespace) -> "SagaType | None":
    from orchestrator.api.models import SagaType

    return SagaType(args.type) if args.type else None


def _json_option(
    parser: argparse.ArgumentParser, help_: str = "the API's JSON answer, for scripts"
) -> None:
    parser.add_argument("--json", action="store_true", help=help_)


def _calling_api(handler: _ApiHandler) -> _Handler:
    """``handler`` as a ``saga`` command: given a client of the API, its errors one line."""

    @functools.wraps(handler)
    def command(settings: Settings, args: argparse.Namespace) -> int:
        from cli.api_client import OrchestratorApiClient, OrchestratorApiError
        from infra.config.settings import api_headers

        try:
            with OrchestratorApiClient(settings.api_url, headers=api_headers(settings)) as api:
                return handler(api, args)
        except _BadArguments as exc:
            return fail(exc, 2)
        except OrchestratorApiError as exc:
            return fail(exc, 1)
        except BrokenPipeError:
            # The reader left (`saga list | head`): say nothing more, not even at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

    return command
