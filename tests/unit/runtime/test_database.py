"""One database interface on both engines: statements, transactions, migrations, readers."""

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.config.settings import Settings
from runtime import (
    Database,
    DatabaseError,
    DatabaseUnavailableError,
    IntegrityError,
    Where,
    describe,
    open_database,
    open_reader,
    open_store,
)
from runtime._database import RUNTIME_MIGRATIONS, migrate
from workers.payment.ledger import PaymentLedger


def _notes(db: Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")


def test_a_transaction_commits_together_or_not_at_all(database_at: Callable[[str], Where]) -> None:
    db = open_database(database_at("service"))
    _notes(db)
    with db.transaction():
        db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "kept"))
        db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (2, "kept too"))
    with pytest.raises(IntegrityError), db.transaction():
        db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (3, "rolled back"))
        db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "a second id 1"))

    rows = db.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
    assert [(row["id"], row[1]) for row in rows] == [(1, "kept"), (2, "kept too")]
    db.close()


def test_a_literal_percent_sign_and_placeholders_mean_the_same_on_both(
    database_at: Callable[[str], Where],
) -> None:
    db = open_database(database_at("service"))
    _notes(db)
    db.executemany("INSERT INTO notes (id, body) VALUES (?, ?)", [(1, "50% off"), (2, "full")])
    found = db.execute("SELECT id FROM notes WHERE body LIKE '%off' AND id > ?", (0,)).fetchall()
    assert [row[0] for row in found] == [1]
    db.close()


def test_migrations_are_applied_once_and_recorded(database_at: Callable[[str], Where]) -> None:
    where = database_at("payment")
    first = migrate(where, [RUNTIME_MIGRATIONS, PaymentLedger.MIGRATIONS])
    again = migrate(where, [RUNTIME_MIGRATIONS, PaymentLedger.MIGRATIONS])

    assert first == [
        "runtime-0001-outbox-inbox-lease",
        "payment-0001-ledger",
        "payment-0002-return-refunds",
    ]
    assert again == []
    db = open_database(where, migrations=[PaymentLedger.MIGRATIONS])
    for table in ("outbox", "inbox", "relay_lease", "payments", "ledger_entries"):
        assert db.has_table(table), table
    assert not db.has_table("stock")
    db.close()


def test_threads_of_one_process_opening_a_new_database_at_once_both_get_it(
    database_at: Callable[[str], Where],
) -> None:
    """Two threads opening one new database at the same moment both get it. On SQLite,
    without the process-wide turn yoyo's shared-cache connections failed the second ("database
    table is locked", 8 rounds in 40); and a journal switched to WAL only after migrating
    deadlocked with the other thread's migration ("database is locked", 12 rounds in 150 on
    busy cores)."""
    failures: list[str] = []
    for round_ in range(20):
        where = database_at(f"race{round_}")
        barrier = threading.Barrier(2)

        def opens(where: Where = where, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(timeout=10)
            try:
                open_database(where, migrations=[PaymentLedger.MIGRATIONS]).close()
            except DatabaseError as exc:  # what a failed migration raises
                failures.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - yoyo's own error, named in the failure
                failures.append(repr(exc))

        threads = [threading.Thread(target=opens) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []


def test_a_reader_cannot_write(database_at: Callable[[str], Where]) -> None:
    open_database(database_at("service")).close()
    reader = open_reader(database_at("service"))
    with pytest.raises(DatabaseError, match=r"readonly|read-only"):
        reader.execute("DELETE FROM outbox")
    reader.close()


def test_a_url_is_described_without_its_password() -> None:
    url = "postgresql://payment:s3cret@127.0.0.1:5432/payment"
    assert describe(url) == "postgresql://payment@127.0.0.1:5432/payment"
    assert describe(Path("/run/payment.db")) == "/run/payment.db"


def test_an_unreachable_database_names_the_setting_to_check(tmp_path: Path) -> None:
    settings = Settings(
        run_dir=tmp_path,
        payment_database_url="postgresql://payment:pw@127.0.0.1:1/payment",
    )
    with pytest.raises(DatabaseUnavailableError) as raised:
        open_store(settings, "payment", tmp_path / "payment.db")
    message = str(raised.value)
    assert "\n" not in message
    assert "SAGA_PAYMENT_DATABASE_URL" in message
    assert "pw@" not in message


@pytest.mark.postgres
def test_a_wrong_password_names_the_setting_to_check(
    postgres_database: str, tmp_path: Path
) -> None:
    wrong = postgres_database.replace("://stores:", "://stores:wrong", 1)
    assert wrong != postgres_database
    settings = Settings(run_dir=tmp_path, payment_database_url=wrong)
    with pytest.raises(DatabaseUnavailableError, match="password authentication failed") as raised:
        open_store(settings, "payment", tmp_path / "payment.db")
    assert "SAGA_PAYMENT_DATABASE_URL" in str(raised.value)


@pytest.mark.postgres
def test_a_role_without_rights_names_the_setting_to_check(
    postgres_database: str, tmp_path: Path
) -> None:
    """A role pointed at a database it may not connect to (each role reaches its own only)."""
    elsewhere = postgres_database.rsplit("/", 1)[0] + "/postgres"
    settings = Settings(run_dir=tmp_path, shipping_database_url=elsewhere)
    with pytest.raises(DatabaseUnavailableError, match="permission denied") as raised:
        open_store(settings, "shipping", tmp_path / "shipping.db")
    message = str(raised.value)
    assert "SAGA_SHIPPING_DATABASE_URL" in message and "\n" not in message


@pytest.mark.postgres
def test_a_postgresql_connection_its_server_dropped_is_opened_again(
    postgres_database: str,
) -> None:
    """A server restart drops every connection: the statement that meets the dropped one
    fails, the next one runs on a new connection with the same options (schema, read-only)."""
    db = open_database(postgres_database, schema="reconnects")
    _notes(db)
    db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "before"))
    reader = open_reader(postgres_database, schema="reconnects")
    other = open_database(postgres_database)
    for victim in (db, reader):
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        other.execute("SELECT pg_terminate_backend(?)", (pid,))

    with pytest.raises(DatabaseError):
        db.execute("SELECT 1")
    with db.transaction():
        db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (2, "after"))
    with pytest.raises(DatabaseError):
        reader.execute("SELECT 1")
    assert [row[0] for row in reader.execute("SELECT body FROM notes ORDER BY id")] == [
        "before",
        "after",
    ]
    with pytest.raises(DatabaseError):  # still a reader
        reader.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (3, "refused"))
    for database in (db, reader, other):
        database.close()
