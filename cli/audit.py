"""`saga audit`: check every order's saga, records and events against each other.

Exit codes: 0 no violation, 1 violations found, 2 a source cannot be read (or bad arguments).
"""

import argparse
import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cli.output import fail, table
from infra.config.settings import Settings

if TYPE_CHECKING:
    from ops.audit import AuditReport

__all__ = ["register", "render_report"]

_Handler = Callable[[Settings, argparse.Namespace], int]
_AddCommand = Callable[[str, _Handler, str], argparse.ArgumentParser]

_AGE = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_IN_FLIGHT_SHOWN = 20


def register(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", add: _AddCommand
) -> None:
    """Add ``saga audit``.

    Args:
        commands: ``saga``'s subcommands (``audit`` is top-level, so ``add`` is enough).
        add: ``saga``'s ``add(name, handler, help)``, which makes one subcommand.
    """
    audit = add(
        "audit",
        _audit,
        "Cross-check every order: its saga's end (Temporal), the services' records "
        "(databases) and its events (Kafka); exit 1 if anything disagrees.",
    )
    audit.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the sagas in flight to end",
    )
    audit.add_argument(
        "--offline",
        action="store_true",
        help="read only the databases (Temporal or Kafka is down): records against records",
    )
    audit.add_argument(
        "--order",
        action="append",
        metavar="ORDER_ID",
        help="only this order (repeat for more)",
    )
    audit.add_argument(
        "--since",
        type=_moment,
        metavar="AGE|TIME",
        help="only orders first seen since then: an age (90s, 5m, 2h, 1d) or an ISO 8601 time",
    )
    audit.add_argument("--json", action="store_true", help="the report as JSON, for scripts")


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from ops.audit import AuditSourceError, run_audit

    try:
        report = asyncio.run(
            run_audit(
                settings,
                wait_seconds=args.wait,
                offline=args.offline,
                orders=args.order,
                since=args.since,
            )
        )
    except AuditSourceError as exc:
        return fail(exc, 2)
    print(report.model_dump_json(indent=2) if args.json else render_report(report))
    return 1 if report.violations else 0


def render_report(report: "AuditReport") -> str:
    """The report for people: sources, counts per check, the violations, a summary line."""
    from ops.audit import CHECKS

    sources = [
        [source.name, "yes" if source.used else "no", source.detail] for source in report.sources
    ]
    checks = [
        [
            kind.value,
            str(report.counts[kind]) if kind in report.counts else "skipped",
            report.skipped_checks.get(kind, meaning),
        ]
        for kind, meaning in CHECKS.items()
    ]
    parts = [
        table(sources, ["SOURCE", "USED", "DETAIL"]),
        table(checks, ["CHECK", "VIOLATIONS", "WHAT IT LOOKS FOR"]),
    ]
    if report.violations:
        rows = [[v.order_id, v.kind.value, v.detail] for v in report.violations]
        parts.append(table(rows, ["ORDER", "KIND", "EVIDENCE"]))
    summary = f"checked {report.checked_orders} order(s) in {report.seconds:.1f} s: " + (
        f"{len(report.violations)} violation(s)" if report.violations else "no violation"
    )
    if report.in_flight:
        shown = ", ".join(report.in_flight[:_IN_FLIGHT_SHOWN])
        more = len(report.in_flight) - _IN_FLIGHT_SHOWN
        summary += (
            f"; {len(report.in_flight)} saga(s) in flight, not checked: {shown}"
            + (f" and {more} more (--json lists all)" if more > 0 else "")
            + " (wait for them with --wait SECONDS)"
        )
    if report.not_found:
        summary += f"; no source knows order(s) {', '.join(report.not_found)}"
    if report.offline:
        summary += (
            "\noffline: only the databases were read; each order's end is its order record, "
            "and records are not checked against events"
        )
    parts.append(summary)
    return "\n\n".join(parts)


def _moment(text: str) -> datetime:
    """``--since``: an age before now (``90s``, ``5m``, ``2h``, ``1d``) or an ISO 8601 time."""
    match = _AGE.match(text.strip())
    if match is not None:
        age = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return datetime.now(UTC) - timedelta(seconds=age)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an age (90s, 5m, 2h, 1d) nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone(UTC)
