"""The Grafana dashboard and the Prometheus scrape configuration in ``infra/``.

The dashboard must be a valid Grafana JSON model, and every metric its queries name must be
exported by some process of the real stack (scraped after two sagas): a panel over a metric
nobody exports would stay empty without anyone noticing.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from infra.config.settings import Settings
from tests.system.infra.conftest import PROCESSES, SagaScrapes

_INFRA = Path(__file__).resolve().parents[2] / "infra"
DASHBOARD = _INFRA / "grafana" / "saga-dashboard.json"
SCRAPE_CONFIG = _INFRA / "prometheus" / "prometheus.yml"

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself for every scrape target, exported by no process."""

AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "group", "stddev"}
)
FUNCTIONS = AGGREGATIONS | frozenset(
    {
        "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
        "abs", "ceil", "floor", "round", "clamp_min", "clamp_max", "vector", "scalar",
        "time", "timestamp", "sum_over_time", "avg_over_time", "max_over_time",
        "min_over_time", "last_over_time", "absent", "label_replace",
    }
)  # fmt: skip
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<range>\[(?:\d+[smhdwy])+\]|\[\$\w+\])
    |(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<matcher>=~|!~|!=|=)
    |(?P<operator>==|>=|<=|[-+*/%^<>])
    |(?P<punct>[(){},])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    """An expression that does not parse."""


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise PromQLError(f"cannot read {expr[position:]!r} in {expr!r}")
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
    return tokens


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Parses far enough to tell them apart from functions, aggregations, grouping labels and
    label matchers, and fails on unbalanced brackets, unknown functions, malformed matchers
    and a range that follows no selector.

    Raises:
        PromQLError: the expression does not parse.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    depth, index = 0, 0
    previous: tuple[str, str] | None = None
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name" and text in GROUPING:
            index = _labels_in_parentheses(tokens, index + 1, expr)
            previous = ("punct", ")")
            continue
        if kind == "name" and following[0] == "name" and following[1] in GROUPING:
            if text not in AGGREGATIONS:
                raise PromQLError(f"{text!r} is not an aggregation in {expr!r}")
        elif kind == "name" and following == ("punct", "("):
            if text not in FUNCTIONS:
                raise PromQLError(f"unknown function {text!r} in {expr!r}")
        elif kind == "name" and text not in KEYWORDS:
            names.add(text)
        elif kind == "punct" and text == "{":
            if previous is None or previous[0] != "name":
                raise PromQLError(f"label matchers without a metric name in {expr!r}")
            index = _matchers(tokens, index + 1, expr)
            previous = ("punct", "}")
            continue
        elif kind == "range" and (previous is None or not _ends_selector(previous)):
            raise PromQLError(f"a range that follows no selector in {expr!r}")
        elif kind == "punct" and text == "(":
            depth += 1
        elif kind == "punct" and text == ")":
            depth -= 1
            if depth < 0:
                raise PromQLError(f"unbalanced ')' in {expr!r}")
        elif kind in ("matcher", "string"):
            raise PromQLError(f"{text!r} out of place in {expr!r}")
        previous = (kind, text)
        index += 1
    if depth:
        raise PromQLError(f"unbalanced '(' in {expr!r}")
    return names


def _ends_selector(token: tuple[str, str]) -> bool:
    return token[0] == "name" or token == ("punct", "}")


def _labels_in_parentheses(tokens: list[tuple[str, str]], index: int, expr: str) -> int:
    if index >= len(tokens) or tokens[index] != ("punct", "("):
        raise PromQLError(f"grouping without labels in {expr!r}")
    index += 1
    while index < len(tokens) and tokens[index] != ("punct", ")"):
        kind, text = tokens[index]
        if kind != "name" and text != ",":
            raise PromQLError(f"{text!r} is not a label in {expr!r}")
        index += 1
    if index >= len(tokens):
        raise PromQLError(f"unclosed grouping in {expr!r}")
    return index + 1


def _matchers(tokens: list[tuple[str, str]], index: int, expr: str) -> int:
    while index < len(tokens) and tokens[index] != ("punct", "}"):
        window = [kind for kind, _ in tokens[index : index + 3]]
        if window != ["name", "matcher", "string"]:
            raise PromQLError(f"bad label matcher in {expr!r}")
        index += 3
        if index < len(tokens) and tokens[index] == ("punct", ","):
            index += 1
    if index >= len(tokens):
        raise PromQLError(f"unclosed label matchers in {expr!r}")
    return index + 1


def _exported(families: dict[str, Metric]) -> set[str]:
    """Every series name a scrape offers, counting those of families that have no sample
    yet (a labelled counter nobody incremented still has its HELP and TYPE)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
    }
    names: set[str] = set()
    for family in families.values():
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def _dashboard() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def _queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in model["panels"]
        for target in panel.get("targets", [])
    ]


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
    model = _dashboard()
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
    for title, expr in _queries(_dashboard()):
        assert metric_names(expr), f"{title}: {expr!r} selects no metric"


def test_the_dashboard_has_the_panels_of_design_document_002_and_the_sagas() -> None:
    rows = [panel["title"] for panel in _dashboard()["panels"] if panel["type"] == "row"]
    for wanted in ("Sagas", "Kafka cluster", "Producer", "Consumer", "Topic"):
        assert any(wanted in row for row in rows), f"no {wanted!r} row in {rows}"
    names = set().union(*(metric_names(expr) for _, expr in _queries(_dashboard())))
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


def test_every_metric_the_dashboard_queries_is_exported_by_a_process(
    saga_scrapes: SagaScrapes,
) -> None:
    exported: dict[str, set[str]] = {}
    for scrapes in (saga_scrapes.after, saga_scrapes.sdk):
        for process, scrape in scrapes.items():
            for name in _exported(scrape.families):
                exported.setdefault(name, set()).add(process)
    missing = [
        f"{title}: {name}"
        for title, expr in _queries(_dashboard())
        for name in sorted(metric_names(expr))
        if name not in exported and name not in PROMETHEUS_OWN
    ]
    assert not missing, "queried but exported by no process:\n" + "\n".join(missing)


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
