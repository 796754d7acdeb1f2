-- Signing keys: private keys sealed with the field cipher; at most one active key.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    sealed_private_key BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    publish_until BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

-- Users: email sealed, looked up through its keyed digest (blind index).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email_ciphertext BYTEA,
    email_digest BYTEA UNIQUE,
    username TEXT UNIQUE,
    first_name TEXT,
    last_name TEXT,
    image_url TEXT,
    email_verified_at BIGINT,
    password_hash TEXT,
    password_changed_at BIGINT,
    failed_sign_in_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    suspended_at BIGINT,
    last_sign_in_at BIGINT,
    public_metadata TEXT NOT NULL DEFAULT '{}',
    private_metadata TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
