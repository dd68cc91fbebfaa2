"""Every metric the Grafana dashboard's queries name is exported by some process of the real
stack (scraped after two sagas): a panel over a metric nobody exports would stay empty without
anyone noticing. The dashboard's model itself is checked in ``tests/unit/infra``.
"""

from prometheus_client.metrics_core import Metric

from tests.support.promql import dashboard, metric_names, queries
from tests.support.scrapes import SagaScrapes

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself for every scrape target, exported by no process."""


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
        for title, expr in queries(dashboard())
        for name in sorted(metric_names(expr))
        if name not in exported and name not in PROMETHEUS_OWN
    ]
    assert not missing, "queried but exported by no process:\n" + "\n".join(missing)
