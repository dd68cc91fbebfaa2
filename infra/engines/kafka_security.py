"""The secured embedded broker: SCRAM users, a TLS certificate made for the run, and ACLs.

``SAGA_KAFKA_SECURED=true saga up`` starts the broker with one SASL_SSL listener
(SCRAM-SHA-512 over TLS) for every client, a user per process kind (:data:`KAFKA_USERS`), and
:data:`KAFKA_ACCESS`: each service writes only its own domain's topic and reads only what it
consumes. Everything here is made once per run directory and kept there:

- ``<run_dir>/kafka-secrets.json`` (mode 0600): the users' passwords;
- ``<run_dir>/kafka/tls/ca.pem``: the certificate authority clients trust
  (``SAGA_KAFKA_SSL_CAFILE``), and ``broker.pem`` (mode 0600): the broker's key and
  certificate for 127.0.0.1 and localhost, signed by it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts.topics import TOPICS, all_topics, dlq_topic
from infra.config.kafka import ADMIN_USER, SECRETS_FILE, read_kafka_secrets, tls_dir
from infra.engines.certificates import Leaf, expiring, make_certificates
from infra.engines.private_files import ensure_passwords, write_private

__all__ = [
    "KAFKA_ACCESS",
    "KAFKA_USERS",
    "ORCHESTRATOR_GROUPS",
    "KafkaAcl",
    "ServiceAccess",
    "TlsFiles",
    "ensure_kafka_secrets",
    "ensure_tls",
    "kafka_acls",
    "kafka_user_of",
]


ORCHESTRATOR_GROUPS: tuple[str, ...] = (
    "orchestrator-projector",
    "orchestrator-dispatch-bridge",
    "audit",
    "notifications",
)
"""The consumer groups of the orchestrator's worker (``orchestrator/worker.py``)."""

_DOMAIN_TOPICS = tuple(spec.name for spec in TOPICS)


@dataclass(frozen=True)
class ServiceAccess:
    """What one process kind may do on Kafka; anything else is refused."""

    writes: tuple[str, ...] = ()
    """Topics it publishes to (its outbox relay, its dead letters)."""
    reads: tuple[str, ...] = ()
    """Topics it reads (its consumers; a relay reads its own topic's end after a restart)."""
    groups: tuple[str, ...] = ()
    """Consumer groups it joins and commits in."""
    describes_configs: tuple[str, ...] = ()
    """Topics whose configuration it reads (the orchestrator's cluster metrics)."""


def _domain_service(domain: str) -> ServiceAccess:
    # The outbox relay reads the end of its own topic to find rows already published.
    return ServiceAccess(writes=(f"{domain}.events",), reads=(f"{domain}.events",))


KAFKA_ACCESS: Mapping[str, ServiceAccess] = {
    "payment": _domain_service("payment"),
    "inventory": _domain_service("inventory"),
    "shipping": _domain_service("shipping"),
    "orchestrator": ServiceAccess(
        # order.* events of the sagas, and the dead letters of every topic its consumers read
        writes=("order.events", *(dlq_topic(topic) for topic in _DOMAIN_TOPICS)),
        reads=_DOMAIN_TOPICS,  # projector and audit: all; dispatch bridge, notifications: some
        # and the incident webhook's group, which runs only with SAGA_INCIDENT_WEBHOOK_URL set
        groups=(*ORCHESTRATOR_GROUPS, "incident-webhook"),
        describes_configs=tuple(spec.name for spec in all_topics()),
    ),
    # The API publishes order.repaired through its outbox; it consumes nothing.
    "api": ServiceAccess(writes=("order.events",)),
}
"""Who may do what: the table the ACLs are made from (docs/security.md shows it)."""

KAFKA_USERS: tuple[str, ...] = (ADMIN_USER, *KAFKA_ACCESS)
"""One SCRAM user per process kind, and the super user."""


@dataclass(frozen=True)
class KafkaAcl:
    """One ALLOW rule: ``User:<user>`` may do ``operation`` on a resource, from any host."""

    user: str
    operation: str  # Read, Write, Describe, DescribeConfigs, IdempotentWrite
    resource_type: str  # Topic, Group, Cluster
    resource_name: str


def kafka_acls(access: Mapping[str, ServiceAccess] = KAFKA_ACCESS) -> list[KafkaAcl]:
    """The ACLs that grant ``access`` and nothing more."""
    acls: list[KafkaAcl] = []
    for user, grants in access.items():
        for topic in grants.writes:
            acls += [KafkaAcl(user, op, "Topic", topic) for op in ("Write", "Describe")]
        if grants.writes:
            acls.append(KafkaAcl(user, "IdempotentWrite", "Cluster", "kafka-cluster"))
        for topic in grants.reads:
            acls += [KafkaAcl(user, op, "Topic", topic) for op in ("Read", "Describe")]
        acls += [KafkaAcl(user, "Read", "Group", group) for group in grants.groups]
        acls += [KafkaAcl(user, "DescribeConfigs", "Topic", t) for t in grants.describes_configs]
    return list(dict.fromkeys(acls))


def kafka_user_of(process: str) -> str:
    """The SCRAM user of a process of the stack (``payment-2`` → ``payment``)."""
    base, _, copy = process.rpartition("-")
    user = base if base and copy.isdigit() else process
    if user not in KAFKA_ACCESS:
        raise KeyError(f"no Kafka user for process {process!r}")
    return user


def ensure_kafka_secrets(run_dir: Path, users: Iterable[str] = KAFKA_USERS) -> dict[str, str]:
    """The users' passwords, made (URL-safe, 32 random bytes each) for those that have none."""
    return ensure_passwords(
        run_dir / SECRETS_FILE, read_kafka_secrets(run_dir), users, keep_others=False
    )


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of the secured broker."""

    ca: Path
    """The certificate authority's certificate: what every client trusts."""
    broker: Path
    """The broker's private key (PKCS#8, unencrypted, mode 0600) and its certificate."""


def ensure_tls(run_dir: Path, hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """The run's CA and broker certificate, made on first use (valid a year, for ``hosts``)."""
    folder = tls_dir(run_dir)
    files = TlsFiles(ca=folder / "ca.pem", broker=folder / "broker.pem")
    if files.ca.exists() and files.broker.exists() and not expiring(files.ca):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    ca, (broker,) = make_certificates(
        "saga-orchestrator run CA", [Leaf("saga-orchestrator kafka", tuple(hosts))]
    )
    write_private(files.broker, (broker.key_pem + broker.cert_pem).decode())
    files.ca.write_bytes(ca)
    return files
