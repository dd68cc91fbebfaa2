-- The shipping service's books: one shipment per order, from scheduled to dispatched.
-- Times are Unix seconds (double precision).
CREATE TABLE shipments (
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
    scheduled_at        DOUBLE PRECISION NOT NULL,
    updated_at          DOUBLE PRECISION NOT NULL
);
CREATE INDEX shipments_to_dispatch ON shipments (scheduled_at)
    WHERE status = 'scheduled';
