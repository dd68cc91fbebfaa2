-- Incidents the sagas opened: one row per stuck episode of a step (incident.open), closed
-- once when the episode ends (incident.resolve). Times are Unix seconds.
CREATE TABLE incidents (
    incident_id   TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL,
    saga_type     TEXT NOT NULL,
    workflow_id   TEXT NOT NULL,
    step          TEXT NOT NULL,
    compensating  INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    last_error    TEXT,
    opened_at     TEXT NOT NULL,
    resolution    TEXT,
    resolved_at   TEXT,
    recorded_at   REAL NOT NULL,
    closed_at     REAL
);
CREATE INDEX incidents_open ON incidents (closed_at) WHERE closed_at IS NULL;
CREATE INDEX incidents_order ON incidents (order_id);
