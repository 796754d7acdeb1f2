-- Multi-factor authentication: second factors, backup codes, one-time codes sent by email or
-- SMS, sign-in challenges (when Redis is not configured), trusted devices, and the
-- authentication methods of each session.

-- One second factor per user and kind. A row whose `confirmed_at` is NULL is an enrolment in
-- progress (replaced by a new one); only confirmed factors are asked for at sign-in.
CREATE TABLE mfa_factors (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- totp, email or sms.
    kind TEXT NOT NULL,
    -- totp: the secret, sealed with the field cipher (purpose `mfa-totp`, AD = id).
    secret_ciphertext BLOB,
    -- sms: the E.164 number, sealed (purpose `mfa-phone`, AD = id).
    phone_ciphertext BLOB,
    confirmed_at BIGINT,
    -- totp: the last time step accepted; a code of that step or an earlier one is a replay.
    last_used_step BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX mfa_factors_user_kind ON mfa_factors (user_id, kind);

-- Backup codes, stored as keyed digests; a used code keeps its row (so reuse is told apart
-- from a wrong code) until the set is regenerated.
CREATE TABLE mfa_backup_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_digest BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_digest)
);

-- Six-digit codes sent by email or SMS, stored as keyed digests, five tries each.
CREATE TABLE mfa_codes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- email or sms.
    channel TEXT NOT NULL,
    -- sign_in, enrol or reauthenticate.
    purpose TEXT NOT NULL,
    code_digest BLOB NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX mfa_codes_user ON mfa_codes (user_id, channel, purpose);

-- Sign-in challenges between the first and the second factor, when Redis is not configured.
-- The token is stored as a keyed digest; the row is deleted when it is used.
CREATE TABLE mfa_challenges (
    token_digest BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- JSON: the first factor, what the challenge allows.
    data TEXT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);

-- Devices on which a user chose to skip the second factor; the browser holds the token in an
-- HttpOnly cookie, the row only its keyed digest.
CREATE TABLE trusted_devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest BLOB NOT NULL UNIQUE,
    user_agent TEXT,
    ip TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX trusted_devices_user ON trusted_devices (user_id);

-- The authentication methods (RFC 8176 `amr` values, space-separated) of a session's last
-- authentication; `auth_time` already says when it was.
ALTER TABLE sessions ADD COLUMN amr TEXT;
-- ...and of the session that approved a device code, for the device's ID token.
ALTER TABLE device_codes ADD COLUMN amr TEXT;
