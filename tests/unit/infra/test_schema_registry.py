"""The schema registry's process: which Java runs it, its command line and its configuration."""

from pathlib import Path
from typing import Any

import pytest

from infra.config.settings import Settings
from infra.engines.schema_registry import (
    JAVA_FOR_REGISTRY,
    RegistryDatabase,
    RegistryUser,
    SchemaRegistryServer,
    find_java,
    java_version,
)
from infra.engines.stack import Stack


def _server(tmp_path: Path, **fields: Any) -> SchemaRegistryServer:
    return SchemaRegistryServer(
        app=tmp_path / "app", run_dir=tmp_path / "run", port=28081, java="java", **fields
    )


def test_the_java_found_is_new_enough_for_apicurio() -> None:
    java = find_java()
    version = java_version(java)
    assert version is not None and version >= JAVA_FOR_REGISTRY, (java, version)


def _jdk(root: Path, version: str) -> Path:
    """A JDK folder whose ``release`` file names ``version``, with a ``bin/java`` in it."""
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    (root / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return java


def test_a_java_too_old_is_refused_with_what_to_do(tmp_path: Path) -> None:
    java = _jdk(tmp_path / "jdk-17", "17.0.9")
    assert java_version(java) == 17
    with pytest.raises(
        RuntimeError, match=r"SAGA_SCHEMA_REGISTRY_JAVA=.* is Java 17.*needs Java 21"
    ):
        find_java(str(java))
    assert find_java(str(_jdk(tmp_path / "jdk-21", "21.0.5"))).endswith("jdk-21/bin/java")


def test_a_java_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="that cannot run"):
        find_java(str(tmp_path / "no-java"))


def test_the_command_binds_loopback_and_moves_the_management_port(tmp_path: Path) -> None:
    command = _server(tmp_path).command()
    assert "-Dquarkus.http.host=127.0.0.1" in command
    assert "-Dquarkus.http.port=28081" in command
    assert "-Dquarkus.management.host=127.0.0.1" in command
    assert "-Dquarkus.management.port=28082" in command  # not 9000, the API's SDK metrics
    assert command[-2:] == ["-jar", str(tmp_path / "app" / "quarkus-run.jar")]


def test_embedded_storage_is_an_h2_file_in_the_run_directory(tmp_path: Path) -> None:
    server = _server(tmp_path)
    assert "-Dapicurio.storage.sql.kind=h2" in server.command()
    url = server.properties()["apicurio.datasource.url"]
    assert url == f"jdbc:h2:file:{tmp_path / 'run' / 'registry' / 'data' / 'registry'}"
    assert "mem:" not in url  # the default in-memory H2 forgets every schema on restart


def test_postgres_storage_keeps_its_password_off_the_command_line(tmp_path: Path) -> None:
    database = RegistryDatabase("127.0.0.1", 25432, "registry", "registry", "s3cret-pw")
    server = _server(tmp_path, database=database)
    assert "-Dapicurio.storage.sql.kind=postgresql" in server.command()
    assert not any("s3cret-pw" in part for part in server.command())
    props = server.properties()
    assert props["apicurio.datasource.url"] == "jdbc:postgresql://127.0.0.1:25432/registry"
    assert props["apicurio.datasource.password"] == "s3cret-pw"
    path = server.write_config()
    assert path.stat().st_mode & 0o777 == 0o600
    assert "apicurio.datasource.password=s3cret-pw" in path.read_text()


def test_users_turn_basic_authentication_on(tmp_path: Path) -> None:
    open_server = _server(tmp_path)
    assert "-Dquarkus.http.auth.basic=false" in open_server.command()
    secured = _server(tmp_path, users={"reader": RegistryUser("pw-1", "sr-readonly")})
    assert "-Dquarkus.http.auth.basic=true" in secured.command()
    props = secured.properties()
    assert props["quarkus.security.users.embedded.users.reader"] == "pw-1"
    assert props["quarkus.security.users.embedded.roles.reader"] == "sr-readonly"
    assert not any("pw-1" in part for part in secured.command())


def test_the_stack_lists_the_registry_with_its_management_metrics(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path, schema_registry_url="http://127.0.0.1:28081")
    stack = Stack(settings, say=lambda _: None)
    assert "registry" in stack.engines()
    assert stack.metrics_urls("registry") == ("http://127.0.0.1:28082/metrics",)
    external = Stack(settings.model_copy(update={"schema_registry_embedded": False}))
    assert "registry" not in external.engines()
    assert "registry" in external.components()  # `saga ps` shows it, external or unreachable
