"""The Temporal connection settings: plain by default, TLS as soon as a TLS file or an API key
is given, and every file that cannot be used refused with one line naming its setting."""

from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.config.settings import ConfigurationError, Settings
from infra.config.temporal import temporal_connection
from infra.engines.certificates import Leaf, make_certificates


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    """A CA, a client certificate and its key, and another client's key, as PEM files."""
    ca, (client, other) = make_certificates("test CA", [Leaf("client"), Leaf("other")])
    files = {
        "ca": ca,
        "cert": client.cert_pem,
        "key": client.key_pem,
        "other_key": other.key_pem,
    }
    for name, data in files.items():
        (tmp_path / f"{name}.pem").write_bytes(data)
    return {name: tmp_path / f"{name}.pem" for name in files}


def _settings(**values: object) -> Settings:
    return Settings(temporal_address="temporal.example:7233", **values)  # type: ignore[arg-type]


def test_no_tls_setting_connects_in_plain_tcp() -> None:
    connection = temporal_connection(_settings())
    assert connection.tls is None
    assert connection.api_key is None
    assert str(connection) == "temporal.example:7233"


def test_a_ca_file_turns_tls_on_and_is_the_only_root(pems: dict[str, Path]) -> None:
    connection = temporal_connection(_settings(temporal_tls_ca_file=pems["ca"]))
    assert connection.tls is not None
    assert connection.tls.server_root_ca_cert == pems["ca"].read_bytes()
    assert connection.tls.client_cert is None


def test_a_certificate_and_its_key_make_mtls(pems: dict[str, Path]) -> None:
    connection = temporal_connection(
        _settings(
            temporal_tls_ca_file=pems["ca"],
            temporal_tls_cert_file=pems["cert"],
            temporal_tls_key_file=pems["key"],
            temporal_tls_server_name="frontend.internal",
        )
    )
    assert connection.tls is not None
    assert connection.tls.client_cert == pems["cert"].read_bytes()
    assert connection.tls.client_private_key == pems["key"].read_bytes()
    assert connection.tls.domain == "frontend.internal"


def test_tls_true_alone_trusts_the_systems_cas() -> None:
    connection = temporal_connection(_settings(temporal_tls=True))
    assert connection.tls is not None
    assert connection.tls.server_root_ca_cert is None


def test_an_api_key_implies_tls_and_is_never_shown() -> None:
    """Temporal Cloud's way: the key over TLS with the system's CAs."""
    connection = temporal_connection(_settings(temporal_api_key=SecretStr("key-123")))
    assert connection.tls is not None
    assert connection.api_key == "key-123"
    assert "key-123" not in repr(connection)
    assert "key-123" not in str(connection)


def test_the_api_key_is_masked_by_saga_config() -> None:
    dumped = _settings(temporal_api_key=SecretStr("key-123")).model_dump(mode="json")
    assert dumped["temporal_api_key"] != "key-123"


def test_a_certificate_without_its_key_is_refused(pems: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="set SAGA_TEMPORAL_TLS_KEY_FILE too"):
        temporal_connection(_settings(temporal_tls_cert_file=pems["cert"]))
    with pytest.raises(ConfigurationError, match="set SAGA_TEMPORAL_TLS_CERT_FILE too"):
        temporal_connection(_settings(temporal_tls_key_file=pems["key"]))


def test_an_unreadable_file_is_named_with_its_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigurationError) as refused:
        temporal_connection(_settings(temporal_tls_ca_file=missing))
    message = str(refused.value)
    assert message.startswith(f"SAGA_TEMPORAL_TLS_CA_FILE={missing}: cannot read it")
    assert "\n" not in message


def test_a_file_without_a_certificate_is_refused(pems: dict[str, Path]) -> None:
    """A key given where the CA belongs is caught before any connection."""
    with pytest.raises(ConfigurationError, match=r"SAGA_TEMPORAL_TLS_CA_FILE=.*no PEM certificate"):
        temporal_connection(_settings(temporal_tls_ca_file=pems["key"]))


def test_a_file_without_a_key_is_refused(pems: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match=r"SAGA_TEMPORAL_TLS_KEY_FILE=.*no unencrypted"):
        temporal_connection(
            _settings(temporal_tls_cert_file=pems["cert"], temporal_tls_key_file=pems["ca"])
        )


def test_a_key_of_another_certificate_is_refused(pems: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="is not the key of SAGA_TEMPORAL_TLS_CERT_FILE"):
        temporal_connection(
            _settings(temporal_tls_cert_file=pems["cert"], temporal_tls_key_file=pems["other_key"])
        )


def test_tls_turned_off_with_tls_files_is_a_contradiction(pems: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="SAGA_TEMPORAL_TLS=false but"):
        temporal_connection(_settings(temporal_tls=False, temporal_tls_ca_file=pems["ca"]))
