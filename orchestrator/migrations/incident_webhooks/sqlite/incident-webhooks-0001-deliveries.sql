-- Webhook deliveries that the receiver acknowledged (2xx): one per incident and state, so a
-- redelivered or re-emitted event is never POSTed again. Times are Unix seconds.
CREATE TABLE webhook_deliveries (
    incident_id   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('opened', 'resolved')),
    event_id      TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    delivered_at  REAL NOT NULL,
    PRIMARY KEY (incident_id, state)
);
