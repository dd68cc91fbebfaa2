-- The inventory service's books: units on hand per SKU, the reservations of orders and
-- their lines.
-- IF NOT EXISTS: databases made before migrations existed already hold these tables.
CREATE TABLE IF NOT EXISTS stock (
    sku             TEXT PRIMARY KEY,
    on_hand         INTEGER NOT NULL CHECK (on_hand >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id        TEXT PRIMARY KEY,
    reservation_id  TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('reserved', 'released', 'refused')),
    reason          TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservation_lines (
    order_id        TEXT NOT NULL REFERENCES reservations (order_id),
    sku             TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
