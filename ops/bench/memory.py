"""Resident memory of the stack's processes, read from ``/proc/PID/status`` (Linux).

:func:`rss_mb` reads one process's resident size now; :class:`RssSampler` keeps the peak of
each process while a phase runs. ``saga bench`` and ``saga soak`` both use them.
"""

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel

__all__ = ["RssPeaks", "RssSampler", "parse_vm_rss", "rss_mb"]


def parse_vm_rss(status: str) -> float | None:
    """The ``VmRSS`` line of a ``/proc/PID/status`` text in MB (MiB), or None without one."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            try:
                value = int(fields[1])
            except (IndexError, ValueError):
                return None
            unit = fields[2] if len(fields) > 2 else "kB"
            if unit != "kB":  # the kernel has only ever written kB here
                return None
            return value / 1024
    return None  # a kernel thread, or a zombie: no resident set


def rss_mb(pid: int) -> float | None:
    """Process ``pid``'s resident size now in MB, or None when it cannot be read (gone)."""
    try:
        return parse_vm_rss(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


class RssPeaks(BaseModel):
    """The highest resident size seen of each process while a phase ran."""

    interval_s: float
    samples: int
    peak_mb: dict[str, float]
    """By process name; a process never read is missing."""


class RssSampler:
    """Samples the resident size of ``pids`` every ``interval`` seconds, from ``__aenter__``
    (one sample at once) to ``__aexit__`` (one last sample), keeping each process's peak."""

    def __init__(self, pids: Mapping[str, int], *, interval: float = 1.0) -> None:
        self._pids = dict(pids)
        self._interval = interval
        self._peak: dict[str, float] = {}
        self._samples = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.sample()
        self._task = asyncio.create_task(self._sample_forever(), name="rss-sampler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    def sample(self) -> None:
        """Read every process's resident size once and keep the peaks."""
        for name, pid in self._pids.items():
            rss = rss_mb(pid)
            if rss is not None:
                self._peak[name] = max(self._peak.get(name, 0.0), rss)
        self._samples += 1

    def peaks(self) -> RssPeaks:
        """The peaks so far, in MB rounded to 0.1."""
        return RssPeaks(
            interval_s=self._interval,
            samples=self._samples,
            peak_mb={name: round(mb, 1) for name, mb in self._peak.items()},
        )

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.sample()
