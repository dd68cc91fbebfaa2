"""The chaos run on the cluster topology in CI, kept short: orders (and returns of 30% of
those that complete) keep coming while a Kafka broker (not the active controller), Temporal's
full server, PostgreSQL and one copy of a service are each killed and restarted, and two of
the three Kafka nodes are down together for a few seconds; no saga, no acknowledged event may
be lost, every return must end as it was made to, the consumer lag must come back after each
fault and the audit must find nothing. The whole plan is
`saga chaos --topology cluster`, measured in docs/operations.md.

The stack is its own: the run kills its engines.
"""

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from infra.config.databases import read_database_record
from infra.config.settings import Settings
from infra.engines.kafka_security import ORCHESTRATOR_GROUPS
from infra.engines.stack import KAFKA_NODES
from ops.chaos import KAFKA_BROKER, ChaosOptions, FaultKind, render_text, run_chaos
from orchestrator.queries import STORE_SCHEMAS
from tests.support.chaos import assert_returns_as_made
from tests.support.stacks import cluster_stack as started_cluster

ORDERS = 100
RETURNS_MADE = 24
"""30% of the 80 orders of the mix that are meant to complete."""
KILLS = (KAFKA_BROKER, "temporal", "postgres", "payment-2")
OUTAGE_S = 8.0


@pytest.fixture(scope="module")
def cluster_stack(kafka_libs: Path) -> Iterator[Settings]:
    """A cluster-topology stack of the module's own."""
    stock = {"SKU-1001": 10_000, "SKU-1002": 10_000, "SKU-1003": 10_000}
    with started_cluster(
        kafka_libs, stock, carrier_dispatch_delay_seconds=1, carrier_return_delay_seconds=1
    ) as started:
        yield started.settings


def test_the_chaos_run_counts_every_store_of_the_orchestrators_database(
    cluster_stack: Settings,
) -> None:
    """The schemas of the orchestrator's database that hold an outbox or an inbox are the ones
    the chaos run counts (``STORE_SCHEMAS``; None is the default schema)."""
    url = read_database_record(cluster_stack.run_dir)["orchestrator"]
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT DISTINCT table_schema FROM information_schema.tables"
            " WHERE table_name IN ('outbox', 'inbox')"
        ).fetchall()
    assert {schema for (schema,) in found} == {schema or "public" for schema in STORE_SCHEMAS}


@pytest.mark.timeout(600)
def test_no_saga_or_acknowledged_event_is_lost_when_the_clusters_engines_are_killed(
    cluster_stack: Settings, figures: Callable[[str], None]
) -> None:
    options = ChaosOptions(
        orders=ORDERS,
        concurrency=10,
        kills=KILLS,
        pauses=(),
        brokers_down=2,
        outage_s=OUTAGE_S,
        returns=0.3,
        seed=7,
    )
    report = asyncio.run(run_chaos(cluster_stack, options, say=print))
    figures(render_text(report))  # the run's figures belong in CI's output, passed or not

    assert report.topology == "cluster"
    assert sorted(report.lag_groups) == sorted(ORCHESTRATOR_GROUPS)
    assert sorted(f"{fault.kind} {fault.target}" for fault in report.faults) == sorted(
        [*(f"kill {target}" for target in KILLS), "brokers-down 2"]
    )
    (broker,) = [fault for fault in report.faults if fault.target == KAFKA_BROKER]
    assert broker.controller in KAFKA_NODES
    assert len(broker.processes) == 1
    assert broker.processes[0] in set(KAFKA_NODES) - {broker.controller}
    (outage,) = [fault for fault in report.faults if fault.kind is FaultKind.BROKERS_DOWN]
    assert len(outage.processes) == 2
    # Nothing was acknowledged while one node of three was up (min ISR 2, acks=all), and the
    # outboxes held the events meanwhile.
    assert outage.published_during == 0
    assert outage.backlog_peak is not None
    assert outage.backlog_before is not None
    assert outage.backlog_peak > outage.backlog_before
    assert report.orders.accepted == ORDERS
    assert report.orders.lost == 0, report.orders.lost_orders
    assert report.orders.completed + report.orders.cancelled == ORDERS
    assert report.audit.checked_orders == ORDERS
    assert report.audit.violations == []
    assert report.events.outbox_pending == 0
    assert report.events.published > 0
    assert report.events.acknowledged_lost == 0
    assert report.events.on_kafka == report.events.published
    assert report.events.dead_letters == 0
    assert_returns_as_made(report, RETURNS_MADE)
    for fault in report.faults:
        assert fault.lag_settled_s is not None, fault
        assert fault.restart_s is not None, fault
    assert report.passed, report.problems
