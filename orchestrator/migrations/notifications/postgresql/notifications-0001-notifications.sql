-- The notification consumer's messages to customers.
-- Times are Unix seconds (double precision).
CREATE TABLE notifications (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);
