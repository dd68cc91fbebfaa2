-- The runtime's tables in every service database: the outbox (events written with the state
-- change, published after), the relay lease (one publishing relay per outbox) and the inbox
-- (the events each consumer group has handled). IF NOT EXISTS: databases made before
-- migrations existed already hold them.
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    key         BLOB NOT NULL,
    value       BLOB NOT NULL,
    headers     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    sent_at     REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE IF NOT EXISTS relay_lease (
    name        TEXT PRIMARY KEY,
    owner       TEXT,
    expires_at  REAL NOT NULL,
    renewed_at  REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS inbox (
    consumer_group  TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    handled_at      REAL NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
