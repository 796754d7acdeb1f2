-- A personal API key may act in one of its owner's organizations (POST /v1/me/api-keys with
-- organization_id): it works only while the owner is a member, and introspection answers the
-- organization as org_id. Deleting the organization deletes such keys with it.
ALTER TABLE api_keys ADD COLUMN acting_organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE;
