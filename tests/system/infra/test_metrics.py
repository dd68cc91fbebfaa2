"""Each process's ``/metrics`` and Temporal SDK exporter after two sagas on the real stack."""

import pytest

from tests.support.scrapes import PROCESSES, SagaScrapes

# The events each service published for the two sagas (one completed, one undone at shipping).
PUBLISHED = {
    "payment": ["payment.completed.v1", "payment.refunded.v1"],
    "inventory": ["inventory.reserved.v1", "inventory.released.v1"],
    "shipping": ["shipping.scheduled.v1", "shipping.dispatched.v1", "shipping.failed.v1"],
    "orchestrator": ["order.placed.v1", "order.completed.v1", "order.cancelled.v1"],
}
ORCHESTRATOR_GROUPS = (
    "orchestrator-projector",
    "orchestrator-dispatch-bridge",
    "audit",
    "notifications",
)


@pytest.mark.parametrize("service", sorted(PUBLISHED))
def test_each_service_counts_the_events_it_published(
    saga_scrapes: SagaScrapes, service: str
) -> None:
    for event_type in PUBLISHED[service]:
        assert saga_scrapes.delta(service, "events_published_total", event_type=event_type) >= 1, (
            f"{service} did not count {event_type}"
        )
        assert saga_scrapes.after[service].value("events_published_bytes_total") > 0
    assert saga_scrapes.delta(service, "event_publish_latency_seconds_count") >= 1
    assert saga_scrapes.after[service].samples("outbox_backlog"), "no outbox backlog gauge"


def test_the_orchestrators_consumers_count_what_they_consumed(saga_scrapes: SagaScrapes) -> None:
    for group in ORCHESTRATOR_GROUPS:
        assert (
            saga_scrapes.delta("orchestrator", "events_consumed_total", consumer_group=group) >= 1
        ), f"consumer group {group} counted nothing"
    assert (
        saga_scrapes.delta(
            "orchestrator",
            "events_consumed_total",
            consumer_group="orchestrator-projector",
            event_type="shipping.failed.v1",
        )
        >= 1
    )
    assert (
        saga_scrapes.delta(
            "orchestrator", "event_processing_duration_seconds_count", event_type="order.placed.v1"
        )
        >= 2  # the projector and the audit log at least
    )
    assert saga_scrapes.after["orchestrator"].value("kafka_consumer_fetched_bytes_total") > 0
    assert (
        saga_scrapes.after["orchestrator"].value("kafka_consumer_commit_latency_seconds_count") > 0
    )


def test_consumer_lag_is_reported_per_partition_of_each_group(saga_scrapes: SagaScrapes) -> None:
    lags = saga_scrapes.after["orchestrator"].samples("kafka_consumer_lag")
    reported = {
        (s.labels["consumer_group"], s.labels["topic"], s.labels["partition"]) for s in lags
    }
    for group in ORCHESTRATOR_GROUPS:
        assert any(g == group for g, _, _ in reported), f"no lag reported for {group}"
    # The projector reads every domain topic, 3 partitions each (the topic catalog).
    projector = {(t, p) for g, t, p in reported if g == "orchestrator-projector"}
    assert {t for t, _ in projector} >= {"order.events", "payment.events"}, projector
    assert all(s.value >= 0 for s in lags)


def test_the_saga_metrics_count_each_saga_once(saga_scrapes: SagaScrapes) -> None:
    delta = saga_scrapes.delta
    # Two orders were placed during the scrapes and nothing else placed any.
    assert delta("orchestrator", "sagas_started_total") == 2
    assert delta("orchestrator", "sagas_completed_total") >= 1
    assert delta("orchestrator", "sagas_cancelled_total", reason="schedule_shipment") >= 1
    assert delta("orchestrator", "saga_duration_seconds_count", outcome="completed") >= 1
    assert delta("orchestrator", "saga_duration_seconds_count", outcome="cancelled") >= 1
    # The AQ saga undid shipping's predecessors: released, refunded, cancelled the order.
    for step in ("reserve_stock", "charge_payment", "place_order"):
        assert delta("orchestrator", "saga_compensations_total", step=step) >= 1, step
    after = saga_scrapes.after["orchestrator"]
    for status in ("RUNNING", "COMPENSATING"):
        assert after.samples("sagas_in_flight", saga_status=status), status
        assert after.samples("sagas_stuck", saga_status=status), status


def test_step_attempts_are_counted_where_the_activities_run(saga_scrapes: SagaScrapes) -> None:
    delta = saga_scrapes.delta
    assert (
        delta("payment", "saga_step_attempts_total", activity="payment.charge", outcome="succeeded")
        >= 2
    )
    assert (
        delta("payment", "saga_step_attempts_total", activity="payment.refund", outcome="succeeded")
        >= 1
    )
    assert (
        delta(
            "shipping", "saga_step_attempts_total", activity="shipping.schedule", outcome="refused"
        )
        >= 1
    )
    assert (
        delta(
            "orchestrator", "saga_step_attempts_total", activity="order.place", outcome="succeeded"
        )
        >= 2
    )
    assert not saga_scrapes.after["payment"].samples(
        "saga_step_attempts_total", activity="payment.ping"
    )


def test_the_orchestrator_exports_the_kafka_clusters_figures(saga_scrapes: SagaScrapes) -> None:
    after = saga_scrapes.after["orchestrator"]
    assert after.value("kafka_cluster_scrape_success") == 1
    assert after.value("kafka_brokers") >= 1
    assert after.value("kafka_active_controller_count") == 1
    assert after.value("kafka_topics") >= 8  # four domain topics and their dead-letter twins
    assert after.value("kafka_topic_partitions", topic="payment.events") == 3
    assert after.value("kafka_topic_under_replicated_partitions", topic="payment.events") == 0
    assert after.value("kafka_topic_messages_total", topic="payment.events") >= 2
    assert after.value("kafka_topic_retention_seconds", topic="order.events") == 7 * 24 * 3600


@pytest.mark.parametrize("process", PROCESSES)
def test_each_process_exports_the_temporal_sdks_metrics_on_its_own_port(
    saga_scrapes: SagaScrapes, process: str
) -> None:
    sdk = saga_scrapes.sdk[process]
    assert sdk.value("temporal_request_total") > 0, sdk.url
    if process == "api":
        assert sdk.value("temporal_request_total", operation="StartWorkflowExecution") >= 2
        return
    assert sdk.samples("temporal_worker_task_slots_available"), sdk.url
    assert sdk.value("temporal_num_pollers") > 0
    if process == "orchestrator":
        assert sdk.value("temporal_workflow_completed_total", workflow_type="OrderSaga") >= 2
        assert sdk.value("temporal_workflow_task_execution_latency_count") > 0
    else:
        task_queue = process
        assert sdk.value("temporal_activity_execution_latency_count", task_queue=task_queue) > 0
