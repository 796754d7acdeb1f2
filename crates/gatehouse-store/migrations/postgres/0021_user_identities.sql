-- Upstream identities (provider, subject) linked to users: sign-in through OpenID Connect and
-- OAuth 2 providers. The upstream's address is sealed (AD = the identity id).
CREATE TABLE user_identities (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    email_ciphertext BYTEA,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX user_identities_subject ON user_identities (provider_id, subject);
CREATE INDEX user_identities_user ON user_identities (user_id, created_at);

-- Providers added through the admin API (those of the configuration file are not stored):
-- their settings as JSON, the client secret sealed (purpose identity-provider-secret, AD = id).
CREATE TABLE identity_providers (
    id TEXT NOT NULL PRIMARY KEY,
    settings TEXT NOT NULL,
    client_secret BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
