-- The shipping service's books: one shipment per order, from scheduled to dispatched.
-- IF NOT EXISTS: databases made before migrations existed already hold these tables.
CREATE TABLE IF NOT EXISTS shipments (
    order_id            TEXT PRIMARY KEY,
    shipment_id         TEXT UNIQUE,
    country             TEXT NOT NULL,
    carrier             TEXT,
    items               TEXT NOT NULL,
    status              TEXT NOT NULL
                        CHECK (status IN ('scheduled', 'dispatched', 'cancelled', 'refused')),
    reason              TEXT,
    tracking_number     TEXT,
    scheduled_event_id  TEXT,
    scheduled_at        REAL NOT NULL,
    updated_at          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS shipments_to_dispatch ON shipments (scheduled_at)
    WHERE status = 'scheduled';
