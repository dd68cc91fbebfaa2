"""The alert rules (infra/prometheus/alerts.yml) under `promtool test rules`, and the
configuration `saga up --monitoring` renders for Prometheus under `promtool check config`.

promtool comes with Debian's prometheus package, which `make install` (`saga fetch`) installs:
without it these tests fail, saying so; they are never skipped.
"""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config.settings import Settings
from infra.engines.prometheus import (
    ALERTS_FILE,
    PROMETHEUS_DIR,
    STUCK_ALERT,
    check_config,
    render_rules,
    services_held,
)
from infra.engines.stack import Stack

RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: it comes with Debian's prometheus package; run `make install` "
            "(`saga fetch` installs it) or apt-get install --no-install-recommends prometheus"
        )
    return path


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False)


def _alerts(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}


def test_every_alert_rule_passes_its_promtool_unit_tests(promtool: str) -> None:
    done = _promtool(promtool, "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_silent_below_its_threshold() -> None:
    alerts = _alerts(yaml.safe_load(ALERTS_FILE.read_text()))
    assert set(alerts) == {
        "SagaStuck",
        "IncidentOpen",
        "DeadLettersGrowing",
        "ConsumerLagHigh",
        "OutboxBacklogGrowing",
        "PublishLatencyHigh",
        "UnderReplicatedPartitions",
        "ProcessDown",
    }
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert f"docs/operations.md#{name.lower()}" in rule["annotations"]["description"], name
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    for name in alerts:
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == name]
        assert True in outcomes, f"no test of {name} firing"
        assert False in outcomes, f"no test of {name} staying silent"


def test_the_operations_page_explains_every_alert() -> None:
    page = (PROMETHEUS_DIR.parents[1] / "docs" / "operations.md").read_text()
    for name in _alerts(yaml.safe_load(ALERTS_FILE.read_text())):
        assert f"### {name}\n" in page, f"docs/operations.md has no section for {name}"


def test_the_stuck_alert_waits_as_long_as_the_setting_says(tmp_path: Path, promtool: str) -> None:
    rendered = render_rules(0.05)
    assert _alerts(yaml.safe_load(rendered))[STUCK_ALERT]["for"] == "3s"
    assert _alerts(yaml.safe_load(render_rules(10)))[STUCK_ALERT]["for"] == "600s"
    (tmp_path / "alerts.yml").write_text(rendered)
    done = _promtool(promtool, "check", "rules", str(tmp_path / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing else of the rules changes.
    source = _alerts(yaml.safe_load(ALERTS_FILE.read_text()))
    for name, rule in _alerts(yaml.safe_load(rendered)).items():
        if name != STUCK_ALERT:
            assert rule == source[name], name


def test_the_hand_written_scrape_configuration_is_valid(promtool: str) -> None:
    check_config(promtool, PROMETHEUS_DIR / "prometheus.yml")


@pytest.mark.parametrize("topology", ["embedded", "cluster"])
def test_the_rendered_configuration_scrapes_every_process_and_loads_the_rules(
    tmp_path: Path, promtool: str, topology: str
) -> None:
    """Every copy of every process (its own metrics and the Temporal SDK's), the engines that
    serve metrics, and Prometheus itself; promtool accepts it with the rules it loads."""
    settings = Settings(
        run_dir=tmp_path / "run",
        topology=topology,
        monitoring=True,
        prometheus_port=29090,
        prometheus_interval_seconds=0.5,
        alert_stuck_minutes=0.1,
    )
    stack = Stack(settings, say=lambda _: None, scale={"payment": 3})
    path = stack.write_prometheus_config()
    assert "SUCCESS" in check_config(promtool, path)

    config = yaml.safe_load(path.read_text())
    assert config["global"]["scrape_interval"] == "500ms"
    assert config["global"]["evaluation_interval"] == "500ms"
    assert (
        _alerts(yaml.safe_load(Path(config["rule_files"][0]).read_text()))[STUCK_ALERT]["for"]
        == "6s"
    )
    scraped = {
        (job["job_name"], group["labels"]["process"]): (target, job["metrics_path"])
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    copies = 2 if topology == "cluster" else 1
    for service, count in {"payment": 3, "inventory": copies, "orchestrator": copies}.items():
        for copy in range(1, count + 1):
            name = service if copy == 1 else f"{service}-{copy}"
            port = settings.service_port(service, copy)
            assert scraped[("saga-processes", name)] == (f"127.0.0.1:{port}", "/metrics/")
            sdk = settings.sdk_metrics_port(service, copy)
            assert scraped[("saga-temporal-sdk", name)] == (f"127.0.0.1:{sdk}", "/metrics")
    assert ("saga-processes", "payment-4") not in scraped
    assert scraped[("saga-processes", "api")] == (f"127.0.0.1:{settings.api_port}", "/metrics/")
    temporal = f"127.0.0.1:{settings.temporal_port + 11}"
    assert scraped[("temporal-server", "temporal")] == (temporal, "/metrics")
    registry = f"127.0.0.1:{settings.schema_registry_port + 1}"
    assert scraped[("schema-registry", "registry")] == (registry, "/metrics")
    assert scraped[("prometheus", "prometheus")] == ("127.0.0.1:29090", "/metrics")
    assert all(target.startswith("127.0.0.1:") for target, _ in scraped.values())


def test_a_stack_using_existing_engines_scrapes_only_its_own_processes(tmp_path: Path) -> None:
    settings = Settings(
        run_dir=tmp_path / "run",
        monitoring=True,
        kafka_embedded=False,
        temporal_embedded=False,
        schema_registry_embedded=False,
    )
    jobs = {target.job for target in Stack(settings, say=lambda _: None).scrape_targets()}
    assert jobs == {"saga-processes", "saga-temporal-sdk", "prometheus"}


def test_the_service_start_policy_is_written_only_when_there_is_none(tmp_path: Path) -> None:
    """During the package's installation invoke-rc.d asks policy-rc.d, which says 101 (no):
    one made for it is removed after; one that was there (a Docker image's) is left alone."""
    policy = tmp_path / "policy-rc.d"
    with services_held(policy) as written:
        assert written
        done = subprocess.run([str(policy)], check=False)
        assert done.returncode == 101
    assert not policy.exists()

    policy.write_text("#!/bin/sh\nexit 0\n")
    with services_held(policy) as written:
        assert not written
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
