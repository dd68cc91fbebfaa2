-- The payment service's books: one payment per order, its ledger of charges and refunds,
-- and the attempts to charge it.
-- Times are Unix seconds (double precision).
CREATE TABLE payments (
    order_id        TEXT PRIMARY KEY,
    payment_id      TEXT NOT NULL UNIQUE,
    customer_id     TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('captured', 'declined', 'refunded')),
    decline_reason  TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL
);
CREATE TABLE ledger_entries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id      TEXT NOT NULL REFERENCES payments (payment_id),
    order_id        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    -- the idempotency key of a money movement: one charge and one refund per order at most
    UNIQUE (order_id, kind)
);
CREATE TABLE charge_attempts (
    order_id        TEXT PRIMARY KEY,
    attempts        INTEGER NOT NULL
);
