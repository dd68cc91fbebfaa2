"""Where the machine's CPU went during a phase: each process of the stack, and the whole box.

Read from ``/proc`` (Linux): a process's user and system time, and the machine's busy and
idle time, before and after. On a small machine a saga costs CPU in every process it
touches; this says which.
"""

import os
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

__all__ = ["CpuSnapshot", "CpuUse", "cpu_use", "take_snapshot"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class CpuSnapshot(BaseModel):
    """CPU seconds so far: of each process, and of the machine (busy and all)."""

    at: float
    processes: dict[str, float]
    machine_busy: float | None
    machine_total: float | None


class CpuUse(BaseModel):
    """CPU used during a phase."""

    wall_s: float
    cpus: int | None
    machine_busy_share: float | None
    """Share of all the machine's CPUs busy during the phase (every process, ours or not)."""
    process_seconds: dict[str, float]
    """CPU seconds of each process of ours."""
    others_seconds: float | None
    """CPU seconds of everything else on the machine (other users, the kernel)."""


def _process_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _machine_seconds() -> tuple[float, float] | None:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(value) for value in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / _TICKS, total / _TICKS


def take_snapshot(pids: Mapping[str, int]) -> CpuSnapshot:
    """CPU seconds of ``pids`` and of the machine now."""
    processes = {}
    for name, pid in pids.items():
        seconds = _process_seconds(pid)
        if seconds is not None:
            processes[name] = seconds
    machine = _machine_seconds()
    return CpuSnapshot(
        at=time.monotonic(),
        processes=processes,
        machine_busy=machine[0] if machine else None,
        machine_total=machine[1] if machine else None,
    )


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    """What was used between two snapshots."""
    used = {
        name: round(after.processes[name] - seconds, 2)
        for name, seconds in before.processes.items()
        if name in after.processes
    }
    busy = total = None
    if before.machine_busy is not None and after.machine_busy is not None:
        busy = after.machine_busy - before.machine_busy
        assert before.machine_total is not None and after.machine_total is not None
        total = after.machine_total - before.machine_total
    return CpuUse(
        wall_s=round(after.at - before.at, 3),
        cpus=os.cpu_count(),
        machine_busy_share=round(busy / total, 3) if busy is not None and total else None,
        process_seconds=dict(sorted(used.items(), key=lambda item: -item[1])),
        others_seconds=round(busy - sum(used.values()), 2) if busy is not None else None,
    )
