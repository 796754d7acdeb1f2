-- OAuth 2.1 / OpenID Connect clients. Secrets are stored as keyed digests; the previous
-- secret keeps working until previous_secret_expires_at (rotation overlap).
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_digest BLOB,
    previous_secret_digest BLOB,
    previous_secret_expires_at BIGINT,
    -- JSON arrays of strings.
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    -- client_secret_basic, client_secret_post, private_key_jwt or none (public clients).
    token_endpoint_auth_method TEXT NOT NULL,
    -- JSON JWK Set for private_key_jwt.
    jwks TEXT,
    skip_consent BIGINT NOT NULL DEFAULT 0,
    access_token_ttl_seconds BIGINT,
    refresh_token_ttl_seconds BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Authorization codes: single use, bound to client, redirect URI and PKCE challenge.
CREATE TABLE authorization_codes (
    code_digest BLOB PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    browser_session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL DEFAULT '["pwd"]',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    -- The session the code's token exchange created, revoked if the code is replayed.
    issued_session_id TEXT
);

-- Remembered consent per user and client.
CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Sessions created for OAuth clients carry the client and the granted scope.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
ALTER TABLE sessions ADD COLUMN auth_time BIGINT;
ALTER TABLE sessions ADD COLUMN nonce TEXT;

-- Revoked access tokens (JWTs) by jti, kept until they would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
