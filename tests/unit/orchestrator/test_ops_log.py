"""The operator log's store on both engines: entries read back newest first, filtered and
paged; updates and deletes refused by the table itself."""

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.api.models import BulkRepairItem, BulkSelection, OperatorOutcome, SagaType
from orchestrator.api.ops_log import OperatorLog, OperatorRecord
from runtime import Database, DatabaseError, Where, open_database, transaction


@pytest.fixture
def db(database_at: Callable[[str], Where]) -> Iterator[Database]:
    """The API's database, migrated as the API opens it."""
    database = open_database(database_at("api"), migrations=[OperatorLog.MIGRATIONS])
    yield database
    database.close()


def _repair(saga_id: str, outcome: OperatorOutcome = "accepted") -> OperatorRecord:
    return OperatorRecord(
        principal="ops-ann",
        action="retry_now",
        reason="the PSP is back",
        outcome=outcome,
        detail=f"charge_payment: retry now, asked by ops-ann ({outcome})",
        saga_type=SagaType.ORDER,
        saga_id=saga_id,
        order_id=saga_id,
        workflow_id=f"order-{saga_id}",
        step="charge_payment",
    )


def test_entries_come_back_newest_first_with_everything_recorded(db: Database) -> None:
    log = OperatorLog(db)
    before = time.time()
    selection = BulkSelection(
        action="retry_now",
        step="charge_payment",
        saga_type=SagaType.ORDER,
        older_than_seconds=600,
        limit=10,
        rate_per_second=2.0,
        dry_run=False,
    )
    item = BulkRepairItem(
        saga_type=SagaType.ORDER,
        saga_id="o-1",
        order_id="o-1",
        step="charge_payment",
        outcome="repaired",
        detail="charge_payment: retry now, asked by ops-ann",
    )
    with transaction(db):
        first = log.append(replace(_repair("o-1"), bulk_id="b-1"))
    second = log.append(
        OperatorRecord(
            principal="ops-ann",
            action="bulk_repair",
            reason="the PSP is back",
            outcome="accepted",
            detail="retry_now: 1 matched: 1 repaired",
            saga_type=SagaType.ORDER,
            step="charge_payment",
            bulk_id="b-1",
            selection=selection,
            items=[item],
        )
    )
    assert second > first

    page = log.page()

    assert [entry.seq for entry in page.entries] == [second, first]
    bulk, repaired = page.entries
    assert bulk.selection == selection
    assert bulk.items == [item]
    assert bulk.order_id is None
    assert repaired.bulk_id == bulk.bulk_id == "b-1"
    assert (repaired.principal, repaired.action, repaired.outcome) == (
        "ops-ann",
        "retry_now",
        "accepted",
    )
    assert (repaired.saga_type, repaired.saga_id, repaired.workflow_id) == (
        SagaType.ORDER,
        "o-1",
        "order-o-1",
    )
    assert before - 1 <= repaired.at.timestamp() <= time.time() + 1
    assert page.next_page_token is None


def test_filters_and_pages(db: Database) -> None:
    log = OperatorLog(db)
    seqs = [log.append(_repair(f"o-{n % 2}")) for n in range(5)]
    log.append(replace(_repair("ret-1"), saga_type=SagaType.RETURN, order_id="r-1"))

    mine = log.page(order_id="o-0")
    assert [entry.seq for entry in mine.entries] == [seqs[4], seqs[2], seqs[0]]
    assert {entry.saga_type for entry in log.page(saga_type=SagaType.RETURN).entries} == {
        SagaType.RETURN
    }
    assert log.page(since=datetime.now(UTC) + timedelta(minutes=1)).entries == []

    first = log.page(order_id="o-0", page_size=2)
    assert [entry.seq for entry in first.entries] == [seqs[4], seqs[2]]
    assert first.next_page_token == str(seqs[2])
    rest = log.page(order_id="o-0", page_size=2, before=int(first.next_page_token))
    assert [entry.seq for entry in rest.entries] == [seqs[0]]
    assert rest.next_page_token is None


def test_the_log_refuses_updates_and_deletes(db: Database) -> None:
    log = OperatorLog(db)
    seq = log.append(_repair("o-1", "refused"))

    with pytest.raises(DatabaseError, match="append-only"):
        db.execute("UPDATE operator_log SET outcome = 'accepted' WHERE seq = ?", (seq,))
    with pytest.raises(DatabaseError, match="append-only"):
        db.execute("DELETE FROM operator_log")
    if db.dialect == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"):
            db.execute("TRUNCATE operator_log")

    assert [(entry.seq, entry.outcome) for entry in log.page().entries] == [(seq, "refused")]
