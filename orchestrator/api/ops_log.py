"""The operator log: every operator action on a saga, kept in the API's own database.

Cancels, retry-nows, resolves and bulk repairs are appended with who (the API token's
name), why, when, which saga and what came of it, refused and failed ones included. The
rows are the API's, not Temporal's, so they outlive the saga's history; the table refuses
updates and deletes (triggers on both engines, and truncation on PostgreSQL), and nothing
here offers either.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from orchestrator.api.models import (
    BulkRepairItem,
    BulkSelection,
    OperatorAction,
    OperatorLogEntry,
    OperatorLogPage,
    OperatorOutcome,
    SagaType,
)
from runtime import Database

__all__ = ["OperatorLog", "OperatorRecord"]

_ITEMS = TypeAdapter(list[BulkRepairItem])
_COLUMNS = (
    "seq, recorded_at, principal, action, saga_type, saga_id, order_id, workflow_id, step,"
    " reason, outcome, detail, bulk_id, selection, items"
)


@dataclass(frozen=True)
class OperatorRecord:
    """One action to append (the log numbers and dates it)."""

    principal: str
    action: OperatorAction
    reason: str
    outcome: OperatorOutcome
    detail: str
    saga_type: SagaType | None = None
    saga_id: str | None = None
    order_id: str | None = None
    workflow_id: str | None = None
    step: str | None = None
    bulk_id: str | None = None
    selection: BulkSelection | None = None
    items: list[BulkRepairItem] | None = None


class OperatorLog:
    """The append-only log of operator actions, in the API's database."""

    MIGRATIONS = Path(__file__).parent.parent / "migrations" / "opslog"
    """Its table's migrations (:func:`runtime.open_database` applies them)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, record: OperatorRecord) -> int:
        """Append ``record`` (inside the caller's transaction, if any); its sequence number."""
        row = self._db.execute(
            "INSERT INTO operator_log (recorded_at, principal, action, saga_type, saga_id,"
            " order_id, workflow_id, step, reason, outcome, detail, bulk_id, selection, items)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                time.time(),
                record.principal,
                record.action,
                record.saga_type.value if record.saga_type is not None else None,
                record.saga_id,
                record.order_id,
                record.workflow_id,
                record.step,
                record.reason,
                record.outcome,
                record.detail,
                record.bulk_id,
                record.selection.model_dump_json() if record.selection is not None else None,
                _ITEMS.dump_json(record.items).decode() if record.items is not None else None,
            ),
        ).fetchone()
        seq: int = row[0]
        return seq

    def page(
        self,
        *,
        order_id: str | None = None,
        saga_type: SagaType | None = None,
        since: datetime | None = None,
        page_size: int = 50,
        before: int | None = None,
    ) -> OperatorLogPage:
        """One page of entries, newest first, that match every filter given.

        Args:
            order_id: only actions on sagas of this order (a bulk repair's own entry names
                no order: its per-saga entries do).
            saga_type: only actions on (or bulk repairs of) sagas of this type.
            since: only actions recorded at or after this time.
            page_size: at most this many entries.
            before: only entries numbered below this (the page token of the page before).
        """
        clauses: list[str] = []
        parameters: list[Any] = []
        for clause, value in (
            ("order_id = ?", order_id),
            ("saga_type = ?", saga_type.value if saga_type is not None else None),
            ("recorded_at >= ?", since.timestamp() if since is not None else None),
            ("seq < ?", before),
        ):
            if value is not None:
                clauses.append(clause)
                parameters.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM operator_log{where} ORDER BY seq DESC LIMIT ?",
            (*parameters, page_size + 1),
        ).fetchall()
        entries = [_entry(row) for row in rows[:page_size]]
        more = len(rows) > page_size
        return OperatorLogPage(
            entries=entries, next_page_token=str(entries[-1].seq) if more and entries else None
        )


def _entry(row: Any) -> OperatorLogEntry:
    selection, items = row["selection"], row["items"]
    return OperatorLogEntry(
        seq=row["seq"],
        at=datetime.fromtimestamp(row["recorded_at"], UTC),
        principal=row["principal"],
        action=row["action"],
        saga_type=row["saga_type"],
        saga_id=row["saga_id"],
        order_id=row["order_id"],
        workflow_id=row["workflow_id"],
        step=row["step"],
        reason=row["reason"],
        outcome=row["outcome"],
        detail=row["detail"],
        bulk_id=row["bulk_id"],
        selection=BulkSelection.model_validate_json(selection) if selection else None,
        items=_ITEMS.validate_json(items) if items else None,
    )
