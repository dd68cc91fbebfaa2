"""The pure parts of Temporal's full server: its build (with a stand-in Go command), its
configuration, its certificates and its command line."""

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from infra.engines.processes import MissingToolError
from infra.engines.temporal_build import TemporalServerBuild, ensure_temporal_server
from infra.engines.temporal_full import (
    FrontendTls,
    TemporalDatabase,
    TemporalFullServer,
    TemporalPorts,
    ensure_frontend_tls,
)

PORTS = TemporalPorts(*range(21001, 21011))


def _server(tmp_path: Path, tls: FrontendTls | None = None) -> TemporalFullServer:
    return TemporalFullServer(
        build=TemporalServerBuild(tmp_path / "cache" / "1.32.2"),
        run_dir=tmp_path / "run",
        ports=PORTS,
        database=TemporalDatabase("127.0.0.1", 25432, "temporal", "s3cret/+"),
        tls=tls,
    )


def _go(tmp_path: Path, script: str) -> Path:
    """A stand-in for the Go command: a shell script."""
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(0o755)
    return go


# --- the build ---------------------------------------------------------------------------------


def test_a_missing_go_command_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError) as missing:
        ensure_temporal_server(tmp_path, go=str(tmp_path / "no-go"))
    message = str(missing.value)
    assert "not found" in message
    assert "SAGA_GO" in message
    assert "\n" not in message


def test_the_build_installs_both_tools_and_shows_progress(tmp_path: Path) -> None:
    """`go install -v` with the module's two commands, their binaries moved into the cache's
    version folder; the progress names the packages compiled."""
    go = _go(
        tmp_path,
        'echo "$GOTOOLCHAIN $*" > "$GOBIN/../args"\n'
        'echo "go: downloading go.temporal.io/server v1.32.2"\n'
        "echo go.temporal.io/server/common\n"
        "echo go.temporal.io/server/cmd/server\n"
        'for tool in server sql; do printf "#!/bin/sh\\n" > "$GOBIN/$tool"; '
        'chmod +x "$GOBIN/$tool"; done\n',
    )
    said: list[str] = []
    build = ensure_temporal_server(tmp_path / "cache", go=str(go), progress=said.append)
    assert build.root == tmp_path / "cache" / "1.32.2"
    assert build.is_complete()
    assert (build.root / "args").read_text().split() == [
        "go1.27.3",
        "install",
        "-v",
        "-ldflags=-s",
        "-w",
        "go.temporal.io/server/cmd/server@v1.32.2",
        "go.temporal.io/server/cmd/tools/sql@v1.32.2",
    ]
    assert "go: downloading" in (build.root / "build.log").read_text()
    assert said[0].startswith("Temporal's server 1.32.2: building it")
    assert "(2 packages compiled)" in said[-1]


def test_a_complete_build_is_not_built_again(tmp_path: Path) -> None:
    go = _go(tmp_path, "exit 1\n")
    bin_dir = tmp_path / "cache" / "1.32.2" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("server", "sql"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    said: list[str] = []
    assert ensure_temporal_server(tmp_path / "cache", go=str(go), progress=said.append)
    assert said == []


def test_a_failed_build_keeps_its_log_and_leaves_nothing_half_built(tmp_path: Path) -> None:
    go = _go(tmp_path, 'echo "go: go.temporal.io/server@v1.32.2: proxy unreachable"\nexit 1\n')
    with pytest.raises(MissingToolError) as failed:
        ensure_temporal_server(tmp_path / "cache", go=str(go), progress=lambda _: None)
    message = str(failed.value)
    assert "go install exit 1: go: go.temporal.io/server@v1.32.2: proxy unreachable" in message
    log = tmp_path / "cache" / "build-1.32.2-failed.log"
    assert str(log) in message
    assert "proxy unreachable" in log.read_text()
    assert not (tmp_path / "cache" / "1.32.2").exists()
    assert not TemporalServerBuild(tmp_path / "cache" / "1.32.2").is_complete()


# --- the configuration ---------------------------------------------------------------------------


def _listeners(config: dict[str, Any]) -> list[tuple[str, int]]:
    found = []
    for service in config["services"].values():
        rpc = service["rpc"]
        for key in ("grpcPort", "membershipPort", "httpPort"):
            if key in rpc:
                found.append((rpc["bindOnIP"], rpc[key]))
    host, port = config["global"]["metrics"]["prometheus"]["listenAddress"].rsplit(":", 1)
    found.append((host, int(port)))
    return found


def test_every_listener_is_on_loopback_at_a_reserved_port(tmp_path: Path) -> None:
    """Ten listeners, the ten reserved ports, all on 127.0.0.1; Prometheus off the API's 8000."""
    config = _server(tmp_path).config()
    listeners = _listeners(config)
    assert {host for host, _ in listeners} == {"127.0.0.1"}
    assert sorted(port for _, port in listeners) == list(range(21001, 21011))
    assert config["global"]["metrics"]["prometheus"]["listenAddress"] == "127.0.0.1:21010"
    assert config["services"]["frontend"]["rpc"]["grpcPort"] == 21001
    assert "pprof" not in config["global"]


def test_both_stores_use_the_runs_database_and_role(tmp_path: Path) -> None:
    stores = _server(tmp_path).config()["persistence"]["datastores"]
    assert {store["sql"]["databaseName"] for store in stores.values()} == {
        "temporal",
        "temporal_visibility",
    }
    for store in stores.values():
        assert store["sql"]["pluginName"] == "postgres12"
        assert store["sql"]["connectAddr"] == "127.0.0.1:25432"
        assert store["sql"]["user"] == "temporal"
        assert store["sql"]["password"] == "s3cret/+"


def test_archival_is_off_and_nothing_is_written_outside_the_run_dir(tmp_path: Path) -> None:
    server = _server(tmp_path)
    config = server.config()
    assert config["archival"]["history"]["state"] == "disabled"
    assert config["archival"]["visibility"]["state"] == "disabled"
    assert config["dynamicConfigClient"]["filepath"] == str(server.dynamic_config_path)
    assert str(server.dynamic_config_path).startswith(str(server.run_dir))


def test_the_written_configuration_is_private_and_reads_back(tmp_path: Path) -> None:
    server = _server(tmp_path)
    path = server.write_config()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == server.config()
    assert yaml.safe_load(server.dynamic_config_path.read_text()) == server.dynamic_config()


def test_the_command_line_names_the_configuration_and_no_password(tmp_path: Path) -> None:
    server = _server(tmp_path)
    assert server.command() == [
        str(server.build.server),
        "--config-file",
        str(server.config_path),
        "--allow-no-auth",
        "start",
    ]
    assert "s3cret" not in " ".join(server.command())


def test_without_tls_there_is_no_tls_section(tmp_path: Path) -> None:
    server = _server(tmp_path)
    assert "tls" not in server.config()["global"]
    assert server.connection().tls is None
    assert server.client_settings() == {
        "SAGA_TEMPORAL_ADDRESS": "127.0.0.1:21001",
        "SAGA_TEMPORAL_NAMESPACE": "default",
    }


def test_mtls_requires_client_certificates_of_the_runs_ca(tmp_path: Path) -> None:
    """The frontend asks every client for a certificate of the run's CA, and the server's own
    system worker presents the run's client certificate."""
    tls = ensure_frontend_tls(tmp_path / "tls")
    server = _server(tmp_path, tls)
    section = server.config()["global"]["tls"]
    frontend = section["frontend"]["server"]
    assert frontend["requireClientAuth"] is True
    assert frontend["clientCaFiles"] == [str(tls.ca)]
    assert (frontend["certFile"], frontend["keyFile"]) == (
        str(tls.server_cert),
        str(tls.server_key),
    )
    worker = section["systemWorker"]
    assert (worker["certFile"], worker["keyFile"]) == (str(tls.client_cert), str(tls.client_key))
    assert worker["client"]["rootCaFiles"] == [str(tls.ca)]
    assert server.client_settings()["SAGA_TEMPORAL_TLS_CERT_FILE"] == str(tls.client_cert)
    connection = server.connection()
    assert connection.tls is not None
    assert connection.tls.client_cert == tls.client_cert.read_bytes()


def test_the_runs_certificates_are_signed_by_its_ca_and_kept(tmp_path: Path) -> None:
    tls = ensure_frontend_tls(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for path in (tls.server_cert, tls.client_cert):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca)
    for key in (tls.server_key, tls.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ensure_frontend_tls(tmp_path / "tls") == tls
    assert tls.ca.read_bytes() == ensure_frontend_tls(tmp_path / "tls").ca.read_bytes()
