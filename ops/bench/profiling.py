"""``py-spy record`` on the stack's processes while the orders run (``saga bench --profile``).

Each profile is written as collapsed stacks (``<service>.folded``, which speedscope and
``flamegraph.pl`` open); the report lists where each process spent most of its samples.
"""

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from pydantic import BaseModel

__all__ = ["HotSpot", "ProcessProfile", "Profilers", "find_py_spy", "hot_spots"]


class HotSpot(BaseModel):
    """A function where a process was found running (its own time, not its callees')."""

    function: str
    share: float


class ProcessProfile(BaseModel):
    """What py-spy saw of one process."""

    process: str
    pid: int
    samples: int
    profile: str
    hot_spots: list[HotSpot]


def find_py_spy() -> str | None:
    """The py-spy executable beside this Python, or on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def hot_spots(folded: str, top: int = 8) -> tuple[int, list[HotSpot]]:
    """The samples in a collapsed-stacks text and the functions with the most own samples."""
    own: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] += samples
    return total, [
        HotSpot(function=function, share=round(samples / total, 3))
        for function, samples in own.most_common(top)
    ]


class Profilers:
    """One ``py-spy record`` per process, started and stopped by the bench."""

    def __init__(self, py_spy: str, pids: dict[str, int], folder: Path) -> None:
        self._py_spy = py_spy
        self._pids = pids
        self._folder = folder
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        """Start sampling every process (100 times a second, without pausing it)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        for name, pid in self._pids.items():
            log = (self._folder / f"{name}.py-spy.log").open("wb")
            output = self._folder / f"{name}.folded"
            command = [
                self._py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking",
                "--format", "raw", "--output", str(output),
            ]  # fmt: skip
            self._running[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> list[ProcessProfile]:
        """Stop sampling (py-spy writes its profile on SIGINT) and summarize each profile."""
        for process in self._running.values():
            process.send_signal(signal.SIGINT)
        profiles = []
        for name, process in self._running.items():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            path = self._folder / f"{name}.folded"
            if not path.exists():
                continue
            samples, spots = hot_spots(path.read_text(errors="replace"))
            profiles.append(
                ProcessProfile(
                    process=name,
                    pid=self._pids[name],
                    samples=samples,
                    profile=str(path),
                    hot_spots=spots,
                )
            )
        self._running.clear()
        return profiles
