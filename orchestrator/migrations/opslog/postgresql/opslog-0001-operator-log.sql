-- The API's operator log: every cancel, retry-now, resolve and bulk repair, who asked it,
-- why, and what came of it. Append-only: updates, deletes and truncation are refused.
-- Times are Unix seconds (double precision); selection and items are JSON text.
CREATE TABLE operator_log (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at  DOUBLE PRECISION NOT NULL,
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
CREATE FUNCTION operator_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the operator log is append-only';
END;
$$;
CREATE TRIGGER operator_log_no_update BEFORE UPDATE ON operator_log
    FOR EACH ROW EXECUTE FUNCTION operator_log_append_only();
CREATE TRIGGER operator_log_no_delete BEFORE DELETE ON operator_log
    FOR EACH ROW EXECUTE FUNCTION operator_log_append_only();
CREATE TRIGGER operator_log_no_truncate BEFORE TRUNCATE ON operator_log
    FOR EACH STATEMENT EXECUTE FUNCTION operator_log_append_only();
