"""``saga soak``: many sagas in a row, to show that nothing grows without bound.

It places ``orders`` orders through the API (``concurrency`` at a time, the chaos run's
mix of outcomes, no faults), samples the resident memory of every process of the stack as
it goes, then waits for the outboxes and the consumer groups to drain. The report has each
process's resident size before the run, once warmed up (after the first tenth of the
orders: caches, pools and JIT filled), at its peak and at the end, and whether the outbox
backlog and the consumer lag came back to zero.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from infra.config.settings import Settings
from infra.engines.stack import Stack
from ops.bench.load import ProgressLine, Say
from ops.bench.memory import RssSampler, rss_mb
from ops.bench.observe import scrape_metrics
from ops.chaos.load import ChaosLoad
from ops.chaos.runner import (
    ChaosError,
    connect_quietly,
    family_total,
    outbox_pending,
    service_metrics,
)

__all__ = ["SoakOptions", "SoakReport", "render_soak", "run_soak"]


_GROWTH_LIMIT = 0.25
"""Growth from warmed up to the end, beyond which a process counts as not flat."""
_GROWTH_SLACK_MB = 20.0
"""Growth under this many MB counts as flat whatever the ratio (small processes)."""


@dataclass(frozen=True)
class SoakOptions:
    """What ``saga soak`` was asked to do."""

    orders: int = 10_000
    concurrency: int = 50
    sample_every_s: float = 5.0
    drain_timeout_s: float = 120.0
    timeout_s: float = 4 * 3600.0


class ProcessMemory(BaseModel):
    """One process's resident size (MB) over the run."""

    name: str
    pid: int
    before_mb: float
    warm_mb: float | None
    peak_mb: float
    after_mb: float
    growth_after_warm_pct: float | None
    flat: bool


class SoakReport(BaseModel):
    """What one ``saga soak`` run saw."""

    run_id: str
    started_at: str
    duration_s: float
    orders: int
    accepted: int
    completed: int
    cancelled: int
    lost: int
    sagas_per_s: float
    memory: list[ProcessMemory]
    outbox_pending_after: int
    consumer_lag_after: float | None
    drained_in_s: float | None
    passed: bool
    problems: list[str]


async def _consumer_lag(urls: dict[str, str]) -> float | None:
    texts = await scrape_metrics(urls)
    seen = [text for text in texts.values() if text is not None]
    if not seen:
        return None
    return sum(family_total(text, "kafka_consumer_lag") for text in seen)


def _memory(
    name: str, pid: int, before: float, warm: float | None, peak: float, after: float
) -> ProcessMemory:
    base = warm if warm is not None else before
    growth = (after - base) / base if base else None
    flat = growth is None or growth <= _GROWTH_LIMIT or after - base <= _GROWTH_SLACK_MB
    return ProcessMemory(
        name=name,
        pid=pid,
        before_mb=round(before, 1),
        warm_mb=round(warm, 1) if warm is not None else None,
        peak_mb=round(peak, 1),
        after_mb=round(after, 1),
        growth_after_warm_pct=round(growth * 100, 1) if growth is not None else None,
        flat=flat,
    )


async def run_soak(settings: Settings, options: SoakOptions, *, say: Say) -> SoakReport:
    """Run ``options.orders`` sagas against the stack of ``settings`` and watch its memory.

    Raises:
        ChaosError: the stack is not up.
    """
    stack = Stack(settings, say=lambda _: None)
    pids = {s.name: s.pid for s in stack.status() if s.pid is not None and s.state == "running"}
    if "api" not in pids:
        raise ChaosError("the stack is not running here: start it with `saga up`")
    urls = service_metrics(stack, pids)
    temporal = await connect_quietly(settings)
    began = datetime.now(UTC)
    run_id = f"{began:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    say(f"soak {run_id}: {options.orders} orders, {options.concurrency} at once")
    before = {name: rss_mb(pid) or 0.0 for name, pid in pids.items()}
    warm: dict[str, float] = {}
    warm_at = max(options.orders // 10, 1)
    started = time.monotonic()
    line = ProgressLine("sagas", say)

    def progress(done: int, total: int) -> None:
        if done == warm_at and not warm:
            warm.update({name: rss_mb(pid) or 0.0 for name, pid in pids.items()})
        line(done, total)

    load = ChaosLoad(
        settings=settings,
        temporal=temporal,
        run_id=run_id,
        count=options.orders,
        concurrency=options.concurrency,
        deadline=started + options.timeout_s,
        progress=progress,
        order_prefix="soak",
    )

    async with RssSampler(pids, interval=options.sample_every_s) as memory_sampler:
        await load.run()
    peak = memory_sampler.peaks().peak_mb
    duration = time.monotonic() - started

    say("waiting for the outboxes and the consumer groups to drain")
    draining = time.monotonic()
    pending, lag = outbox_pending(settings), await _consumer_lag(urls)
    while (pending or lag) and time.monotonic() - draining < options.drain_timeout_s:
        await asyncio.sleep(1.0)
        pending, lag = outbox_pending(settings), await _consumer_lag(urls)
    drained_in = time.monotonic() - draining if not pending and not lag else None
    after = {name: rss_mb(pid) or 0.0 for name, pid in pids.items()}

    memory = [
        _memory(
            name,
            pid,
            before[name],
            warm.get(name),
            max(before[name], peak.get(name, 0.0), after[name]),
            after[name],
        )
        for name, pid in pids.items()
    ]
    lost = len(load.lost_orders())
    completed, cancelled = load.ended("COMPLETED"), load.ended("CANCELLED")
    problems = [
        f"{m.name} grew {m.growth_after_warm_pct}% after warm-up" for m in memory if not m.flat
    ]
    if lost:
        problems.append(f"{lost} sagas did not end")
    if pending:
        problems.append(f"{pending} events still in an outbox")
    if lag:
        problems.append(f"consumer lag still {lag:g}")
    return SoakReport(
        run_id=run_id,
        started_at=began.isoformat(timespec="seconds"),
        duration_s=round(duration, 1),
        orders=options.orders,
        accepted=len(load.accepted),
        completed=completed,
        cancelled=cancelled,
        lost=lost,
        sagas_per_s=round((completed + cancelled) / duration, 2) if duration else 0.0,
        memory=memory,
        outbox_pending_after=pending,
        consumer_lag_after=lag,
        drained_in_s=round(drained_in, 1) if drained_in is not None else None,
        passed=not problems,
        problems=problems,
    )


def render_soak(report: SoakReport) -> str:
    """The report as tables for people."""
    lines = [
        f"soak {report.run_id}: {report.accepted}/{report.orders} orders in "
        f"{report.duration_s:.0f} s ({report.sagas_per_s:g} sagas/s), "
        f"{report.completed} completed, {report.cancelled} cancelled, {report.lost} lost: "
        + ("PASSED" if report.passed else "FAILED"),
        "",
        "| process | RSS before MB | warmed up | peak | after | growth after warm-up |",
        "|---|---|---|---|---|---|",
        *(
            f"| {m.name} | {m.before_mb:g} | {'-' if m.warm_mb is None else f'{m.warm_mb:g}'} | "
            f"{m.peak_mb:g} | {m.after_mb:g} | "
            f"{'-' if m.growth_after_warm_pct is None else f'{m.growth_after_warm_pct:+g}%'} |"
            for m in report.memory
        ),
        "",
        f"outbox backlog after: {report.outbox_pending_after}; consumer lag after: "
        f"{report.consumer_lag_after}; drained in "
        + ("-" if report.drained_in_s is None else f"{report.drained_in_s:g} s"),
        *(f"problem: {problem}" for problem in report.problems),
    ]
    return "\n".join(lines)
