"""Background processes that the project starts: spawned, recorded by process id, and stopped.

A record keeps the process id together with the kernel's start time of that process, so a
process id that the system has since given to somebody else's process is never signalled.
"""

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "MissingToolError",
    "PortReservation",
    "ProcessRecord",
    "ProcessTable",
    "free_port",
    "free_ports",
    "kill_process",
    "listener_of",
    "log_tail",
    "port_in_use",
    "require_tool",
    "reserve_ports",
    "spawn",
    "start_ticks_of",
    "stop_process",
    "stop_processes",
]


@dataclass(frozen=True)
class ProcessRecord:
    """One process started in the background: who it is and how to recognise it again."""

    name: str
    pid: int
    start_ticks: int
    command: list[str]
    log: str

    def is_alive(self) -> bool:
        """Whether this very process (same id, same start time) is still running."""
        ticks = start_ticks_of(self.pid)
        return ticks is not None and ticks == self.start_ticks


def start_ticks_of(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    # A zombie has finished, and only its parent has not reaped it yet; but a killed process
    # whose main thread is a zombie may still have threads ending, holding its sockets open.
    if fields[0] == "Z" and _threads_left(pid) <= 1:
        return None
    return int(fields[19])


def _threads_left(pid: int) -> int:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0


def spawn(
    name: str,
    command: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``command`` in its own session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    ticks = start_ticks_of(process.pid) or 0
    return process, ProcessRecord(name, process.pid, ticks, list(command), str(log_path))


def stop_process(record: ProcessRecord, *, timeout: float = 20.0) -> bool:
    """Stop the recorded process: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Returns:
        True if the process was running and has been stopped, False if it was not running.
    """
    return bool(stop_processes([record], timeout=timeout))


def stop_processes(
    records: Sequence[ProcessRecord], *, timeout: float = 20.0
) -> list[ProcessRecord]:
    """Stop the recorded processes together: SIGTERM to each, then SIGKILL to any still running
    ``timeout`` seconds later, so their graceful stops overlap.

    Returns:
        The records whose processes were running and have been stopped, in the given order.
    """
    running = [record for record in records if record.is_alive()]
    for record in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    waiting = [record for record in running if not _ended(record)]
    while waiting and time.monotonic() < deadline:
        time.sleep(0.1)
        waiting = [record for record in waiting if not _ended(record)]
    for record in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
    while waiting:
        time.sleep(0.05)
        waiting = [record for record in waiting if not _ended(record)]
    return running


def kill_process(record: ProcessRecord) -> bool:
    """Kill the recorded process with SIGKILL (no clean-up of any kind) and wait until it is
    gone: what a crash looks like, for a chaos run.

    Returns:
        True if the process was running and has been killed, False if it was not running.
    """
    if not record.is_alive():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGKILL)
    while not _ended(record):
        time.sleep(0.02)
    return True


def _ended(record: ProcessRecord) -> bool:
    _reap(record.pid)
    return not record.is_alive()


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class ProcessTable:
    """The processes recorded under a run directory, one JSON file per process name."""

    def __init__(self, run_dir: Path) -> None:
        self._dir = run_dir / "pids"

    def get(self, name: str) -> ProcessRecord | None:
        """The record of ``name``, or None if it was never started or has been stopped."""
        path = self._dir / f"{name}.json"
        try:
            return ProcessRecord(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)  # a half-written record names no process we can trust
            return None

    def put(self, record: ProcessRecord) -> None:
        """Record ``record``, replacing any earlier record of the same name."""
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f".{record.name}.json.tmp"
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(self._dir / f"{record.name}.json")

    def remove(self, name: str) -> None:
        """Forget ``name``."""
        (self._dir / f"{name}.json").unlink(missing_ok=True)

    def names(self) -> list[str]:
        """The names of every recorded process, in no particular order."""
        if not self._dir.is_dir():
            return []
        return [path.stem for path in self._dir.glob("*.json") if not path.name.startswith(".")]


def listener_of(port: int) -> str | None:
    """Who listens on TCP ``port`` on this machine: ``pid N (command line)``, or None when
    nobody does or the socket's owner cannot be seen (another user's process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (process / "fd").iterdir()):
                command = (process / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                return f"pid {process.name} ({command.decode(errors='replace')[:120]})"
    return None


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


PORTS = range(20_000, 32_000)
"""Where reservations choose ports: below Linux's ephemeral range (32768 and up)."""
_ports = PORTS


def use_ports(ports: range) -> None:
    """Let this process's reservations choose from ``ports`` only (a slice of ``PORTS``).

    A reservation proves a port free when it is chosen, not when its process binds it, so
    two processes reserving side by side (the test suite's workers) could choose the same
    port; each takes a slice of its own instead.
    """
    if ports.start < PORTS.start or ports.stop > PORTS.stop or len(ports) < 2_000:
        raise ValueError(f"{ports} is not a slice of {PORTS} of 2000 ports or more")
    global _ports  # one setting of the whole process, made once at its start
    _ports = ports


class PortReservation:
    """Ports chosen for one stack, each held bound until the reservation ends.

    A port chosen here stays bound by this process until ``release``, so no later choice of
    the same reservation can be that port again (or one of its neighbours): the ports of one
    stack are distinct by construction, not by luck.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._held: list[socket.socket] = []

    def port(self, *neighbours: int) -> int:
        """A port that nobody listens on, whose ``port + n`` for each of ``neighbours`` is free
        too, all of them apart from every port this reservation holds already.

        Taken from ``PORTS`` (or this process's slice of it, :func:`use_ports`), below
        Linux's ephemeral range (32768 and up), so that the port is still free
        when a process restarts on it: the kernel hands ephemeral ports to outgoing
        connections, and one of them could otherwise take the port while its process is down.
        """
        offsets = (0, *neighbours)
        for _ in range(1000):
            base = random.randrange(_ports.start, _ports.stop - max(offsets))
            taken = self._bind_all([base + offset for offset in offsets])
            if taken is not None:
                self._held.extend(taken)
                return base
        raise OSError(f"no free port with neighbours {neighbours} on {self.host}")

    def ports(self, count: int, *neighbours: int) -> list[int]:
        """``count`` ports as ``port`` chooses them: distinct, and their neighbours too."""
        return [self.port(*neighbours) for _ in range(count)]

    def release(self) -> None:
        """Let the ports go, for the processes that are to listen on them."""
        for held in self._held:
            held.close()
        self._held.clear()

    def _bind_all(self, ports: Sequence[int]) -> list[socket.socket] | None:
        bound: list[socket.socket] = []
        for port in ports:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.bind((self.host, port))
            except OSError:
                probe.close()
                for held in bound:
                    held.close()
                return None
            bound.append(probe)
        return bound


@contextlib.contextmanager
def reserve_ports(host: str = "127.0.0.1") -> Iterator[PortReservation]:
    """A ``PortReservation`` on ``host``, released when the block ends: choose every port of one
    stack inside the block, and no two of them can be the same."""
    reservation = PortReservation(host)
    try:
        yield reservation
    finally:
        reservation.release()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports on ``host`` that nobody listens on right now."""
    with reserve_ports(host) as reservation:
        return reservation.ports(count)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nobody listens on right now (one of ``free_ports``).

    For several ports of one stack, take them from one ``reserve_ports`` (or ``free_ports``):
    two calls of this function may hand out the same port.
    """
    return free_ports(1, host)[0]


class MissingToolError(Exception):
    """A program an engine needs (Java, Maven, the temporal CLI) is not installed."""


def require_tool(tool: str, what: str, install_hint: str) -> str:
    """The path of ``tool``.

    Raises:
        MissingToolError: it is not installed (the message says what needs it and how to get it).
    """
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(f"{tool!r} not found: {what} needs it; {install_hint}")
    return path


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a process's log, indented for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"  (no log at {path})"
    return "\n".join(f"  | {line}" for line in text)
