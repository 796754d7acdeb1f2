-- Pushed authorization requests (RFC 9126): an authorization request a client sent to
-- /oauth2/par, kept under the keyed digest of its request_uri's random part until the
-- authorization it starts ends (used_at) or it expires. `parameters` is the request as JSON.
CREATE TABLE pushed_authorization_requests (
    request_digest BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    parameters TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- When the authorization endpoint first read it (its lifetime then extends to a sign-in's).
    opened_at BIGINT,
    used_at BIGINT
);
CREATE INDEX pushed_authorization_requests_expiry ON pushed_authorization_requests (expires_at);

-- A client that must push its authorization requests (RFC 9126 §6), 1 or 0.
ALTER TABLE oauth_clients ADD COLUMN require_pushed_authorization_requests BIGINT NOT NULL DEFAULT 0;
