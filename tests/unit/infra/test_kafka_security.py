"""The secured embedded broker: files made for the run, and the ACL table."""

import stat
from pathlib import Path

from cryptography import x509

import orchestrator.worker
from contracts.topics import TOPICS, all_topics
from infra.config.kafka import SECRETS_FILE
from infra.engines.kafka_security import (
    KAFKA_ACCESS,
    KAFKA_USERS,
    ORCHESTRATOR_GROUPS,
    KafkaAcl,
    ensure_kafka_secrets,
    ensure_tls,
    kafka_acls,
    kafka_user_of,
)


def test_secrets_are_private_and_kept(tmp_path: Path) -> None:
    first = ensure_kafka_secrets(tmp_path)
    assert set(first) == set(KAFKA_USERS)
    assert len(set(first.values())) == len(first)
    assert stat.S_IMODE((tmp_path / SECRETS_FILE).stat().st_mode) == 0o600
    assert ensure_kafka_secrets(tmp_path) == first


def test_tls_certificate_for_loopback(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    assert stat.S_IMODE(files.broker.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in files.broker.read_bytes()
    cert = x509.load_pem_x509_certificate(
        files.broker.read_bytes().split(b"-----END PRIVATE KEY-----")[1].strip()
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ensure_tls(tmp_path) == files


def test_each_service_writes_only_its_own_domain() -> None:
    acls = kafka_acls()
    writes = {(acl.user, acl.resource_name) for acl in acls if acl.operation == "Write"}
    for domain in ("payment", "inventory", "shipping"):
        assert {topic for user, topic in writes if user == domain} == {f"{domain}.events"}
    assert {topic for user, topic in writes if user == "api"} == {"order.events"}
    orchestrator = {topic for user, topic in writes if user == "orchestrator"}
    assert orchestrator == {"order.events", *(f"{spec.name}.dlq" for spec in TOPICS)}
    assert KafkaAcl("orchestrator", "DescribeConfigs", "Topic", all_topics()[-1].name) in acls
    assert "admin" not in KAFKA_ACCESS  # the super user needs no ACL


def test_groups_are_the_workers() -> None:
    worker = Path(orchestrator.worker.__file__).read_text()
    for group in ORCHESTRATOR_GROUPS:  # the groups its consumers join: the ACLs name them
        assert f'"{group}"' in worker
    assert kafka_user_of("payment-2") == "payment"
    assert kafka_user_of("api") == "api"
