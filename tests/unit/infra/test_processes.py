"""Processes are recognised by id and start time, and stopped by their id."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.config.settings import instance_name
from infra.engines.processes import (
    ProcessRecord,
    ProcessTable,
    kill_process,
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
