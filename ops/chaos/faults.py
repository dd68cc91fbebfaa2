"""The faults of a chaos run: a component killed and restarted, or paused and resumed.

A kill is ``SIGKILL`` (no clean-up of any kind), then a few seconds down, then ``saga up``
(:meth:`infra.engines.stack.Stack.up`), which restarts exactly what is missing and waits until it is
healthy. A pause is ``SIGSTOP`` for long enough that Temporal's time-outs fire on the work
the process holds, then ``SIGCONT``: the process comes back and finishes work that was
handed to somebody else meanwhile, which is what idempotency must absorb.
"""

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from infra.engines.processes import ProcessRecord, ProcessTable, kill_process
from infra.engines.stack import Stack

__all__ = [
    "KILL_TARGETS",
    "PAUSE_TARGETS",
    "Fault",
    "FaultKind",
    "FaultResult",
    "inject",
    "plan_faults",
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
"""Every process of the stack: each one is killed once in a run."""

PAUSE_TARGETS: tuple[str, ...] = ("payment", "inventory", "shipping")
"""The services whose activities time out while paused (one of them is paused in a run)."""


class FaultKind(StrEnum):
    """How a component is hurt."""

    KILL = "kill"
    PAUSE = "pause"


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
    down_s: float
    """How long the process was dead (killed) or frozen (paused)."""
    restart_s: float | None
    """From ``saga up`` to the component healthy again (kills only)."""
    recovered_s: float | None = None
    """From the fault to the first saga finished after the component came back: the
    stack doing work again. None if no saga finished afterwards."""
    finished_before: int
    """Sagas finished when the fault struck."""


def plan_faults(
    rng: random.Random,
    kills: Sequence[str] = KILL_TARGETS,
    pauses: Sequence[str] = PAUSE_TARGETS,
) -> list[Fault]:
    """Every kill once and one pause, in a random order."""
    faults = [Fault(FaultKind.KILL, target) for target in kills]
    if pauses:
        faults.append(Fault(FaultKind.PAUSE, rng.choice(list(pauses))))
    rng.shuffle(faults)
    return faults


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    if not record.is_alive():
        raise ChaosTargetError(f"{record.name} (pid {record.pid}) is not running")
    os.kill(record.pid, sig)


class ChaosTargetError(Exception):
    """A fault's target is not a running process of the stack."""


async def inject(
    fault: Fault,
    stack: Stack,
    table: ProcessTable,
    *,
    down_s: float,
    started: float,
    finished: Callable[[], int],
) -> FaultResult:
    """Strike ``fault`` now and return once the component is back (healthy, or resumed).

    ``started`` is the run's start on the monotonic clock; ``finished`` says how many sagas
    have finished so far.

    Raises:
        ChaosTargetError: the target is not running.
        StackError: the stack could not bring the component back.
    """
    record = table.get(fault.target)
    if record is None:
        raise ChaosTargetError(f"{fault.target} is not a recorded process of this stack")
    struck = time.monotonic()
    before = finished()
    restart_s = None
    if fault.kind is FaultKind.KILL:
        if not await asyncio.to_thread(kill_process, record):
            raise ChaosTargetError(f"{record.name} (pid {record.pid}) is not running")
        await asyncio.sleep(down_s)
        restarting = time.monotonic()
        await asyncio.to_thread(stack.up)
        restart_s = time.monotonic() - restarting
    else:
        _signal(record, signal.SIGSTOP)
        try:
            await asyncio.sleep(down_s)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGCONT)
    return FaultResult(
        kind=fault.kind,
        target=fault.target,
        at_s=round(struck - started, 2),
        pid=record.pid,
        down_s=round(down_s, 2),
        restart_s=round(restart_s, 2) if restart_s is not None else None,
        finished_before=before,
    )
