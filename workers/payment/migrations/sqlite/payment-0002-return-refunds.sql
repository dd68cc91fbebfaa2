-- Refunds of returns: a payment can now be refunded in part, once per return, each refund
-- with its own id; the ledger keeps them as entries of kind 'return_refund' (idempotency
-- key: the return id). The order's own refund (a cancelled order) stays one per order.
-- The card a payment was charged to is kept, for the processor's refunds of its returns.
ALTER TABLE payments ADD COLUMN payment_token TEXT;
-- SQLite cannot drop a table's constraint: the ledger is made again with its rows.
CREATE TABLE ledger_entries_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id      TEXT NOT NULL REFERENCES payments (payment_id),
    order_id        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('charge', 'refund', 'return_refund')),
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    created_at      REAL NOT NULL,
    return_id       TEXT UNIQUE,
    refund_id       TEXT UNIQUE,
    CHECK ((kind = 'return_refund') = (return_id IS NOT NULL AND refund_id IS NOT NULL))
);
INSERT INTO ledger_entries_new (id, payment_id, order_id, kind, amount_minor, currency,
                                created_at)
    SELECT id, payment_id, order_id, kind, amount_minor, currency, created_at
    FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;
-- the idempotency key of the order's own money movements: one charge and one refund at most
CREATE UNIQUE INDEX ledger_one_charge_one_refund ON ledger_entries (order_id, kind)
    WHERE kind IN ('charge', 'refund');
