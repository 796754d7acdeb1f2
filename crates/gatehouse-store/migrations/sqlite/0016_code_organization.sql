-- The organization a user chose for an OAuth client's tokens (the `organization` scope),
-- carried from the authorization to the session the code's exchange opens. No foreign key, as
-- for sessions.organization_id: a deleted organization simply stops being claimed.
ALTER TABLE authorization_codes ADD COLUMN organization_id TEXT;
