-- Webhook deliveries owed: one row per event and endpoint that wants it, written in the
-- transaction that made the change, so a committed change always has its deliveries. A row
-- leaves when it is delivered or declared dead. `id` is the delivery order per endpoint.
-- Times are Unix milliseconds.
CREATE TABLE webhook_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint         TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    repository       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT
);
CREATE INDEX webhook_outbox_by_endpoint ON webhook_outbox(endpoint, id);

-- Every delivery attempt, for the API and the dashboard; pruned after a while.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    repository  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    latency_ms  INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries(at);

-- Deliveries given up on after their maximum age; they can be replayed.
CREATE TABLE webhook_dead_letters (
    id          INTEGER PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    repository  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT,
    died_at     INTEGER NOT NULL
);
CREATE INDEX webhook_dead_letters_by_endpoint ON webhook_dead_letters(endpoint, id);

-- Endpoints made through the admin API (those from the configuration are not stored).
CREATE TABLE webhooks (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- "One instance at a time": webhook delivery per endpoint, garbage collection.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
