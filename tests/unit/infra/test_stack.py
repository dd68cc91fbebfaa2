"""What `saga up` refuses before it starts anything."""

from pathlib import Path

import pytest

from infra.config.settings import TOPOLOGY_FILE, Settings, load_settings
from infra.engines.stack import Stack, StackError


def test_the_cluster_refuses_a_temporal_port_its_database_cannot_keep(tmp_path: Path) -> None:
    """Temporal's full server keeps its listeners' ports as PostgreSQL smallints: a frontend
    whose neighbours would pass 32767 is refused at once, naming the setting."""
    settings = Settings(
        run_dir=tmp_path / "run", topology="cluster", temporal_address="127.0.0.1:32760"
    )
    with pytest.raises(StackError, match="SAGA_TEMPORAL_ADDRESS") as refused:
        Stack(settings, say=lambda _: None).up()
    assert "32771" in str(refused.value)
    assert not (tmp_path / "run" / "pids").exists()


def test_a_run_directory_keeps_its_topology_for_later_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `saga up --topology cluster` noted is what `saga ps` or `saga demo` load without
    being told again; SAGA_TOPOLOGY, when set, still wins."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.delenv("SAGA_TOPOLOGY", raising=False)
    monkeypatch.setenv("SAGA_RUN_DIR", str(run_dir))
    assert load_settings().topology == "embedded"

    (run_dir / TOPOLOGY_FILE).write_text("cluster\n")
    settings = load_settings()
    assert settings.topology == "cluster"
    assert len(settings.kafka_brokers.split(",")) == 3

    monkeypatch.setenv("SAGA_TOPOLOGY", "embedded")
    assert load_settings().topology == "embedded"
