-- The account page lists the invitations waiting for the signed-in user's address: found by
-- its blind index.
CREATE INDEX organization_invitations_address ON organization_invitations (email_digest);
