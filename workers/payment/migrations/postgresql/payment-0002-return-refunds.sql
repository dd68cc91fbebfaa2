-- Refunds of returns: a payment can now be refunded in part, once per return, each refund
-- with its own id; the ledger keeps them as entries of kind 'return_refund' (idempotency
-- key: the return id). The order's own refund (a cancelled order) stays one per order.
-- The card a payment was charged to is kept, for the processor's refunds of its returns.
ALTER TABLE payments ADD COLUMN payment_token TEXT;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_order_id_kind_key;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('charge', 'refund', 'return_refund'));
ALTER TABLE ledger_entries ADD COLUMN return_id TEXT UNIQUE;
ALTER TABLE ledger_entries ADD COLUMN refund_id TEXT UNIQUE;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_return_refund_check
    CHECK ((kind = 'return_refund') = (return_id IS NOT NULL AND refund_id IS NOT NULL));
-- the idempotency key of the order's own money movements: one charge and one refund at most
CREATE UNIQUE INDEX ledger_one_charge_one_refund ON ledger_entries (order_id, kind)
    WHERE kind IN ('charge', 'refund');
