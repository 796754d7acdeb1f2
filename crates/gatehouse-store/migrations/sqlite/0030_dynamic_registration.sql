-- Dynamic client registration (RFC 7591/7592). Initial access tokens (for
-- GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION=token), by the keyed digest of the token: each allows
-- max_uses registrations until expires_at; the sweeper removes expired ones.
CREATE TABLE registration_tokens (
    id TEXT NOT NULL PRIMARY KEY,
    token_digest BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX registration_tokens_expiry ON registration_tokens (expires_at);

-- The keyed digest of a dynamically registered client's registration access token (RFC 7592),
-- which reads, replaces and deletes its registration; NULL for clients an admin registered.
ALTER TABLE oauth_clients ADD COLUMN registration_token_digest BLOB;
