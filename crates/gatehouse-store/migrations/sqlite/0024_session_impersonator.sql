-- An impersonation session (an admin acting as the user, with a reason, for a few minutes):
-- the admin's actor id (`usr_…` or an admin key's id), carried by its tokens as `act.sub`
-- (RFC 8693). NULL for every session the user opened themselves.
ALTER TABLE sessions ADD COLUMN impersonator TEXT;
