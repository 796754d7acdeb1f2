-- API keys (personal access tokens): a user's own keys and organization keys. The secret
-- (gtk_…) is stored only as a keyed digest (data key purpose digest/api-key).
CREATE TABLE api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    -- Exactly one owner: a user (personal key) or an organization.
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    -- The user who created it (for an organization key, a member then); no foreign key, so
    -- the audit trail keeps naming them after they leave.
    created_by TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The first characters of the key, shown in lists so a user can tell keys apart.
    prefix TEXT NOT NULL,
    key_digest BYTEA NOT NULL,
    -- Space-separated scopes.
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    -- Kept to the minute.
    last_used_at BIGINT,
    revoked_at BIGINT,
    CHECK ((user_id IS NULL) <> (organization_id IS NULL))
);
CREATE UNIQUE INDEX api_keys_digest ON api_keys (key_digest);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);
CREATE INDEX api_keys_organization ON api_keys (organization_id, created_at);
CREATE INDEX api_keys_created ON api_keys (created_at);
