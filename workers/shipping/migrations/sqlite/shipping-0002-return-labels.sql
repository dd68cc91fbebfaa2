-- Prepaid return labels: one per return, from issued to received (the parcel reached the
-- warehouse) or voided (the return expired or was undone).
-- Times are Unix seconds.
CREATE TABLE return_labels (
    return_id         TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL,
    label_id          TEXT NOT NULL UNIQUE,
    carrier           TEXT NOT NULL,
    tracking_number   TEXT NOT NULL,
    items             TEXT NOT NULL,
    reason            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('issued', 'received', 'voided')),
    void_reason       TEXT,
    issued_event_id   TEXT NOT NULL,
    issued_at         REAL NOT NULL,
    updated_at        REAL NOT NULL
);
CREATE INDEX return_labels_to_deliver ON return_labels (issued_at) WHERE status = 'issued';
