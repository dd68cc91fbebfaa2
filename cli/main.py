"""The ``saga`` command line: run the stack on one machine and look at it."""

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cli import audit, chaos, ops, schemas
from cli.output import fail, print_json, say, table
from infra.config.settings import ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from ops.replay import ReplayReport

__all__ = ["main", "run", "settings_markdown"]


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from infra.config.api_tokens import read_dev_token
    from infra.engines.stack import Stack, parse_scale

    if args.topology is not None:
        settings = settings.model_copy(update={"topology": args.topology})
    if args.monitoring:
        settings = settings.model_copy(update={"monitoring": True})
    stack = Stack(settings, scale=parse_scale(args.scale))
    stack.up()
    print()
    print("The stack is up:")
    print(f"  API          {settings.api_url}")
    copies = [f"{service} x{n}" for service, n in stack.scale.items() if n > 1]
    if copies:
        print(f"  Copies       {', '.join(copies)} (see `saga ps`)")
    print(f"  API docs     {settings.api_url}/docs")
    token = read_dev_token(settings.run_dir) if settings.mode == "development" else None
    if token is not None:
        print(f"  API token    {token}  (development, every scope; `saga token` prints it)")
    if settings.topology == "cluster":
        print(f"  Temporal     {settings.temporal_address} (full server on PostgreSQL)")
    print(f"  Temporal UI  {settings.temporal_ui_url}")
    if settings.topology == "cluster":
        print(f"  PostgreSQL   127.0.0.1:{settings.postgres_port} (a database per service)")
    print(f"  Kafka        {settings.kafka_brokers}")
    print(f"  Registry     {settings.schema_registry_url}/apis/ccompat/v7 (Apicurio Registry)")
    if settings.monitoring:
        print(f"  Prometheus   http://127.0.0.1:{settings.prometheus_port} (alerts: /alerts)")
    print(
        "See it with `saga ps`, follow a component with `saga logs NAME`, stop it with `saga down`."
    )
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from infra.config.api_tokens import read_dev_token

    if settings.mode != "development":
        print(
            "saga: production mode (SAGA_MODE=production) has no development token: "
            "use a token whose SHA-256 is in SAGA_API_TOKENS",
            file=sys.stderr,
        )
        return 1
    token = read_dev_token(settings.run_dir)
    if token is None:
        print(
            f"saga: no development token in {settings.run_dir}: run `saga up` first",
            file=sys.stderr,
        )
        return 1
    print(f"The development token of {settings.run_dir} (every scope), for Authorization: Bearer")
    print(token)
    return 0


def _fetch(settings: Settings, args: argparse.Namespace) -> int:
    from infra.engines.kafka_broker import ensure_kafka_jars
    from infra.engines.postgres import ensure_postgres_installed
    from infra.engines.prometheus import ensure_prometheus_installed
    from infra.engines.schema_registry import ensure_apicurio, find_java, java_version
    from infra.engines.temporal_build import ensure_temporal_server, ensure_temporal_ui

    def from_maven() -> None:
        libs = ensure_kafka_jars(
            settings.kafka_cache_dir, settings.kafka_version, maven=settings.maven
        )
        print(f"Apache Kafka {settings.kafka_version} jars are in {libs}", flush=True)
        registry = ensure_apicurio(
            settings.schema_registry_cache_dir,
            settings.schema_registry_version,
            maven=settings.maven,
            progress=say,
        )
        java = find_java(settings.schema_registry_java)
        print(
            f"Apicurio Registry {settings.schema_registry_version} is in {registry}; "
            f"it runs on {java} (Java {java_version(java)})",
            flush=True,
        )

    def from_debian() -> None:
        postgres = ensure_postgres_installed(settings.postgres_bin_dir, progress=say)
        print(f"PostgreSQL is in {postgres}", flush=True)
        prometheus, promtool = ensure_prometheus_installed(
            settings.prometheus, settings.promtool, progress=say
        )
        print(f"Prometheus is {prometheus} (promtool {promtool})", flush=True)

    def with_go() -> None:
        for what, ensure, cache_dir, version in (
            ("server", ensure_temporal_server, settings.temporal_server_cache_dir,
             settings.temporal_server_version),
            ("Web UI", ensure_temporal_ui, settings.temporal_ui_cache_dir,
             settings.temporal_ui_version),
        ):  # fmt: skip
            build = ensure(
                cache_dir, version, go=settings.go, toolchain=settings.go_toolchain, progress=say
            )
            print(f"Temporal's {what} {version} is in {build.root}", flush=True)

    # Three lanes at once: downloads (Maven Central, Debian) wait on the network while Go
    # compiles; within a lane, one tool at a time (apt and Maven each keep one local store).
    with ThreadPoolExecutor(max_workers=3) as lanes:
        for lane in [lanes.submit(from_maven), lanes.submit(from_debian), lanes.submit(with_go)]:
            lane.result()
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:
    from infra.engines.stack import Stack

    stopped = Stack(settings).down()
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def _ps(settings: Settings, args: argparse.Namespace) -> int:
    from infra.engines.stack import Stack

    statuses = Stack(settings).status()
    if args.json:
        print(json.dumps([status.as_dict() for status in statuses], indent=2))
        return 0
    rows = [
        [
            s.name,
            s.state,
            s.address,
            str(s.pid or "-"),
            s.version or "-",
            " ".join(url.removeprefix("http://") for url in s.metrics) or "-",
        ]
        for s in statuses
    ]
    print(table(rows, ["NAME", "STATE", "ADDRESS", "PID", "VERSION", "METRICS"]))
    return 0


def _logs(settings: Settings, args: argparse.Namespace) -> int:
    from infra.engines.stack import COMPONENTS, split_instance

    if split_instance(args.name)[0] not in COMPONENTS:
        print(
            f"saga: no component {args.name!r}; choose one of {', '.join(COMPONENTS)} "
            "(a copy of a scaled service: payment-2)",
            file=sys.stderr,
        )
        return 2
    log = settings.run_dir / "logs" / f"{args.name}.log"
    if not log.exists():
        print(
            f"saga: {args.name} has no log yet at {log}: start it with `saga up`", file=sys.stderr
        )
        return 1
    command = ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), str(log)]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def _default_text(value: object) -> str:
    """A setting's default as its environment variable would spell it, the same on every
    machine: a path under the home directory is written ``~/...``."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        home = Path.home()
        value = "~/" + value.relative_to(home).as_posix() if value.is_relative_to(home) else value
    return f"`{value}`"


def settings_markdown() -> str:
    """The Markdown page of every setting (docs/settings.md): its ``SAGA_*`` name, its default
    (the field's own, never this environment's value) and its description, in the order the
    settings class declares them."""
    from infra.config.settings import ENV_PREFIX

    lines = [
        "# Settings",
        "",
        "Generated by `saga config --markdown > docs/settings.md` from the field descriptions of",
        "the settings class, `infra/config/settings.py`: change them there and run it again (a",
        "test fails when this page is stale).",
        "",
        f"Every setting of every process is an environment variable with the prefix `{ENV_PREFIX}`",
        "(the field's name in capitals), or a line `NAME=value` in an optional `.env` file in the",
        "working directory; the environment wins over `.env`. `saga config` shows the values in",
        "effect (`--json` for scripts; secrets masked). A value that cannot be used stops a",
        "process at start with one line naming the variable (exit code 2).",
        "",
        "| setting | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = _default_text(field.get_default(call_default_factory=True))
        meaning = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {default} | {meaning} |")
    lines += [
        "",
        "Example `.env` for a second stack beside another one on the same machine:",
        "",
        "```bash",
        "SAGA_RUN_DIR=/tmp/saga-b",
        "SAGA_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092",
        "SAGA_KAFKA_CONTROLLER_PORT=19093",
        "SAGA_TEMPORAL_ADDRESS=127.0.0.1:17233",
        "SAGA_TEMPORAL_UI_PORT=18233",
        "SAGA_API_PORT=18000",
        "```",
    ]
    return "\n".join(lines) + "\n"


def _config(settings: Settings, args: argparse.Namespace) -> int:
    from infra.config.settings import ENV_PREFIX

    if args.markdown:
        sys.stdout.write(settings_markdown())
        return 0
    values = settings.model_dump(mode="json")
    if args.json:
        print(
            json.dumps(
                {ENV_PREFIX + name.upper(): value for name, value in values.items()}, indent=2
            )
        )
        return 0
    rows = [
        [ENV_PREFIX + name.upper(), str(values[name]), field.description or ""]
        for name, field in Settings.model_fields.items()
    ]
    print(table(rows, ["SETTING", "VALUE", "MEANING"]))
    return 0


def _redriven_ledger(settings: Settings) -> Path:
    return settings.run_dir / "dlq-redriven.txt"


def _dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from infra.config.kafka import kafka_connection
    from ops.dead_letters import list_dead_letters

    letters = asyncio.run(list_dead_letters(kafka_connection(settings), args.topic or None))
    ledger = _redriven_ledger(settings)
    redriven = set(ledger.read_text().split()) if ledger.exists() else set()
    rows = [{**letter.as_dict(), "redriven": letter.position in redriven} for letter in letters]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no dead letters")
        return 0
    lines = [
        [
            str(r["position"]),
            str(r["event_type"] or "-"),
            str(r["key"] or "-"),
            str(r["reason"]),
            str(r["attempts"]),
            "yes" if r["redriven"] else "-",
            str(r["error"] or "")[:60],
        ]
        for r in rows
    ]
    print(
        table(lines, ["POSITION", "EVENT TYPE", "KEY", "REASON", "ATTEMPTS", "REDRIVEN", "ERROR"])
    )
    print(f"{len(rows)} dead letter(s); send chosen ones back with `saga dlq redrive POSITION...`")
    return 0


def _dlq_redrive(settings: Settings, args: argparse.Namespace) -> int:
    from infra.config.kafka import kafka_connection
    from ops.dead_letters import list_dead_letters, redrive

    if not args.positions and not args.all:
        print("saga: name the dead letters to redrive (POSITION...) or pass --all", file=sys.stderr)
        return 2
    letters = asyncio.run(list_dead_letters(kafka_connection(settings), args.topic or None))
    ledger = _redriven_ledger(settings)
    redriven = set(ledger.read_text().split()) if ledger.exists() else set()
    by_position = {letter.position: letter for letter in letters}
    unknown = [position for position in args.positions if position not in by_position]
    if unknown:
        print(f"saga: no dead letter at {', '.join(unknown)}: see `saga dlq list`", file=sys.stderr)
        return 1
    chosen = (
        [by_position[position] for position in args.positions]
        if args.positions
        else [letter for letter in letters if letter.position not in redriven]
    )
    count = asyncio.run(redrive(kafka_connection(settings), chosen))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as out:
        out.writelines(f"{letter.position}\n" for letter in chosen)
    print(f"redriven {count} dead letter(s) to their original topics")
    return 0


def _projections_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    import contextlib

    from infra.config.databases import database_for
    from infra.config.kafka import kafka_connection
    from ops.projections import MissingTopicsError, RebuildProgress, RebuildReport, rebuild_timeline
    from orchestrator.orders import OrderBook
    from orchestrator.queries import database_path
    from runtime import (
        DatabaseError,
        DatabaseUnavailableError,
        SchemaRegistry,
        SchemaRegistryError,
        describe,
        open_store,
        wait_for_kafka,
    )

    bootstrap = kafka_connection(settings)
    path = describe(database_for(settings, "orchestrator", database_path(settings.run_dir)))

    def show(progress: RebuildProgress) -> None:
        print(f"read {progress.read} of {progress.total} records", file=sys.stderr)

    async def rebuild() -> RebuildReport:
        await wait_for_kafka(bootstrap, wait_seconds=5)
        print(f"rebuilding the timeline in {path} from Kafka at {bootstrap}", file=sys.stderr)
        database = open_store(
            settings,
            "orchestrator",
            database_path(settings.run_dir),
            migrations=[OrderBook.MIGRATIONS],
        )
        async with SchemaRegistry.from_settings(settings) as schemas:
            with contextlib.closing(database):
                return await rebuild_timeline(bootstrap, database, progress=show, schemas=schemas)

    try:
        report = asyncio.run(rebuild())
    except (MissingTopicsError, SchemaRegistryError) as exc:
        return fail(exc, 1)
    except DatabaseUnavailableError as exc:
        return fail(exc, 2)
    except DatabaseError as exc:
        print(
            f"saga: cannot write the timeline in {path} ({exc}); it was left as it was: "
            "try again once the database is free",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from cli.demo import demo_order, run_demo, run_return_demo

    order = demo_order(args.payment_token, args.country)
    if args.return_:
        returned, _ = asyncio.run(run_return_demo(settings, order))
        return 0 if returned.outcome != "RUNNING" else 1
    result, _ = asyncio.run(run_demo(settings, order))
    return 0 if result.status in ("COMPLETED", "CANCELLED") else 1


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from infra.config.payload_codec import data_converter
    from infra.config.temporal import temporal_connection
    from ops.replay import replay_files, replay_recent
    from runtime import wait_for_temporal

    converter = data_converter(settings)

    async def replay() -> "ReplayReport":
        if args.files:
            return await replay_files([Path(f) for f in args.files], data_converter=converter)
        client = await wait_for_temporal(
            temporal_connection(settings),
            settings.temporal_namespace,
            wait_seconds=5,
            data_converter=converter,
        )
        return await replay_recent(client, args.limit)

    report = asyncio.run(replay())
    if args.json:
        print_json(report.as_dict())
    else:
        print(report.summary())
    return 0 if report.ok else 1


def _rate(text: str) -> float | Literal["auto"]:
    """``--rate``: ``auto``, or a positive number of orders a second."""
    if text == "auto":
        return "auto"
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of orders a second: {text!r}") from None
    if not 0 < rate < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return rate


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return number


def _bench_map(settings: Settings, args: argparse.Namespace) -> int:
    from ops.bench.map_page import run_map_bench

    report = asyncio.run(run_map_bench(settings, args.map, requests=args.map_requests, say=say))
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0 if report.met else 1
    seeded = f"{report.seeded_now} seeded now in {report.seed_seconds} s"
    print(
        f"{report.sagas} sagas in namespace {report.namespace} ({seeded}; {report.running} running)"
    )
    rows = [
        [
            f"/ui/map/{page.saga_type}",
            page.requests,
            page.p50_ms,
            page.p95_ms,
            page.max_ms,
            "yes" if page.counts_match else "NO",
            "met" if page.p95_ms <= report.target_ms else "missed",
        ]
        for page in report.pages
    ]
    headers = ["PAGE", "REQUESTS", "P50 MS", "P95 MS", "MAX MS", "COUNTS MATCH", "P95 <= 300 MS"]
    print(table(rows, headers))
    return 0 if report.met else 1


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from ops.bench import BenchError, BenchOptions, render_text, run_bench

    if args.map:
        return _bench_map(settings, args)
    options = chaos.options_from(BenchOptions, args)
    try:
        run = asyncio.run(run_bench(settings, options, say=say))
    except BenchError as exc:
        return fail(exc, 1)
    if args.json:
        print(run.report.model_dump_json(indent=2))
    else:
        print(render_text(run.report))
    paths = f"report: {run.json_path}\nreport: {run.markdown_path}"
    print(paths, file=sys.stderr if args.json else sys.stdout)
    paced = run.report.paced
    return 1 if run.report.sagas.load.failed or (paced and paced.load.failed) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saga",
        description="Run and inspect the saga orchestrator stack (settings: SAGA_* or .env).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[Settings, argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        return sub

    up = add("up", _up, "Start Kafka, Temporal, the three services and the API in the background.")
    up.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="SERVICE=N[,...]",
        help="run N copies of a service (payment, inventory, shipping, orchestrator), e.g. "
        "--scale payment=2,inventory=2; repeatable; kept for later `saga up`s",
    )
    up.add_argument(
        "--topology",
        choices=["embedded", "cluster"],
        default=None,
        help="embedded (the default: one Kafka broker, Temporal's dev server, SQLite) or "
        "cluster (PostgreSQL, three Kafka nodes, Temporal's full server, two copies of every "
        "service); SAGA_TOPOLOGY sets it too; kept for later commands",
    )
    up.add_argument(
        "--monitoring",
        action="store_true",
        default=None,
        help="start Prometheus too, scraping every process and evaluating the alert rules "
        "(on SAGA_PROMETHEUS_PORT, 9090); SAGA_MONITORING=true sets it too",
    )
    add(
        "token",
        _token,
        "Print the development token of the run directory (its last line is the token alone).",
    )
    add(
        "fetch",
        _fetch,
        "Fetch Kafka's jars, install PostgreSQL and Prometheus where missing, build Temporal's "
        "full server and its Web UI (each once, into the cache).",
    )
    add("down", _down, "Stop exactly the processes `saga up` started.")
    ps = add(
        "ps",
        _ps,
        "Show each component's state, address, process id, version and metrics endpoints.",
    )
    ps.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    logs = add("logs", _logs, "Show the end of one component's log.")
    logs.add_argument(
        "name", help="kafka, temporal, payment, inventory, shipping, orchestrator or api"
    )
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following the log")
    config = add("config", _config, "Show every setting with its value and meaning.")
    config_format = config.add_mutually_exclusive_group()
    config_format.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    config_format.add_argument(
        "--markdown",
        action="store_true",
        help="a Markdown page of every setting with its default and meaning (docs/settings.md)",
    )
    demo = add(
        "demo",
        _demo,
        "Run one demo order (with --return, and a return of part of it) through the running "
        "stack and show its saga.",
    )
    demo.add_argument(
        "--payment-token",
        default="tok_visa",
        help="tok_visa (default), tok_chargeDeclined or tok_flaky",
    )
    demo.add_argument("--country", default="DE", help="destination country (AQ: refused)")
    demo.add_argument(
        "--return",
        dest="return_",
        action="store_true",
        help="once the order has ended, return one of its items and show the return's saga "
        "to its end (an order that did not complete: the return is rejected)",
    )
    replay = add(
        "replay",
        _replay,
        "Replay saga histories against this code: recent ones from Temporal, or JSON files.",
    )
    replay.add_argument("files", nargs="*", metavar="HISTORY.json", help="exported histories")
    replay.add_argument(
        "--limit", type=int, default=100, help="how many recent sagas (default 100)"
    )
    replay.add_argument("--json", action="store_true", help="one JSON object, for scripts")

    bench = add(
        "bench",
        _bench,
        "Measure the running stack (sagas/s, saga and event latency, consumer lag) beside "
        "a bare Temporal workflow of the saga's shape and Kafka's own producer tool.",
    )
    chaos.add_load_arguments(bench, orders=200, concurrency=50, report_dir="bench")
    bench.add_argument("--bare-orders", type=int, help="bare workflows (default: --orders)")
    bench.add_argument(
        "--bare-dispatch-wait",
        type=float,
        metavar="SECONDS",
        help="the bare workflow's stand-in for the carrier's dispatch delay "
        "(default: SAGA_CARRIER_DISPATCH_DELAY_SECONDS)",
    )
    bench.add_argument(
        "--rate",
        type=_rate,
        metavar="N|auto",
        help="after the saturation run, start orders at N a second on a fixed schedule (open "
        "loop) and judge the event latencies there; auto: 70%% of the saturation's sagas/s",
    )
    bench.add_argument(
        "--paced-orders",
        type=int,
        metavar="M",
        help="orders of the paced run (default: 30 s worth at the rate)",
    )
    bench.add_argument(
        "--records", type=int, default=100_000, help="records per publisher (default 100000)"
    )
    bench.add_argument("--skip-bare", action="store_true", help="no bare Temporal workflow")
    bench.add_argument(
        "--skip-publishing", action="store_true", help="no publisher comparison at all"
    )
    bench.add_argument(
        "--skip-kafka-tools", action="store_true", help="no Kafka ProducerPerformance (no Java)"
    )
    bench.add_argument(
        "--profile", action="store_true", help="py-spy the stack's processes during the orders"
    )
    bench.add_argument(
        "--map",
        type=_at_least_one,
        metavar="N",
        help="instead of the load run: time the saga map's page with N sagas in a namespace of "
        "their own (saga-map-bench, seeded once, kept for later runs)",
    )
    bench.add_argument(
        "--map-requests",
        type=_at_least_one,
        default=20,
        metavar="R",
        help="--map: timed requests per page (default 20)",
    )
    dlq = commands.add_parser("dlq", help="Dead letters: list them, send them back.")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    dlq_list = dlq_commands.add_parser("list", help="Show the records in the dead-letter topics.")
    dlq_list.set_defaults(handler=_dlq_list)
    dlq_list.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="Send dead letters back to their original topic."
    )
    dlq_redrive.set_defaults(handler=_dlq_redrive)
    dlq_redrive.add_argument(
        "positions", nargs="*", metavar="POSITION", help="topic:partition:offset"
    )
    dlq_redrive.add_argument(
        "--all", action="store_true", help="every dead letter not yet redriven"
    )
    for sub in (dlq_list, dlq_redrive):
        sub.add_argument(
            "--topic", action="append", help="a domain topic (payment.events); default: all"
        )
    projections = commands.add_parser(
        "projections", help="Read models built from the topics: rebuild them."
    )
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True, metavar="COMMAND"
    )
    rebuild = projection_commands.add_parser(
        "rebuild",
        help="Rebuild the order timelines from the topics, from their beginning.",
    )
    rebuild.set_defaults(handler=_projections_rebuild)
    rebuild.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    ops.register(commands, add)
    schemas.register(commands)
    chaos.register(add)
    audit.register(commands, add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``saga`` command; expected failures print one line and exit non-zero."""
    from aiokafka.errors import KafkaError

    from infra.engines.processes import MissingToolError
    from infra.engines.stack import StackError
    from runtime import KafkaUnavailableError, TemporalUnavailableError

    args = _parser().parse_args(argv)
    # The Kafka client logs every refused connection while `saga up` waits for the broker.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = load_settings()
        code: int = args.handler(settings, args)
    except ConfigurationError as exc:
        return fail(exc, 2)
    except (StackError, MissingToolError, KafkaUnavailableError, TemporalUnavailableError) as exc:
        return fail(exc, 1)
    except KafkaError as exc:
        print(
            f"saga: Kafka at {settings.kafka_bootstrap_servers} does not answer "
            f"({type(exc).__name__}): is the stack up? (`saga ps`, `saga up`)",
            file=sys.stderr,
        )
        return 1
    return code


def run() -> None:
    """The console script's entry point.

    It leaves without finalizing the interpreter, once its output is flushed: the Temporal
    SDK's core threads may still call into Python while it finalizes, and that aborts the
    process (``Fatal Python error: PyGILState_Release``, SIGABRT) after its work is done,
    most often after a refused TLS handshake, turning its exit code 2 into -6.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
