-- Outbox: every message a change needs delivered (email now, webhooks later), written in the
-- same transaction as the change. The payload is sealed with the field cipher (purpose
-- `outbox`, AD = id) because it holds secrets: links with one-time tokens, addresses.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    -- The channel that delivers it: 'email'.
    channel TEXT NOT NULL,
    -- What it is, for listings (no secret): 'verify_email', 'reset_password', ...
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    -- pending, sending, delivered or dead.
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- While `sending`: who claimed it and until when; an expired lease is claimed again.
    claimed_by TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Every delivery attempt of an outbox row. `error` never holds a secret.
CREATE TABLE outbox_attempts (
    id TEXT PRIMARY KEY,
    outbox_id TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    worker TEXT NOT NULL,
    -- delivered or failed.
    status TEXT NOT NULL,
    error TEXT,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX outbox_attempts_row ON outbox_attempts (outbox_id, started_at);

-- Single-use tokens sent by email (verification, password reset, magic link), stored only as
-- keyed digests.
CREATE TABLE one_time_tokens (
    token_digest BLOB PRIMARY KEY,
    -- verify_email, reset_password or magic_link.
    purpose TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The address the token was sent to (blind index): a verification only counts for the
    -- address it was sent to.
    email_digest BLOB,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);

-- Devices a user has signed in from (user agent + IP class, as a keyed digest), for the
-- new-device notice.
CREATE TABLE known_devices (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_digest BLOB NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_digest)
);
