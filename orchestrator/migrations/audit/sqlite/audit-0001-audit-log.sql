-- The audit consumer's log of every domain event, append-only: updates and deletes are
-- refused.
-- IF NOT EXISTS: databases made before migrations existed already hold these tables.
CREATE TABLE IF NOT EXISTS audit_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    source       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    recorded_at  REAL NOT NULL,
    envelope     TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
