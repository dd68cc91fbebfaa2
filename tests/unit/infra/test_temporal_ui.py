"""The pure parts of the cluster topology's Web UI: its build (with a stand-in Go command), its
configuration and command line, and its place in the stack (the UI itself runs in
``tests/system/infra/test_temporal_ui.py``)."""

from pathlib import Path

import pytest
import yaml

from infra.config.settings import Settings
from infra.engines.processes import MissingToolError
from infra.engines.stack import Stack
from infra.engines.temporal_build import (
    TEMPORAL_SERVER,
    TEMPORAL_UI,
    GoModule,
    TemporalUiBuild,
    ensure_temporal_ui,
)
from infra.engines.temporal_full import ensure_frontend_tls
from infra.engines.temporal_ui import TemporalUiServer


def _go(tmp_path: Path, script: str) -> Path:
    """A stand-in for the Go command: a shell script."""
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(0o755)
    return go


def _built(module: GoModule, root: Path) -> None:
    """Stand-in executables where a build of ``module`` puts them."""
    for binary in module.binaries(root):
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)


def _ui(tmp_path: Path, **fields: object) -> TemporalUiServer:
    return TemporalUiServer(
        build=TemporalUiBuild(tmp_path / "cache" / "2.54.1"),
        run_dir=tmp_path / "run",
        port=28233,
        temporal_address="127.0.0.1:27233",
        **fields,  # type: ignore[arg-type]
    )


# --- the build -----------------------------------------------------------------------------------


def test_the_ui_is_built_by_the_same_go_install_as_the_server(tmp_path: Path) -> None:
    """`go install -v` of the ui-server module's command at the version asked, its binary
    moved into the cache's version folder, the progress naming the Web UI."""
    go = _go(
        tmp_path,
        'echo "$GOTOOLCHAIN $*" > "$GOBIN/../args"\n'
        "echo github.com/temporalio/ui-server/v2/server\n"
        'printf "#!/bin/sh\\n" > "$GOBIN/server"; chmod +x "$GOBIN/server"\n',
    )
    said: list[str] = []
    build = ensure_temporal_ui(tmp_path / "cache", "2.54.1", go=str(go), progress=said.append)
    assert build.root == tmp_path / "cache" / "2.54.1"
    assert build.is_complete()
    assert build.server == build.root / "bin" / "server"
    assert (build.root / "args").read_text().split() == [
        "go1.27.3",
        "install",
        "-v",
        "-ldflags=-s",
        "-w",
        "github.com/temporalio/ui-server/v2/cmd/server@v2.54.1",
    ]
    assert said[0].startswith("Temporal's Web UI 2.54.1: building it")
    assert "(1 packages compiled)" in said[-1]


def test_a_failed_ui_build_names_the_ui_and_its_log(tmp_path: Path) -> None:
    go = _go(tmp_path, 'echo "go: go.temporal.io/api@v1.64.0: not found"\nexit 1\n')
    with pytest.raises(MissingToolError) as failed:
        ensure_temporal_ui(tmp_path / "cache", "2.58.1", go=str(go), progress=lambda _: None)
    message = str(failed.value)
    assert message.startswith("building Temporal's Web UI 2.58.1 failed")
    assert str(tmp_path / "cache" / "build-2.58.1-failed.log") in message
    assert "\n" not in message
    assert not TemporalUiBuild(tmp_path / "cache" / "2.58.1").is_complete()


def test_each_module_names_its_binaries(tmp_path: Path) -> None:
    assert [path.name for path in TEMPORAL_SERVER.binaries(tmp_path)] == ["server", "sql"]
    assert TEMPORAL_UI.binaries(tmp_path) == [tmp_path / "bin" / "server"]


# --- the configuration ---------------------------------------------------------------------------


def test_the_ui_listens_on_loopback_in_front_of_the_frontend(tmp_path: Path) -> None:
    config = _ui(tmp_path).config()
    assert config["temporalGrpcAddress"] == "127.0.0.1:27233"
    assert (config["host"], config["port"]) == ("127.0.0.1", 28233)
    assert config["enableUi"] is True
    assert config["defaultNamespace"] == "default"
    # As the CLI's dev server has it: plain HTTP on loopback, no news fetched from outside.
    assert config["cors"] == {"cookieInsecure": True}
    assert config["disableNewsFetch"] is True
    assert "codec" not in config
    assert "tls" not in config


def test_encrypted_payloads_are_decoded_through_the_apis_codec(tmp_path: Path) -> None:
    config = _ui(tmp_path, codec_endpoint="http://127.0.0.1:8000/codec").config()
    assert config["codec"] == {"endpoint": "http://127.0.0.1:8000/codec"}


def test_mtls_presents_the_runs_client_certificate_and_checks_the_frontends(
    tmp_path: Path,
) -> None:
    """With mTLS on the frontend the UI trusts the run's CA, presents the run's client
    certificate, and checks the frontend's name (the UI server skips that check otherwise)."""
    tls = ensure_frontend_tls(tmp_path / "tls")
    config = _ui(tmp_path, tls=tls).config()
    assert config["tls"] == {
        "caFile": str(tls.ca),
        "certFile": str(tls.client_cert),
        "keyFile": str(tls.client_key),
        "serverName": "localhost",
        "enableHostVerification": True,
    }


def test_the_written_configuration_is_what_the_command_names(tmp_path: Path) -> None:
    """The UI server reads ``<root>/<config>/<env>.yaml``: the command line points there."""
    ui = _ui(tmp_path, namespace="sagas")
    path = ui.write_config()
    assert yaml.safe_load(path.read_text()) == ui.config()
    command = ui.command()
    assert command[0] == str(ui.build.server)
    assert command[-1] == "start"
    root = Path(command[command.index("--root") + 1])
    folder = command[command.index("--config") + 1]
    env = command[command.index("--env") + 1]
    assert root / folder / f"{env}.yaml" == path
    assert str(path).startswith(str(ui.run_dir))
    assert ui.url == "http://127.0.0.1:28233"
    assert ui.log_path == ui.run_dir / "logs" / "temporal-ui.log"


# --- in the stack --------------------------------------------------------------------------------


def _cluster_settings(tmp_path: Path, **settings: object) -> Settings:
    """Cluster settings whose Temporal server and UI builds are stand-ins already built."""
    server_cache, ui_cache = tmp_path / "server-cache", tmp_path / "ui-cache"
    _built(TEMPORAL_SERVER, server_cache / "1.32.2")
    _built(TEMPORAL_UI, ui_cache / "2.54.1")
    return Settings(
        run_dir=tmp_path / "run",
        topology="cluster",
        temporal_server_cache_dir=server_cache,
        temporal_ui_cache_dir=ui_cache,
        temporal_ui_port=28233,
        **settings,  # type: ignore[arg-type]
    )


def test_the_cluster_runs_its_web_ui_after_temporal(tmp_path: Path) -> None:
    """`saga ps` of the cluster lists `temporal-ui` after `temporal`, at the Web UI's address
    (where the saga links point), with no metrics of its own; the embedded topology has none."""
    stack = Stack(_cluster_settings(tmp_path), say=lambda _: None)
    engines = stack.engines()
    assert engines.index("temporal-ui") == engines.index("temporal") + 1
    rows = {status.name: status for status in stack.status()}
    ui = rows["temporal-ui"]
    assert (ui.state, ui.address, ui.metrics) == ("stopped", "http://127.0.0.1:28233", ())
    assert ui.version == "Temporal UI 2.54.1"
    command = stack.command("temporal-ui")
    assert command[0] == str(tmp_path / "ui-cache" / "2.54.1" / "bin" / "server")
    assert str(tmp_path / "run" / "temporal-ui") in command

    embedded = Stack(Settings(run_dir=tmp_path / "embedded"), say=lambda _: None)
    assert "temporal-ui" not in embedded.engines()
    assert "temporal-ui" not in [status.name for status in embedded.status()]
