-- The active organization of a session (chosen with POST /v1/me/organization): its access
-- tokens carry org_id, org_slug, org_role and org_permissions, read from the membership at each
-- issue (a removal or a role change shows at the next refresh). No foreign key: a deleted
-- organization simply stops being claimed.
ALTER TABLE sessions ADD COLUMN organization_id TEXT;
