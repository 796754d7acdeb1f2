-- Webhook endpoints (POST /v1/admin/webhooks). The signing secret (whsec_…) is sealed with the
-- field cipher (purpose webhook-secret, AD = id); the one before a rotation keeps signing until
-- previous_secret_until.
CREATE TABLE webhooks (
    id TEXT NOT NULL PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    -- Space-separated subscriptions: event types, family.*, or *.
    events TEXT NOT NULL,
    active BIGINT NOT NULL,
    secret BYTEA NOT NULL,
    previous_secret BYTEA,
    previous_secret_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_created ON webhooks (created_at);

-- Catalogued audit events waiting for the relay, queued in the transaction that records them
-- (the audit row is the event; this is its place in the queue). The relay fans each out to
-- webhook deliveries (outbox rows) and removes it, in one transaction.
CREATE TABLE event_queue (
    event_id TEXT NOT NULL PRIMARY KEY,
    queued_at BIGINT NOT NULL
);
CREATE INDEX event_queue_order ON event_queue (queued_at, event_id);

-- What an outbox row is for beyond its channel: a webhook delivery's endpoint and event.
ALTER TABLE outbox ADD COLUMN subject TEXT;
ALTER TABLE outbox ADD COLUMN event_id TEXT;
CREATE INDEX outbox_subject ON outbox (channel, subject, id);

-- What an HTTP receiver answered an attempt (webhooks): status and the start of the body.
ALTER TABLE outbox_attempts ADD COLUMN response_status BIGINT;
ALTER TABLE outbox_attempts ADD COLUMN response_body TEXT;
