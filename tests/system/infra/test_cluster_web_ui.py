"""The cluster topology's Web UI, and a saga over mTLS, as a person meets them: `saga up
--topology cluster` starts Temporal's UI server beside the full server and names its address,
`saga ps` lists it, the link `saga demo` prints opens the saga there, `saga logs temporal-ui`
shows its log, and `saga down` stops it.

A whole cluster stack of its own (PostgreSQL, three Kafka nodes, Temporal's full server, two
copies of every service) on free ports, payloads encrypted so that the UI gets the API's codec,
and the full server's frontend requiring the run's client certificate (mTLS): the demo's
saga, the services and the UI all present it; a client without one is refused.
"""

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, TLSConfig

from infra.config.settings import ENV_PREFIX
from infra.engines.processes import port_in_use, reserve_ports
from tests.support.cli import run_saga, saga_ps, without_settings
from tests.support.stacks import cluster_ports

# `make install` (`saga fetch`) builds Temporal's server and UI before the tests; run alone on
# a fresh machine, `saga up` builds them (about 5 minutes on two cores).
pytestmark = pytest.mark.timeout(900)


def _cluster_env(run_dir: Path) -> dict[str, str]:
    """Settings of a cluster stack of its own: every port free, with its neighbours; payloads
    encrypted and the full server's frontend requiring the run's client certificate."""
    with reserve_ports() as ports:
        addresses = cluster_ports(ports)
    return {
        **without_settings(),
        f"{ENV_PREFIX}RUN_DIR": str(run_dir),
        f"{ENV_PREFIX}TOPOLOGY": "cluster",
        f"{ENV_PREFIX}PAYLOAD_ENCRYPTION": "true",
        f"{ENV_PREFIX}TEMPORAL_MTLS": "true",
        f"{ENV_PREFIX}STARTUP_TIMEOUT_SECONDS": "120",
        **{ENV_PREFIX + name.upper(): str(value) for name, value in addresses.items()},
    }


async def _refused_without_certificate(address: str, ca: bytes) -> str:
    """What a client trusting the run's CA but presenting no certificate is told."""
    try:
        client = await Client.connect(
            address, tls=TLSConfig(server_root_ca_cert=ca, domain="localhost")
        )
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
    except (RuntimeError, RPCError) as refused:
        return str(refused)
    return ""


@pytest.fixture
def cluster_env() -> Iterator[dict[str, str]]:
    """The environment of `saga` for a cluster stack in a folder PostgreSQL's system user can
    enter (mode 0711); `saga down` at the end, whatever happened."""
    folder = Path(tempfile.mkdtemp(prefix="saga-cluster-ui-"))
    folder.chmod(0o711)
    env = _cluster_env(folder / "run")
    try:
        yield env
    finally:
        run_saga(env, "down", timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def _workflows(ui_url: str, query: str, *, within: float = 60.0) -> list[Any]:
    """What the UI's API lists for ``query``, once it lists anything (or nothing after
    ``within`` seconds: visibility is written after the workflow's own state)."""
    deadline = time.monotonic() + within
    with httpx.Client(base_url=ui_url, timeout=10) as http:
        while True:
            answer = http.get("/api/v1/namespaces/default/workflows", params={"query": query})
            assert answer.status_code == 200, answer.text
            executions: list[Any] = answer.json().get("executions", [])
            if executions or time.monotonic() > deadline:
                return executions
            time.sleep(0.5)


def test_the_cluster_serves_the_web_ui_from_up_to_down(cluster_env: dict[str, str]) -> None:
    env = cluster_env
    ui_url = f"http://127.0.0.1:{env[f'{ENV_PREFIX}TEMPORAL_UI_PORT']}"
    api_url = f"http://127.0.0.1:{env[f'{ENV_PREFIX}API_PORT']}"

    up = run_saga(env, "up", timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"temporal-ui  healthy at {ui_url}" in up.stdout
    assert re.search(rf"^  Temporal UI  {re.escape(ui_url)}$", up.stdout, re.M), up.stdout

    row = saga_ps(env)["temporal-ui"]
    assert (row["state"], row["address"]) == ("running", ui_url)
    assert row["version"] == "Temporal UI 2.54.1"
    assert isinstance(row["pid"], int)

    with httpx.Client(base_url=ui_url, timeout=10) as http:
        settings = http.get("/api/v1/settings").json()
    # Encrypted payloads are shown decoded through the API's codec, as on the dev server's UI.
    assert settings["Codec"]["Endpoint"] == f"{api_url}/codec"

    run_dir = Path(env[f"{ENV_PREFIX}RUN_DIR"])
    address = env[f"{ENV_PREFIX}TEMPORAL_ADDRESS"]
    ca = (run_dir / "temporal" / "tls" / "ca.pem").read_bytes()
    refused = asyncio.run(_refused_without_certificate(address, ca))
    assert refused, "the frontend answered a client without a certificate"

    demo = run_saga(env, "demo", timeout=180)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    link = re.search(r"Web UI: (\S+)", demo.stdout)
    assert link is not None, demo.stdout
    workflow_id = link.group(1).rsplit("/", 1)[1]
    assert link.group(1) == f"{ui_url}/namespaces/default/workflows/{workflow_id}"
    with httpx.Client(timeout=10) as http:
        page = http.get(link.group(1))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    listed = _workflows(ui_url, f"WorkflowId = '{workflow_id}'")
    assert [e["execution"]["workflowId"] for e in listed] == [workflow_id]

    logs = run_saga(env, "logs", "temporal-ui")
    assert logs.returncode == 0, logs.stderr
    assert "Loading config" in logs.stdout

    down = run_saga(env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert "temporal-ui" in down.stdout
    assert not port_in_use("127.0.0.1", int(env[f"{ENV_PREFIX}TEMPORAL_UI_PORT"]))
    assert saga_ps(env)["temporal-ui"]["state"] == "stopped"
