-- The API's operator log: every cancel, retry-now, resolve and bulk repair, who asked it,
-- why, and what came of it. Append-only: updates and deletes are refused.
-- Times are Unix seconds; selection and items are JSON text.
CREATE TABLE operator_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at  REAL NOT NULL,
    principal    TEXT NOT NULL,
    action       TEXT NOT NULL,
    saga_type    TEXT,
    saga_id      TEXT,
    order_id     TEXT,
    workflow_id  TEXT,
    step         TEXT,
    reason       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    bulk_id      TEXT,
    selection    TEXT,
    items        TEXT
);
CREATE INDEX operator_log_order ON operator_log (order_id, seq);
CREATE TRIGGER operator_log_no_update BEFORE UPDATE ON operator_log
BEGIN SELECT RAISE(ABORT, 'the operator log is append-only'); END;
CREATE TRIGGER operator_log_no_delete BEFORE DELETE ON operator_log
BEGIN SELECT RAISE(ABORT, 'the operator log is append-only'); END;
