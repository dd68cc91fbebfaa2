-- The order service's orders, and the projector's timeline of every order's events (a read
-- model).
-- Times are Unix seconds (double precision).
CREATE TABLE orders (
    order_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('placed', 'completed', 'cancelled')),
    body         TEXT NOT NULL,
    reason       TEXT,
    placed_at    DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL
);
CREATE TABLE timeline (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    source      TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    causation_id TEXT,
    data        TEXT NOT NULL
);
CREATE INDEX timeline_by_order ON timeline (order_id, timestamp, seq);
