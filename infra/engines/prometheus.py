"""Prometheus beside the stack (`saga up --monitoring`): Debian's package, run as our process.

:func:`ensure_prometheus_installed` installs Debian's ``prometheus`` package (the server and
``promtool``) where they are missing, without letting the package start a daemon of its own
on 0.0.0.0:9090. :class:`PrometheusServer` runs it on loopback, everything under the run
directory:

- ``<run_dir>/prometheus/prometheus.yml``: the scrape configuration, rendered from the shape
  of ``infra/prometheus/prometheus.yml`` (its jobs, their paths) with the running stack's
  targets instead of the default ports (:func:`render_config`);
- ``<run_dir>/prometheus/alerts.yml``: ``infra/prometheus/alerts.yml`` with the stuck-saga
  alert's duration from the settings (:func:`render_rules`);
- ``<run_dir>/prometheus/data``: its time series, kept for a short retention only.
"""

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from infra.engines.processes import MissingToolError, ProcessRecord, log_tail

__all__ = [
    "ALERTS_FILE",
    "PROMETHEUS_DIR",
    "STUCK_ALERT",
    "PrometheusServer",
    "ScrapeTarget",
    "check_config",
    "disable_package_service",
    "ensure_prometheus_installed",
    "package_daemons",
    "prometheus_version",
    "render_config",
    "render_rules",
    "services_held",
]

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "prometheus"
"""``infra/prometheus``: the hand-usable scrape configuration and the alert rules."""
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
_CONFIG_TEMPLATE = PROMETHEUS_DIR / "prometheus.yml"
STUCK_ALERT = "SagaStuck"
"""The alert whose ``for:`` is a setting (``SAGA_ALERT_STUCK_MINUTES``)."""
_POLICY_RC = Path("/usr/sbin/policy-rc.d")
_PACKAGE_CONFIG = "/etc/prometheus/prometheus.yml"
_INSTALL_HINT = (
    "install it (apt-get install --no-install-recommends prometheus) or set SAGA_PROMETHEUS"
)
_READY_PATH = "/-/ready"


@contextlib.contextmanager
def services_held(policy: Path = _POLICY_RC) -> Iterator[bool]:
    """No package's maintainer script may start a service while the block runs.

    Debian's ``invoke-rc.d`` asks ``policy``; exit code 101 means "not now". The file is
    written only when there is none (a Docker image has its own) and removed afterwards only
    if written here. Yields whether it was written here.
    """
    if policy.exists():
        yield False
        return
    policy.write_text(
        "#!/bin/sh\n# Written by saga-orchestrator during apt-get install.\nexit 101\n"
    )
    policy.chmod(0o755)
    try:
        yield True
    finally:
        policy.unlink(missing_ok=True)


def package_daemons() -> list[str]:
    """The Prometheus daemons of Debian's package that run (``pid N``): ``/usr/bin/prometheus``
    on the package's configuration, which ours never use."""
    found = []
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(process / "exe") != "/usr/bin/prometheus":
                continue
            args = (process / "cmdline").read_bytes().decode(errors="replace").split("\0")
            configs = [a.split("=", 1)[1] for a in args if a.startswith("--config.file=")]
            if not configs or configs[-1] == _PACKAGE_CONFIG:
                found.append(f"pid {process.name}")
    return found


def disable_package_service() -> None:
    """Keep the package's own daemon from starting at boot too: its systemd unit and its
    init script are disabled (symlinks only; nothing is started or stopped)."""
    for command in (
        ["deb-systemd-helper", "disable", "prometheus.service"],
        ["update-rc.d", "prometheus", "disable"],
    ):
        tool = shutil.which(command[0])
        if tool is not None:
            subprocess.run([tool, *command[1:]], capture_output=True, check=False)


def ensure_prometheus_installed(
    prometheus: str = "prometheus",
    promtool: str = "promtool",
    *,
    progress: Callable[[str], None] = print,
) -> tuple[str, str]:
    """The paths of ``prometheus`` and ``promtool``, installing Debian's ``prometheus``
    package first where either is missing and this process may (root, with apt-get).

    The package's scripts would start its own daemon on 0.0.0.0:9090: :func:`services_held`
    forbids it, :func:`disable_package_service` keeps it from starting at boot, and a daemon
    found running afterwards is an error.

    Raises:
        MissingToolError: they are missing and cannot be installed from here, or the package
            left a daemon running (the message says what to do).
    """
    found = shutil.which(prometheus), shutil.which(promtool)
    if found[0] is not None and found[1] is not None:
        return found[0], found[1]
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        missing = prometheus if found[0] is None else promtool
        raise MissingToolError(f"{missing!r} not found: `saga up --monitoring` needs it; "
                               + _INSTALL_HINT)  # fmt: skip
    progress(
        "Prometheus is not installed: installing Debian's package "
        "(apt-get install --no-install-recommends prometheus; its daemon is not started)"
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with services_held():
        for command in (
            [apt, "update"],
            [apt, "install", "-y", "--no-install-recommends", "prometheus"],
        ):
            done = subprocess.run(command, env=env, check=False)
            if done.returncode != 0:
                raise MissingToolError(
                    f"{' '.join(command)} failed (exit {done.returncode}): {_INSTALL_HINT}"
                )
    disable_package_service()
    daemons = package_daemons()
    if daemons:
        raise MissingToolError(
            f"Debian's prometheus package started its own daemon ({', '.join(daemons)}) on "
            "0.0.0.0:9090: stop it (invoke-rc.d prometheus stop) and disable it"
        )
    paths = shutil.which(prometheus), shutil.which(promtool)
    if paths[0] is None or paths[1] is None:
        raise MissingToolError(f"the prometheus package holds no {prometheus}/{promtool}: "
                               + _INSTALL_HINT)  # fmt: skip
    return paths[0], paths[1]


def prometheus_version(binary: str) -> str | None:
    """What ``binary --version`` says first: ``Prometheus 2.42.0+ds``, or None."""
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = (done.stdout or done.stderr).split()
    # "prometheus, version 2.42.0+ds (branch: ...)"
    return f"Prometheus {words[2]}" if len(words) > 2 and words[1] == "version" else None


@dataclass(frozen=True)
class ScrapeTarget:
    """One metrics endpoint of the stack, as Prometheus scrapes it."""

    job: str
    """The scrape job: ``saga-processes``, ``saga-temporal-sdk``, ``temporal-server``..."""
    process: str
    """The process's name in `saga ps` (``payment-2``), its ``process`` label."""
    address: str
    """``host:port``."""
    path: str


def render_config(
    targets: Iterable[ScrapeTarget],
    *,
    scrape_interval: str,
    evaluation_interval: str,
    rule_files: Iterable[Path] = (),
    template: Path = _CONFIG_TEMPLATE,
) -> dict[str, Any]:
    """A scrape configuration of ``template``'s shape (its jobs in its order, each with its
    settings and metrics path) whose targets are ``targets``: a job without targets is left
    out, a target of a job the template lacks gets a job of its own (on the target's path)."""
    shape = yaml.safe_load(template.read_text())
    by_job: dict[str, list[ScrapeTarget]] = {}
    for target in targets:
        by_job.setdefault(target.job, []).append(target)
    jobs = {job["job_name"]: job for job in shape.get("scrape_configs", [])}
    for name in by_job:
        jobs.setdefault(name, {"job_name": name})
    scrape_configs = []
    for name, job in jobs.items():
        chosen = by_job.get(name)
        if not chosen:
            continue
        paths = {target.path for target in chosen}
        if "metrics_path" not in job and len(paths) > 1:
            raise ValueError(f"job {name} has targets on several paths: {sorted(paths)}")
        scrape_configs.append(
            {
                **job,
                "metrics_path": job.get("metrics_path", paths.pop()),
                "static_configs": [
                    {"targets": [target.address], "labels": {"process": target.process}}
                    for target in chosen
                ],
            }
        )
    return {
        "global": {
            **shape.get("global", {}),
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": scrape_configs,
    }


def render_rules(stuck_minutes: float, source: Path = ALERTS_FILE) -> str:
    """``source``'s rules with the ``SagaStuck`` alert's ``for:`` set to ``stuck_minutes``.

    Raises:
        ValueError: ``source`` has no ``SagaStuck`` rule.
    """
    rules = yaml.safe_load(source.read_text())
    stuck = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == STUCK_ALERT
    ]
    if not stuck:
        raise ValueError(f"{source} has no {STUCK_ALERT} alert to set the duration of")
    for rule in stuck:
        rule["for"] = f"{round(stuck_minutes * 60)}s"
    header = (
        f"# Rendered from {source} by saga-orchestrator: {STUCK_ALERT} for {stuck_minutes} min.\n"
    )
    return header + yaml.safe_dump(rules, sort_keys=False, width=100)


@dataclass(frozen=True)
class PrometheusServer:
    """Prometheus on loopback, its configuration, rules and data under the run directory."""

    binary: str
    run_dir: Path
    port: int
    retention: str = "1d"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def home(self) -> Path:
        return self.run_dir / "prometheus"

    @property
    def config_path(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def rules_path(self) -> Path:
        return self.home / "alerts.yml"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "logs" / "prometheus.log"

    def command(self) -> list[str]:
        """The command line: loopback only, storage under the run directory."""
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address={self.host}:{self.port}",
            f"--web.external-url={self.url}",
        ]

    def write_config(
        self,
        targets: Iterable[ScrapeTarget],
        *,
        scrape_interval: str,
        evaluation_interval: str,
        stuck_minutes: float,
    ) -> Path:
        """Write the rules and the scrape configuration that loads them; return its path."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.rules_path.write_text(render_rules(stuck_minutes))
        config = render_config(
            targets,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
            rule_files=[self.rules_path],
        )
        header = "# Written by saga-orchestrator for this run (infra/engines/prometheus.py).\n"
        self.config_path.write_text(header + yaml.safe_dump(config, sort_keys=False))
        return self.config_path

    def wait_until_ready(self, record: ProcessRecord, deadline: float) -> None:
        """Wait until Prometheus says it is ready, by ``deadline`` (``time.monotonic()``).

        Raises:
            RuntimeError: it ended, or was not ready in time (the end of its log is in the
                message).
        """
        with httpx.Client(timeout=2.0) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url + _READY_PATH).status_code == 200:
                        return
                if not record.is_alive():
                    raise RuntimeError(f"Prometheus ended during start:\n{log_tail(self.log_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Prometheus at {self.url} was not ready in time:\n"
                        f"{log_tail(self.log_path)}"
                    )
                time.sleep(0.2)


def check_config(promtool: str, config: Path) -> str:
    """``promtool check config`` of ``config`` (and the rules it loads): its output.

    Raises:
        RuntimeError: promtool found a problem (its output is the message).
    """
    done = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool check config {config} failed:\n{done.stdout}{done.stderr}")
    return done.stdout
