-- The order service's orders, and the projector's timeline of every order's events (a read
-- model).
-- IF NOT EXISTS: databases made before migrations existed already hold these tables.
CREATE TABLE IF NOT EXISTS orders (
    order_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('placed', 'completed', 'cancelled')),
    body         TEXT NOT NULL,
    reason       TEXT,
    placed_at    REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS timeline (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    source      TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    causation_id TEXT,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_order ON timeline (order_id, timestamp, seq);
