"""Processes are recognised by id and start time, and stopped by their id."""

import subprocess
from pathlib import Path

from infra.processes import ProcessRecord, ProcessTable, spawn, start_ticks_of, stop_process


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
