-- Invitations to organizations by email. The token only as a keyed digest; the address sealed
-- (AD = the invitation's id) and found by its blind index. Swept once expired.
CREATE TABLE organization_invitations (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email_digest BLOB NOT NULL,
    email_ciphertext BLOB NOT NULL,
    role TEXT NOT NULL,
    token_digest BLOB NOT NULL,
    -- The inviting user (no foreign key: the invitation outlives a deleted inviter).
    invited_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT,
    declined_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX organization_invitations_token ON organization_invitations (token_digest);
CREATE INDEX organization_invitations_organization ON organization_invitations (organization_id, created_at);
CREATE INDEX organization_invitations_expiry ON organization_invitations (expires_at);
