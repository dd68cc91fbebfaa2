"""The faults of a chaos run: a component killed and restarted, paused and resumed, or (in the
cluster topology) most of the Kafka nodes down at once.

A kill is ``SIGKILL`` (no clean-up of any kind), then a few seconds down, then ``saga up``
(:meth:`infra.engines.stack.Stack.up`), which restarts exactly what is missing and waits until it is
healthy. A pause is ``SIGSTOP`` for long enough that Temporal's time-outs fire on the work
the process holds, then ``SIGCONT``: the process comes back and finishes work that was
handed to somebody else meanwhile, which is what idempotency must absorb. A brokers-down
outage kills several Kafka nodes at once and keeps them down for a while, then ``saga up``.

In the cluster topology two targets name a Kafka node by its role, found when the fault
strikes: ``kafka-broker`` is a node that is not the active KRaft controller,
``kafka-controller`` the one that is (:meth:`infra.engines.stack.Stack.kafka_controller`).
"""

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from infra.engines.processes import ProcessRecord, ProcessTable, kill_process
from infra.engines.stack import ENGINES, KAFKA_NODES, Stack, StackError, split_instance

__all__ = [
    "CLUSTER_ENGINE_TARGETS",
    "KAFKA_BROKER",
    "KAFKA_CONTROLLER",
    "KILL_TARGETS",
    "PAUSE_TARGETS",
    "ChaosTargetError",
    "Fault",
    "FaultKind",
    "FaultResult",
    "inject",
    "kafka_role",
    "kill_targets",
    "known_targets",
    "pause_targets",
    "plan_faults",
    "processes_of",
]

KILL_TARGETS: tuple[str, ...] = (
    "payment",
    "inventory",
    "shipping",
    "orchestrator",
    "api",
    "temporal",
    "kafka",
)
"""Every process of the embedded stack: each one is killed once in a run."""

PAUSE_TARGETS: tuple[str, ...] = ("payment", "inventory", "shipping")
"""The services whose activities time out while paused (one of them is paused in a run)."""

KAFKA_BROKER = "kafka-broker"
"""Cluster topology: a Kafka node that is not the active KRaft controller."""
KAFKA_CONTROLLER = "kafka-controller"
"""Cluster topology: the Kafka node that is the active KRaft controller."""
CLUSTER_ENGINE_TARGETS: tuple[str, ...] = (KAFKA_BROKER, KAFKA_CONTROLLER, "temporal", "postgres")
"""The engines a cluster run kills, the broker before the controller."""


def _cluster(stack: Stack) -> bool:
    return "postgres" in stack.engines()


def kill_targets(stack: Stack) -> tuple[str, ...]:
    """What a run on ``stack`` kills by default: every process of the embedded stack; in the
    cluster topology a Kafka broker, later the active controller, Temporal's server,
    PostgreSQL, each copy of each service, and the API."""
    if not _cluster(stack):
        return KILL_TARGETS
    copies = [name for name in stack.instances() if name not in ENGINES]
    return (*CLUSTER_ENGINE_TARGETS, *copies)


def pause_targets(stack: Stack) -> tuple[str, ...]:
    """The processes one of which a run on ``stack`` pauses by default: a service whose
    activities time out meanwhile (any copy of it in the cluster topology)."""
    if not _cluster(stack):
        return PAUSE_TARGETS
    return tuple(name for name in stack.instances() if split_instance(name)[0] in PAUSE_TARGETS)


def known_targets(stack: Stack) -> tuple[str, ...]:
    """Every name a run on ``stack`` may be asked to hurt: its default targets, and in the
    cluster topology each Kafka node by name too."""
    if not _cluster(stack):
        return KILL_TARGETS
    return (*kill_targets(stack), *KAFKA_NODES)


class FaultKind(StrEnum):
    """How a component is hurt."""

    KILL = "kill"
    PAUSE = "pause"
    BROKERS_DOWN = "brokers-down"
    """Several Kafka nodes killed together (the target is how many) and kept down a while."""


@dataclass(frozen=True)
class Fault:
    """One fault of the plan."""

    kind: FaultKind
    target: str

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


class FaultResult(BaseModel):
    """What one fault did, and how long the stack took to get over it."""

    kind: FaultKind
    target: str
    at_s: float
    """Seconds into the run when the fault struck."""
    pid: int
    """The process struck (the first of them, for a brokers-down outage)."""
    processes: list[str] = []
    """The processes struck: the target's own name, or the Kafka nodes it stood for."""
    controller: str | None = None
    """Kafka faults of the cluster topology: the active KRaft controller when it struck."""
    down_s: float
    """How long the process was dead (killed) or frozen (paused)."""
    restart_s: float | None
    """From ``saga up`` to the component healthy again (kills only)."""
    up_retries: int = 0
    """``saga up`` runs that failed before one brought the component back."""
    recovered_s: float | None = None
    """From the fault to the first saga finished after the component came back: the
    stack doing work again. None if no saga finished afterwards."""
    finished_before: int
    """Sagas finished when the fault struck."""
    lag_peak: int | None = None
    """The highest consumer lag (records behind, summed over the consumer groups) sampled
    from the fault until it was back under the run's limit."""
    lag_settled_s: float | None = None
    """From the fault to the consumer lag back under the run's limit, once the component
    was back; None if it did not get there in the time allowed."""
    backlog_before: int | None = None
    """Brokers down: events waiting in the outboxes when the nodes were killed."""
    backlog_peak: int | None = None
    """Brokers down: the most events waiting in the outboxes while the nodes were down."""
    backlog_after: int | None = None
    """Brokers down: events waiting in the outboxes once the consumer lag had settled."""
    published_during: int | None = None
    """Brokers down: events of the run the outboxes marked sent while the nodes were down."""
    publish_errors: int | None = None
    """Brokers down: batches the outbox relays failed to publish while the nodes were down."""


def plan_faults(
    rng: random.Random,
    kills: Sequence[str] = KILL_TARGETS,
    pauses: Sequence[str] = PAUSE_TARGETS,
    brokers_down: int = 0,
) -> list[Fault]:
    """Every kill once, one pause and, if asked, one brokers-down outage, in a random order;
    a Kafka broker is killed before the active controller."""
    faults = [Fault(FaultKind.KILL, target) for target in kills]
    if pauses:
        faults.append(Fault(FaultKind.PAUSE, rng.choice(list(pauses))))
    if brokers_down:
        faults.append(Fault(FaultKind.BROKERS_DOWN, str(brokers_down)))
    rng.shuffle(faults)
    broker, controller = (
        Fault(FaultKind.KILL, KAFKA_BROKER),
        Fault(FaultKind.KILL, KAFKA_CONTROLLER),
    )
    if broker in faults and controller in faults:
        first, second = sorted((faults.index(broker), faults.index(controller)))
        faults[first], faults[second] = broker, controller
    return faults


class ChaosTargetError(Exception):
    """A fault's target is not a running process of the stack."""


def kafka_role(fault: Fault) -> bool:
    """Whether ``fault`` strikes Kafka nodes chosen by their role when it strikes."""
    return fault.kind is FaultKind.BROKERS_DOWN or fault.target in (KAFKA_BROKER, KAFKA_CONTROLLER)


def processes_of(fault: Fault, controller: str | None, rng: random.Random) -> list[str]:
    """The processes ``fault`` strikes now: its target, or the Kafka nodes a role or an
    outage stands for, given the active ``controller`` (looked up at this moment).

    Raises:
        ChaosTargetError: a role needs the active controller, and it cannot be told.
    """
    if fault.kind is FaultKind.BROKERS_DOWN:
        return sorted(rng.sample(list(KAFKA_NODES), int(fault.target)))
    if fault.target not in (KAFKA_BROKER, KAFKA_CONTROLLER):
        return [fault.target]
    if controller is None:
        raise ChaosTargetError(
            "no Kafka node has recorded an active controller (the nodes' quorum-state files)"
        )
    if fault.target == KAFKA_CONTROLLER:
        return [controller]
    return [rng.choice([node for node in KAFKA_NODES if node != controller])]


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    if not record.is_alive():
        raise ChaosTargetError(f"{record.name} (pid {record.pid}) is not running")
    os.kill(record.pid, sig)


async def inject(
    fault: Fault,
    stack: Stack,
    table: ProcessTable,
    *,
    down_s: float,
    started: float,
    finished: Callable[[], int],
    processes: Sequence[str] | None = None,
    while_down: Callable[[], Awaitable[None]] | None = None,
    until_back: Callable[[], Awaitable[None]] | None = None,
) -> FaultResult:
    """Strike ``fault`` now and return once the component is back (healthy, or resumed).

    ``started`` is the run's start on the monotonic clock; ``finished`` says how many sagas
    have finished so far. ``processes``: what the fault strikes (by default its target);
    ``while_down`` runs while they are down (cancelled when ``down_s`` is over);
    ``until_back``, after ``saga up``, returns once they answer themselves (counted in the
    restart).

    Raises:
        ChaosTargetError: the target is not running.
        StackError: the stack could not bring the component back.
    """
    names = list(processes) if processes is not None else [fault.target]
    records = [table.get(name) for name in names]
    missing = [name for name, record in zip(names, records, strict=True) if record is None]
    if missing:
        raise ChaosTargetError(f"{', '.join(missing)}: not a recorded process of this stack")
    alive = [record for record in records if record is not None]
    struck = time.monotonic()
    before = finished()
    restart_s = None
    up_retries = 0
    if fault.kind is FaultKind.PAUSE:
        for record in alive:
            _signal(record, signal.SIGSTOP)
        try:
            await _down(down_s, while_down)
        finally:
            for record in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGCONT)
    else:
        for record in alive:
            if not await asyncio.to_thread(kill_process, record):
                raise ChaosTargetError(f"{record.name} (pid {record.pid}) is not running")
        await _down(down_s, while_down)
        restarting = time.monotonic()
        up_retries = await _up(stack)
        if until_back is not None:
            await until_back()
        restart_s = time.monotonic() - restarting
    return FaultResult(
        kind=fault.kind,
        target=fault.target,
        at_s=round(struck - started, 2),
        pid=alive[0].pid,
        processes=names,
        down_s=round(down_s, 2),
        restart_s=round(restart_s, 2) if restart_s is not None else None,
        up_retries=up_retries,
        finished_before=before,
    )


UP_RETRY_S = 120.0
"""How long ``saga up`` is run again, 2 s apart, to bring a killed component back."""


async def _up(stack: Stack) -> int:
    """``saga up`` until it succeeds, for at most :data:`UP_RETRY_S` seconds; the number of
    runs that failed first. Kafka nodes just started refuse requests until they are ready
    (``NodeNotReadyError``), and the topic catalog's step of ``saga up`` fails on that as it
    would for an operator, who would run it again.

    Raises:
        StackError: the last run failed.
    """
    deadline = time.monotonic() + UP_RETRY_S
    retries = 0
    while True:
        try:
            await asyncio.to_thread(stack.up)
        except StackError:
            if time.monotonic() > deadline:
                raise
            retries += 1
            await asyncio.sleep(2.0)
        else:
            return retries


async def _down(seconds: float, while_down: Callable[[], Awaitable[None]] | None) -> None:
    if while_down is None:
        await asyncio.sleep(seconds)
        return
    watching = asyncio.ensure_future(while_down())
    try:
        await asyncio.sleep(seconds)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
