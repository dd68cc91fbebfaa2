"""``saga chaos``: the command line of the chaos run (:mod:`ops.chaos`)."""

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from cli.output import fail, say
from infra.config.settings import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Options = TypeVar("_Options", bound="DataclassInstance")

__all__ = ["register"]


class _Report(Protocol):
    passed: bool

    def model_dump_json(self, *, indent: int | None = None) -> str: ...


_Add = Callable[[str, Callable[[Settings, argparse.Namespace], int], str], argparse.ArgumentParser]


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _chaos(settings: Settings, args: argparse.Namespace) -> int:
    from ops.chaos import ChaosError, ChaosOptions, render_text, run_chaos

    if args.topology is not None:
        settings = settings.model_copy(update={"topology": args.topology})
    options = options_from(
        ChaosOptions,
        args,
        kills=_names(args.kill) if args.kill is not None else None,
        pauses=_names(args.pause) if args.pause is not None else None,
        pause_s=args.pause_seconds,
        outage_s=args.outage_seconds,
        timeout_s=args.timeout,
    )
    try:
        report = asyncio.run(run_chaos(settings, options, say=say))
    except ChaosError as exc:
        return fail(exc, 2)
    return _report(settings, args, f"chaos-{report.run_id}", report, render_text(report))


def _soak(settings: Settings, args: argparse.Namespace) -> int:
    from ops.chaos import ChaosError
    from ops.chaos.soak import SoakOptions, render_soak, run_soak

    options = options_from(SoakOptions, args)
    try:
        report = asyncio.run(run_soak(settings, options, say=say))
    except ChaosError as exc:
        return fail(exc, 2)
    return _report(settings, args, f"soak-{report.run_id}", report, render_soak(report))


def _report(
    settings: Settings, args: argparse.Namespace, name: str, report: "_Report", text: str
) -> int:
    """Write the JSON report, print it (or its tables), and exit 0 only if the run passed."""
    report_dir: Path = args.report_dir or settings.run_dir / "chaos"
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"{name}.json"
    path.write_text(report.model_dump_json(indent=2))
    print(report.model_dump_json(indent=2) if args.json else text)
    print(f"report: {path}", file=sys.stderr)
    return 0 if report.passed else 1


def options_from(kind: type[_Options], args: argparse.Namespace, **given: object) -> _Options:
    """The options dataclass ``kind`` from the command line: each field from the argument of
    its name (where the command has one), or from ``given``."""
    named = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(kind)
        if hasattr(args, field.name)
    }
    return kind(**(named | given))


def add_load_arguments(
    parser: argparse.ArgumentParser, *, orders: int, concurrency: int, report_dir: str
) -> None:
    """The options every command that drives orders through the stack takes: how many, how
    many at once, where its report goes and ``--json``."""
    parser.add_argument(
        "--orders", type=int, default=orders, help=f"orders to place (default {orders})"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=concurrency,
        help=f"orders in flight at once (default {concurrency})",
    )
    parser.add_argument(
        "--report-dir", type=Path, help=f"where to write (default: <run dir>/{report_dir})"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report")


def register(add: _Add) -> None:
    """Add ``saga chaos`` and ``saga soak`` to the command line."""
    chaos = add(
        "chaos",
        _chaos,
        "Kill and restart every process of the running stack, one at a time, under a steady "
        "load of orders (in the cluster topology: a Kafka broker, the active controller, "
        "Temporal's server, PostgreSQL and each copy of each service); after each, wait for "
        "the consumer lag to settle; then check that no saga and no acknowledged event was "
        "lost and audit the books; a share of the completed orders get a return meanwhile.",
    )
    add_load_arguments(chaos, orders=200, concurrency=20, report_dir="chaos")
    chaos.add_argument(
        "--topology",
        choices=["embedded", "cluster"],
        default=None,
        help="the topology of the stack to hurt (default: SAGA_TOPOLOGY, or the one `saga up` "
        "started in the run directory)",
    )
    chaos.add_argument(
        "--kill",
        metavar="NAMES",
        help="processes to kill, comma-separated (default: every one; in the cluster topology "
        "kafka-broker, kafka-controller, temporal, postgres, every copy of every service and "
        "the API; kafka-1..3 name a node; '' for none)",
    )
    chaos.add_argument(
        "--pause",
        metavar="NAMES",
        help="processes one of which is paused (default: the three services, any copy; '' "
        "for none)",
    )
    chaos.add_argument(
        "--brokers-down",
        type=int,
        default=0,
        metavar="N",
        help="cluster topology: also kill N Kafka nodes at once (2: fewer in sync than "
        "min.insync.replicas, so publishing fails and the outboxes hold the events), "
        "for --outage-seconds (default 0: not)",
    )
    chaos.add_argument(
        "--outage-seconds",
        type=float,
        default=30.0,
        help="how long the --brokers-down nodes stay down (default 30)",
    )
    chaos.add_argument(
        "--pause-seconds",
        type=float,
        default=35.0,
        help="how long the paused process stays frozen (default 35: past an activity "
        "attempt's 30 s time-out)",
    )
    chaos.add_argument(
        "--returns",
        type=float,
        default=0.3,
        metavar="SHARE",
        help="the share of the completed orders that get a return while the faults strike, "
        "0 to 1 (default 0.3; of each ten returns, seven complete, two lose their parcel and "
        "expire, one asks for more than was bought and is rejected; 0: no returns)",
    )
    chaos.add_argument("--seed", type=int, help="the random seed, to run the same faults again")
    chaos.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="the run's limit in seconds (default: 600 + 0.75 per order)",
    )
    soak = add(
        "soak",
        _soak,
        "Run many sagas in a row through the running stack and report each process's "
        "memory before, warmed up and after, and whether the outboxes and consumer lag drain.",
    )
    add_load_arguments(soak, orders=10_000, concurrency=50, report_dir="chaos")
