-- System role of a user: NULL or 'admin'.
ALTER TABLE users ADD COLUMN system_role TEXT;

-- Server-side sessions, one per sign-in.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent TEXT,
    ip TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    -- The refresh window slides up to this absolute limit.
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Refresh tokens, stored as keyed digests. A session's tokens form its family: presenting a
-- token that was already rotated revokes the session.
CREATE TABLE refresh_tokens (
    token_digest BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Earlier password hashes, for the no-reuse rule.
CREATE TABLE password_history (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, created_at);

-- Append-only record of security events and admin actions. Never holds a secret.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    action TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    target_type TEXT,
    target_id TEXT,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events (occurred_at, id);
CREATE INDEX audit_events_target ON audit_events (target_id, occurred_at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, occurred_at);

-- Admin API keys, stored as keyed digests.
CREATE TABLE admin_api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_digest BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
