-- The runtime's tables in every service database: the outbox (events written with the state
-- change, published after), the relay lease (one publishing relay per outbox) and the inbox
-- (the events each consumer group has handled). Times are Unix seconds (double precision).
CREATE TABLE outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    key         BYTEA NOT NULL,
    value       BYTEA NOT NULL,
    headers     TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    sent_at     DOUBLE PRECISION
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE relay_lease (
    name        TEXT PRIMARY KEY,
    owner       TEXT,
    expires_at  DOUBLE PRECISION NOT NULL,
    renewed_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE inbox (
    consumer_group  TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    handled_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
