"""What `saga up` refuses before it starts anything."""

from pathlib import Path

import pytest

from infra.config.settings import Settings
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
