"""The Grafana dashboard and the Prometheus scrape configuration in ``infra/``.

The dashboard must be a valid Grafana JSON model whose queries parse and draw the saga and
Kafka figures; that every metric it names is exported by the real stack is proven in
``tests/system/infra/test_dashboard.py``.
"""

import pytest
import yaml

from infra.config.settings import Settings
from tests.support import REPO
from tests.support.promql import PromQLError, dashboard, metric_names, queries
from tests.support.scrapes import PROCESSES

SCRAPE_CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"


# --- the PromQL reader itself ------------------------------------------------------------


def test_the_promql_reader_finds_metric_names_and_rejects_broken_expressions() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, event_type) "
        '(rate(event_processing_duration_seconds_bucket{job=~"saga-.*"}[$__rate_interval])))'
    )
    assert metric_names(expr) == {"event_processing_duration_seconds_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / ignoring(x) sum(b)") == {"a_total", "b"}
    for broken in (
        "sum(rate(a_total[5m])",
        "rat(a_total[5m])",
        'a_total{topic="x"',
        "a_total{topic=x}",
        "sum by (le rate(a[5m]))",
        '{topic="x"}',
    ):
        with pytest.raises(PromQLError):
            metric_names(broken)


# --- the JSON model ----------------------------------------------------------------------


def test_the_dashboard_is_a_grafana_json_model() -> None:
    model = dashboard()
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time", "tags"):
        assert key in model, f"the dashboard has no {key!r}"
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are not unique"
    assert all(isinstance(panel_id, int) for panel_id in ids)
    for panel in model["panels"]:
        assert panel.get("title"), panel
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_dashboard_query_parses_and_names_a_metric() -> None:
    for title, expr in queries(dashboard()):
        assert metric_names(expr), f"{title}: {expr!r} selects no metric"


def test_the_dashboard_has_the_panels_of_design_document_002_and_the_sagas() -> None:
    rows = [panel["title"] for panel in dashboard()["panels"] if panel["type"] == "row"]
    for wanted in ("Sagas", "Kafka cluster", "Producer", "Consumer", "Topic"):
        assert any(wanted in row for row in rows), f"no {wanted!r} row in {rows}"
    names = set().union(*(metric_names(expr) for _, expr in queries(dashboard())))
    for metric in (
        "events_published_total",
        "events_consumed_total",
        "event_processing_duration_seconds_bucket",
        "kafka_consumer_lag",
        "sagas_started_total",
        "sagas_completed_total",
        "sagas_cancelled_total",
        "saga_duration_seconds_bucket",
        "sagas_stuck",
    ):
        assert metric in names, f"the dashboard does not draw {metric}"


# --- the scrape configuration ------------------------------------------------------------


def test_prometheus_scrapes_every_process_of_a_default_stack() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    targets = {
        target: job.get("metrics_path", "/metrics")
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    defaults = Settings.model_construct()  # the defaults, whatever the environment says
    for process in PROCESSES:
        port = defaults.api_port if process == "api" else defaults.service_port(process)
        assert targets.get(f"127.0.0.1:{port}") == "/metrics/", process
        sdk_port = defaults.sdk_metrics_port(process)
        assert targets.get(f"127.0.0.1:{sdk_port}") == "/metrics", f"{process} SDK"
    assert f"127.0.0.1:{defaults.temporal_port + 11}" in targets, "the Temporal server"
