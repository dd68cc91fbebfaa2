"""``saga bench --map N``: how fast the saga map's page answers with N sagas in a namespace.

The namespace (``saga-map-bench``, kept between runs) is filled by :mod:`ops.bench.map_seed`.
An API of the stack's own code then runs in this process, on a free loopback port, reading
that namespace, with a run directory of its own (its stores and development token). The bench
signs in through the sign-in form as a browser does, asks for each saga type's map page over
HTTP, one request at a time after two warm-up requests, and times each answer, whole. It also
checks the page's numbers against what was seeded: a fast page with wrong numbers is no result.
"""

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import BaseModel

from contracts.activities import SagaPhase
from infra.config.api_tokens import ensure_dev_token
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from infra.engines.processes import free_ports
from ops.bench.load import ProgressLine
from ops.bench.map_seed import (
    MAP_BENCH_NAMESPACE,
    SyntheticSaga,
    ensure_namespace,
    plan_sagas,
    seed_sagas,
    tally,
)
from orchestrator.api.app import create_app
from orchestrator.api.models import SagaType
from orchestrator.workflows.order_saga import ORDER_SAGA
from orchestrator.workflows.return_saga import RETURN_SAGA
from runtime import wait_for_temporal

__all__ = ["MapPageFigures", "MapPageReport", "run_map_bench"]

MAP_PAGE_TARGET_MS = 300.0
_WARM_UPS = 2


class MapPageFigures(BaseModel):
    """One saga type's map page, timed."""

    saga_type: str
    requests: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    counts_match: bool
    """The page's numbers equal the seeded sagas' (running, stuck, compensating per step)."""


class MapPageReport(BaseModel):
    """What ``saga bench --map`` measured."""

    namespace: str
    sagas: int
    seeded_now: int
    seed_seconds: float
    running: int
    target_ms: float = MAP_PAGE_TARGET_MS
    pages: list[MapPageFigures]

    @property
    def met(self) -> bool:
        """Every page answered within the target at its 95th percentile, with the right
        numbers."""
        return all(p.p95_ms <= self.target_ms and p.counts_match for p in self.pages)


async def run_map_bench(
    settings: Settings, sagas: int, *, requests: int = 20, say: Callable[[str], None] = print
) -> MapPageReport:
    """Seed ``sagas`` sagas (those not there yet) and time each map page ``requests`` times."""
    client = await wait_for_temporal(
        temporal_connection(settings),
        settings.temporal_namespace,
        wait_seconds=settings.startup_timeout_seconds,
        data_converter=data_converter(settings),
    )
    await ensure_namespace(client, MAP_BENCH_NAMESPACE, say)
    bench_settings = settings.model_copy(update={"temporal_namespace": MAP_BENCH_NAMESPACE})
    bench_client = await wait_for_temporal(
        temporal_connection(settings),
        MAP_BENCH_NAMESPACE,
        wait_seconds=settings.startup_timeout_seconds,
        data_converter=data_converter(settings),
    )
    plan = plan_sagas(
        sagas,
        [(ORDER_SAGA.name, ORDER_SAGA), (RETURN_SAGA.name, RETURN_SAGA)],
    )
    started = time.perf_counter()
    say(f"seeding {sagas} sagas into namespace {MAP_BENCH_NAMESPACE} (kept for later runs)")
    seeded = await seed_sagas(bench_client, plan, ProgressLine("sagas", say))
    seed_seconds = time.perf_counter() - started
    pages = []
    async with _api(bench_settings) as api:
        for saga_type in (SagaType.ORDER, SagaType.RETURN):
            say(f"timing the {saga_type.value} map: {requests} requests")
            pages.append(await _time_page(api, saga_type, plan, requests))
    return MapPageReport(
        namespace=MAP_BENCH_NAMESPACE,
        sagas=len(plan),
        seeded_now=seeded,
        seed_seconds=round(seed_seconds, 1),
        running=sum(1 for saga in plan if saga.running),
        pages=pages,
    )


async def _time_page(
    api: httpx.AsyncClient, saga_type: SagaType, plan: list[SyntheticSaga], requests: int
) -> MapPageFigures:
    path = f"/ui/map/{saga_type.value}"
    timings = []
    for index in range(_WARM_UPS + requests):
        began = time.perf_counter()
        response = await api.get(path)
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        if index >= _WARM_UPS:
            timings.append(elapsed)
    counts = (await api.get(f"{path}/counts")).raise_for_status().json()
    ordered = sorted(timings)
    return MapPageFigures(
        saga_type=saga_type.value,
        requests=requests,
        p50_ms=round(statistics.median(ordered), 1),
        p95_ms=round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
        max_ms=round(ordered[-1], 1),
        counts_match=_matches(counts, saga_type, plan),
    )


def _matches(counts: dict[str, Any], saga_type: SagaType, plan: list[SyntheticSaga]) -> bool:
    """Whether the page's live numbers per step are the seeded sagas'."""
    seeded = tally([saga for saga in plan if saga.workflow_type == saga_type.workflow_type])
    expected: dict[str, int] = {}
    for (_, status, step, stuck), number in seeded.items():
        if status == SagaPhase.RUNNING.value:
            cell = f"{step}:{'stuck' if stuck else 'running'}"
        elif status == SagaPhase.COMPENSATING.value:
            cell = f"{step}:{'compensation_stuck' if stuck else 'compensating'}"
        else:
            continue
        expected[cell] = expected.get(cell, 0) + number
    shown = counts.get("counts", {})
    live = {cell: int(n) for cell, n in shown.items() if cell.count(":") == 1 and n}
    live = {cell: n for cell, n in live.items() if not cell.endswith(":cancelled")}
    return live == expected


@contextlib.asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The stack's API, in this process on a free port, signed in as a browser would be."""
    with tempfile.TemporaryDirectory(prefix="saga-map-bench-") as run_dir:
        (port,) = free_ports(1)
        own = settings.model_copy(update={"run_dir": Path(run_dir), "api_port": port})
        server = uvicorn.Server(
            uvicorn.Config(create_app(own), host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(60):
                while not server.started:
                    if serving.done():
                        serving.result()  # raises what stopped it
                    await asyncio.sleep(0.05)
            token = (
                settings.api_token.get_secret_value()
                if settings.api_token is not None
                else ensure_dev_token(Path(run_dir))
            )
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                signed_in = await client.post("/ui/signin", data={"token": token})
                if "saga_session" not in client.cookies:
                    raise RuntimeError(
                        f"could not sign in to the bench's API ({signed_in.status_code}): "
                        "set SAGA_API_TOKEN to a token with sagas:read"
                    )
                yield client
        finally:
            server.should_exit = True
            await serving
