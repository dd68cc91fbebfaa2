"""What a database's outbox and inbox hold, counted through the runtime's reader."""

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from runtime import BookReader, EventCounts, Inbox, Outbox, Where, open_database, transaction
from tests.support.samples import payment_completed


def test_the_outbox_and_inbox_are_counted_by_order_and_time(
    database_at: Callable[[str], Where],
) -> None:
    db = open_database(database_at("service"))
    outbox = Outbox(db)
    with transaction(db):
        for order_id in ("chaos-r1-1", "chaos-r1-2", "chaos-r2-1", "other-1"):
            outbox.add(payment_completed(order_id))
    outbox.mark_sent([row.id for row in outbox.pending() if row.order_id != "chaos-r1-2"])
    inbox = Inbox(db, "group")
    with transaction(db):
        inbox.record("early", "payment.completed.v1")
    between = time.time()
    time.sleep(0.01)
    with transaction(db):
        inbox.record("late", "payment.completed.v1")
    db.close()

    with BookReader.open(database_at("service")) as book:
        assert book.event_counts(order_prefix="chaos-r1-", handled_since=between) == EventCounts(
            pending=1, published=1, handled=1
        )
        # A prefix is matched as it is: "_" and "%" are no wildcards.
        assert book.event_counts(order_prefix="chaos_r1%").published == 0
        assert book.event_counts().published == 3


def test_a_database_without_outbox_or_inbox_counts_nothing(
    database_at: Callable[[str], Where],
) -> None:
    where = database_at("empty")
    if isinstance(where, Path):
        sqlite3.connect(where).close()  # a file with no table at all (PostgreSQL: a bare schema)
    with BookReader.open(where) as book:
        assert book.event_counts() == EventCounts()
    assert EventCounts(1, 2, 3) + EventCounts(1, 1, 1) == EventCounts(2, 3, 4)
