"""Supply chain: the locked dependencies are the installed ones, and none has a known
vulnerability that a newer version fixes (pip-audit, against PyPI's advisory data).

pip-audit reads the advisories from PyPI's per-release JSON API
(``https://pypi.org/pypi/<name>/<version>/json``) or from OSV. A machine that reaches PyPI
only through a package mirror (the reference machine serves the simple index and the
project-level JSON, but answers 404 for every release) cannot audit: there pip-audit skips
every package and reports nothing, which must never pass for a clean bill. So the audit
refuses to conclude when it skipped a package, and the two audit tests say why they cannot
run where the advisory source is unreachable.
"""

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from tests.support import REPO

LOCK = REPO / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;]+)")


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[match["name"]] = match["version"]
    return pins


def _advisories_reachable() -> bool:
    try:
        response = httpx.get("https://pypi.org/pypi/requests/2.19.0/json", timeout=10)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


needs_advisories = pytest.mark.skipif(
    not _advisories_reachable(),
    reason="PyPI's per-release JSON API, pip-audit's advisory source, is not reachable from "
    "this machine (404 through the package mirror; OSV unreachable): nothing can be audited",
)


def fixable_vulnerabilities(lock: Path) -> list[str]:
    """Each known vulnerability of a pinned package that a released version fixes, as
    ``name version: id (fixed in ...)``.

    Raises:
        RuntimeError: pip-audit could not run, or skipped a package (its advisories could not
            be read): an audit with holes is no audit.
    """
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"pip-audit failed (exit {result.returncode}): {result.stderr.strip()[-2000:]} "
            "(it needs to reach pypi.org)"
        ) from None
    skipped = [dep["skip_reason"] for dep in report["dependencies"] if "skip_reason" in dep]
    if skipped:
        raise RuntimeError(f"pip-audit skipped {len(skipped)} package(s): {skipped[:3]}")
    return [
        f"{dependency['name']} {dependency['version']}: {vulnerability['id']} "
        f"(fixed in {', '.join(vulnerability['fix_versions'])})"
        for dependency in report["dependencies"]
        for vulnerability in dependency.get("vulns", [])
        if vulnerability["fix_versions"]
    ]


def test_the_installed_packages_are_the_locked_ones() -> None:
    """What the suite runs on is what the lock pins, so auditing the lock audits the suite."""
    pins = _pins(LOCK)
    assert len(pins) > 50, f"{LOCK} pins too little to be the whole environment"
    differ = {
        name: (version, metadata.version(name))
        for name, version in pins.items()
        if metadata.version(name) != version
    }
    assert not differ, f"installed versions differ from {LOCK.name} (run `make lock`): {differ}"
    required = {
        re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in metadata.requires("saga-orchestrator") or []
    }
    locked = {name.lower().replace("_", "-") for name in pins}
    assert required <= locked, f"not pinned in {LOCK.name}: {sorted(required - locked)}"


@needs_advisories
@pytest.mark.timeout(330)
def test_no_locked_dependency_has_a_known_vulnerability_with_a_fix() -> None:
    """pip-audit finds no advisory with a fixed release against any pinned version."""
    found = fixable_vulnerabilities(LOCK)
    assert not found, "upgrade (then `make lock`): " + "; ".join(found)


@needs_advisories
@pytest.mark.timeout(330)
def test_the_audit_reports_a_known_vulnerability_that_has_a_fix(tmp_path: Path) -> None:
    """The check is not blind: requests 2.19.0 leaks credentials on redirects to HTTP
    (CVE-2018-18074, fixed in 2.20.0), and the audit names it."""
    lock = tmp_path / "requirements.lock"
    lock.write_text("requests==2.19.0\n")
    found = fixable_vulnerabilities(lock)
    assert any(line.startswith("requests 2.19.0:") and "2.20.0" in line for line in found), found
