-- The inventory service's books: units on hand per SKU, the reservations of orders and
-- their lines.
-- Times are Unix seconds (double precision).
CREATE TABLE stock (
    sku             TEXT PRIMARY KEY,
    on_hand         INTEGER NOT NULL CHECK (on_hand >= 0)
);
CREATE TABLE reservations (
    order_id        TEXT PRIMARY KEY,
    reservation_id  TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('reserved', 'released', 'refused')),
    reason          TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL
);
CREATE TABLE reservation_lines (
    -- SQLite's implicit rowid, made explicit: the lines keep the order they were written in
    rowid           BIGINT GENERATED ALWAYS AS IDENTITY,
    order_id        TEXT NOT NULL REFERENCES reservations (order_id),
    sku             TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
