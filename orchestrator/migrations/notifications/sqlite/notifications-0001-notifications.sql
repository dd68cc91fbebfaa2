-- The notification consumer's messages to customers.
-- IF NOT EXISTS: databases made before migrations existed already hold these tables.
CREATE TABLE IF NOT EXISTS notifications (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  REAL NOT NULL
);
