-- Device authorization grant (RFC 8628). The device code is stored as a keyed digest; the
-- user code (normalised: upper case, no dash) is short-lived and unique.
CREATE TABLE device_codes (
    device_code_digest BYTEA PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    -- pending, approved, denied or consumed.
    status TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    auth_time BIGINT,
    interval_seconds BIGINT NOT NULL,
    last_polled_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
