-- Returned items put back into stock: one restock per return (its idempotency key) and its
-- lines. Times are Unix seconds.
CREATE TABLE restocks (
    return_id       TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    created_at      REAL NOT NULL
);
CREATE TABLE restock_lines (
    return_id       TEXT NOT NULL REFERENCES restocks (return_id),
    sku             TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (return_id, sku)
);
