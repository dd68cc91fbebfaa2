"""The cluster topology's Web UI, and a saga over mTLS, as a person meets them on the session's
cluster stack: `saga up --topology cluster` starts Temporal's UI server beside the full server
and names its address, `saga ps` lists it, the link `saga demo` prints opens the saga there,
and `saga logs temporal-ui` shows its log (`saga down` is checked when the session ends).

The full server's frontend requires the run's client certificate (mTLS): the demo's saga,
the services and the UI all present it; a client without one is refused.
"""

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, TLSConfig

from infra.config.temporal import frontend_tls_dir
from tests.support.cli import run_saga, saga_ps
from tests.support.stacks import ClusterStack

# `make install` (`saga fetch`) builds Temporal's server and UI before the tests; run alone on
# a fresh machine, `saga up` builds them (about 5 minutes on two cores).
pytestmark = pytest.mark.timeout(900)


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


def test_the_cluster_serves_the_web_ui_and_runs_sagas_over_mtls(
    cluster_stack_started: ClusterStack,
) -> None:
    started = cluster_stack_started
    env, settings = started.env, started.settings
    ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}"
    api_url = settings.api_url

    assert f"temporal-ui  healthy at {ui_url}" in started.up_output
    assert re.search(rf"^  Temporal UI  {re.escape(ui_url)}$", started.up_output, re.M)

    row = saga_ps(env)["temporal-ui"]
    assert (row["state"], row["address"]) == ("running", ui_url)
    assert row["version"] == "Temporal UI 2.54.1"
    assert isinstance(row["pid"], int)

    with httpx.Client(base_url=ui_url, timeout=10) as http:
        ui_settings = http.get("/api/v1/settings").json()
    # Encrypted payloads are shown decoded through the API's codec, as on the dev server's UI.
    assert ui_settings["Codec"]["Endpoint"] == f"{api_url}/codec"

    ca = (frontend_tls_dir(settings.run_dir) / "ca.pem").read_bytes()
    refused = asyncio.run(_refused_without_certificate(settings.temporal_address, ca))
    assert refused, "the frontend answered a client without a certificate"

    demo = run_saga(env, "demo", timeout=180)  # a saga, its workers presenting the run's cert
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "COMPLETED" in demo.stdout
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


def test_the_web_ui_finds_a_return_by_its_search_attributes(
    cluster_stack_started: ClusterStack,
) -> None:
    """`saga demo --return` on the cluster: the Web UI lists the return's saga when filtered
    by type, order and outcome, as it lists orders, and not under another outcome."""
    env, settings = cluster_stack_started.env, cluster_stack_started.settings
    ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}"
    demo = run_saga(env, "demo", "--return", timeout=240)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    started = re.search(r"^return (\S+) of order (\S+) \(", demo.stdout, re.M)
    assert started is not None, demo.stdout
    return_id, order_id = started.groups()
    query = f"WorkflowType = 'ReturnSaga' AND OrderId = '{order_id}'"
    listed = _workflows(ui_url, f"{query} AND SagaStatus = 'COMPLETED'")
    assert [e["execution"]["workflowId"] for e in listed] == [f"return-{return_id}"]
    assert listed[0]["type"]["name"] == "ReturnSaga"
    assert _workflows(ui_url, f"{query} AND SagaStatus = 'EXPIRED'", within=0) == []
