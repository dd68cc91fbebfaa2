"""Prometheus scrapes of a stack's processes: each ``/metrics`` parsed as Prometheus does."""

from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from infra.config.settings import Settings
from infra.engines.stack import SERVICES

PROCESSES: tuple[str, ...] = (*SERVICES, "api")


@dataclass(frozen=True)
class Scrape:
    """One scrape of one endpoint: its metric families by name."""

    url: str
    families: dict[str, Any]

    def samples(self, name: str, **labels: str) -> list[Sample]:
        """The samples called ``name`` whose labels include ``labels``."""
        return [
            sample
            for family in self.families.values()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of those samples (0 when there is none)."""
        return float(sum(sample.value for sample in self.samples(name, **labels)))


def metrics_url(settings: Settings, process: str) -> str:
    """A process's own ``/metrics``."""
    port = settings.api_port if process == "api" else settings.service_port(process)
    return f"http://{settings.api_host}:{port}/metrics/"


def sdk_metrics_url(settings: Settings, process: str) -> str:
    """Where a process's Temporal SDK exporter serves."""
    port = settings.sdk_metrics_port(process)
    assert port is not None, "the stack runs with the Temporal SDK metrics on"
    return f"http://127.0.0.1:{port}/metrics"


async def scrape(http: httpx.AsyncClient, url: str) -> Scrape:
    """Scrape ``url`` and parse it as Prometheus does (the text exposition format)."""
    response = await http.get(url)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    return Scrape(url, families)


@dataclass(frozen=True)
class SagaScrapes:
    """Each process's ``/metrics`` before and after the sagas, and its SDK metrics after."""

    before: dict[str, Scrape]
    after: dict[str, Scrape]
    sdk: dict[str, Scrape]
    completed_order: str
    cancelled_order: str

    def delta(self, process: str, name: str, **labels: str) -> float:
        """How much a sample of ``process`` grew during the sagas."""
        return self.after[process].value(name, **labels) - self.before[process].value(
            name, **labels
        )
