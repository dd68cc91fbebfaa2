"""Processes are recognised by id and start time, and stopped by their id; the ports of one
stack are reserved together, so that no two of them are the same."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.config.settings import instance_name
from infra.engines.processes import (
    ProcessRecord,
    ProcessTable,
    free_ports,
    kill_process,
    listener_of,
    port_in_use,
    reserve_ports,
    spawn,
    start_ticks_of,
    stop_process,
    stop_processes,
)


def test_a_spawned_process_is_recorded_and_stopped(tmp_path: Path) -> None:
    """The record survives a round trip through the table, and stopping it ends the process."""
    process, record = spawn("sleeper", ["sleep", "60"], tmp_path / "sleeper.log")
    table = ProcessTable(tmp_path)
    table.put(record)
    recorded = table.get("sleeper")
    assert recorded == record
    assert recorded.is_alive()
    assert stop_process(recorded)
    assert not recorded.is_alive()
    assert not Path(f"/proc/{process.pid}").exists()  # ended and reaped, not a zombie
    assert not stop_process(recorded)


def test_a_killed_process_is_gone_at_once_without_its_clean_up(tmp_path: Path) -> None:
    """SIGKILL, not SIGTERM: a process that ignores SIGTERM dies all the same, right away."""
    process, record = spawn(
        "stubborn", ["sh", "-c", "trap '' TERM; exec sleep 60"], tmp_path / "stubborn.log"
    )
    assert record.is_alive()
    assert kill_process(record)  # returns once the process is gone
    assert not Path(f"/proc/{process.pid}").exists()
    assert not kill_process(record)


def test_a_reused_process_id_is_never_signalled(tmp_path: Path) -> None:
    """A record whose start time does not match the running process is not that process."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        ticks = start_ticks_of(bystander.pid)
        assert ticks is not None
        # The record of a process that ran earlier under the id the bystander has now.
        impostor = ProcessRecord("old", bystander.pid, ticks - 500, ["sleep"], str(tmp_path / "x"))
        assert not impostor.is_alive()
        assert not stop_process(impostor)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def _ignores_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_processes_stopped_together_end_within_one_grace_period(tmp_path: Path) -> None:
    """SIGTERM goes to every process at once; one that ignores it is killed at the deadline."""
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    ]
    _, first = spawn("first", ["sleep", "60"], tmp_path / "first.log")
    _, second = spawn("second", stubborn, tmp_path / "second.log")
    _, third = spawn("third", stubborn, tmp_path / "third.log")
    table = ProcessTable(tmp_path)
    for record in (first, second, third):
        table.put(record)
    assert sorted(table.names()) == ["first", "second", "third"]
    deadline = time.monotonic() + 30
    while not (_ignores_sigterm(second.pid) and _ignores_sigterm(third.pid)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert stop_processes([first, second, third], timeout=1.0) == [first, second, third]
    assert time.monotonic() - started < 2.5  # one grace period, not one each
    assert not any(record.is_alive() for record in (first, second, third))
    assert stop_processes([first]) == []


def test_copies_after_the_first_are_numbered() -> None:
    assert instance_name("payment", 1) == "payment"
    assert instance_name("payment", 2) == "payment-2"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_ports_reserved_together_are_distinct_and_free() -> None:
    """n ports of one stack are n different ports nobody listens on (and anyone may bind)."""
    ports = free_ports(40)

    assert len(ports) == 40
    assert len(set(ports)) == 40
    for port in ports:
        assert 20_000 <= port < 32_000  # below the ephemeral range
        assert not port_in_use("127.0.0.1", port)
        assert _bindable(port)


def test_a_reservation_holds_its_ports_and_their_neighbours_until_it_ends() -> None:
    """Neighbours (Temporal's +10 and +11) are free too, overlap no other port chosen, and are
    held bound while the reservation lasts, so no other choice can take them meanwhile."""
    with reserve_ports() as reservation:
        bases = reservation.ports(10, 10, 11)
        taken = [base + offset for base in bases for offset in (0, 10, 11)]
        assert len(set(taken)) == len(taken) == 30
        assert not any(_bindable(port) for port in taken)
    assert all(_bindable(port) for port in taken)


def test_a_port_drawn_twice_or_in_use_is_never_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collision of a fresh clone (`orchestrator and api would both listen on port 22847`):
    the draw that gave two ``free_port()`` calls the same port gives a reservation two ports,
    and a port somebody listens on is skipped."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        busy = listener.getsockname()[1]
        fresh = free_ports(2)
        draws = iter([busy, fresh[0], fresh[0], fresh[1]])
        monkeypatch.setattr(random, "randrange", lambda *_: next(draws))

        assert free_ports(2) == fresh


def test_the_listener_of_a_port_is_named_by_pid_and_command() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        holder = listener_of(port)
        assert holder is not None and holder.startswith(f"pid {os.getpid()} (")
    assert listener_of(port) is None  # closed: nobody listens any more


def test_a_process_whose_main_thread_ended_runs_until_its_last_thread_ends() -> None:
    """A killed process's main thread can be a zombie while its other threads still end and
    hold its sockets: it counts as running until the last of them is gone."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = (
        "import ctypes, socket, threading, time\n"
        f"listening = socket.create_server(('127.0.0.1', {port}))\n"
        "threading.Thread(target=time.sleep, args=(1.5,)).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)  # the main thread ends, the other goes on\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 10
        while not port_in_use("127.0.0.1", port):
            assert time.monotonic() < deadline, "the script never listened"
            time.sleep(0.02)
        time.sleep(0.3)  # its main thread has ended by now: a zombie, the other thread sleeps
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "Z"
        assert start_ticks_of(process.pid) is not None
        assert port_in_use("127.0.0.1", port)
        while start_ticks_of(process.pid) is not None:
            assert time.monotonic() < deadline, "the process never ended"
            time.sleep(0.02)
        assert not port_in_use("127.0.0.1", port)  # ended: its sockets are closed
    finally:
        process.wait(10)
