-- Returns of dispatched orders (ReturnSaga), and what the order service needs to decide them:
-- when the order was completed (its dispatch: the saga completes on the carrier's dispatch)
-- and the payment it completed with (what a refund goes against).
-- Times are Unix seconds.
ALTER TABLE orders ADD COLUMN completed_at REAL;
ALTER TABLE orders ADD COLUMN payment_id TEXT;
-- Orders completed before this version: their last change was their completion, and the
-- projector's copy of their order.completed names the payment.
UPDATE orders SET completed_at = updated_at WHERE status = 'completed';
UPDATE orders SET payment_id = (
    SELECT json_extract(timeline.data, '$.payment_id') FROM timeline
    WHERE timeline.order_id = orders.order_id AND timeline.event_type = 'order.completed.v1'
    LIMIT 1
) WHERE status = 'completed';
-- One row per return id, whatever became of it: a refused return keeps its refusal, so that
-- asking again gets the same answer. Only authorized and completed returns hold quantities.
CREATE TABLE returns (
    return_id     TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL,
    status        TEXT NOT NULL
                  CHECK (status IN ('authorized', 'rejected', 'expired', 'completed')),
    reason        TEXT NOT NULL,
    reason_code   TEXT,
    amount_minor  INTEGER CHECK (amount_minor >= 0),
    currency      TEXT,
    payment_id    TEXT,
    refund_id     TEXT,
    outcome_reason TEXT,
    requested_at  REAL NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX returns_by_order ON returns (order_id, status);
CREATE TABLE return_lines (
    return_id         TEXT NOT NULL REFERENCES returns (return_id),
    sku               TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor  INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (return_id, sku)
);
