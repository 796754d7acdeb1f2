-- Organizations, their members and their custom roles.

CREATE TABLE organizations (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    -- Lowercase words joined by hyphens; unique.
    slug TEXT NOT NULL,
    logo_url TEXT,
    -- JSON objects (at most 8 KiB each): public for members, private for admins and holders of
    -- org:update.
    public_metadata TEXT NOT NULL DEFAULT '{}',
    private_metadata TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX organizations_slug ON organizations (slug);
CREATE INDEX organizations_created ON organizations (created_at);

-- Custom roles of one organization (the built-in owner, admin and member are not stored).
CREATE TABLE organization_roles (
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role_key TEXT NOT NULL,
    name TEXT NOT NULL,
    -- Space-separated resource:action permissions.
    permissions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, role_key)
);

CREATE TABLE organization_members (
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A built-in role or a custom role's key.
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_members_user ON organization_members (user_id, created_at);
CREATE INDEX organization_members_joined ON organization_members (organization_id, created_at);
