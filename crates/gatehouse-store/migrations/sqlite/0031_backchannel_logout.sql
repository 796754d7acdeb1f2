-- OpenID Connect Back-Channel Logout 1.0. A client's logout URI (NULL: it takes no part) and
-- whether it requires `sid` (always sent).
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_session_required BIGINT NOT NULL DEFAULT 0;

-- When the end of an OAuth session was queued for its client's logout URI. The announcer reads
-- revoked sessions not announced yet, per client, through the partial index.
ALTER TABLE sessions ADD COLUMN logout_notified_at BIGINT;
CREATE INDEX sessions_logout_due ON sessions (client_id, revoked_at)
    WHERE client_id IS NOT NULL AND revoked_at IS NOT NULL AND logout_notified_at IS NULL;

-- The sessions opened from a browser session (through its codes), ended with it.
CREATE INDEX authorization_codes_browser_session ON authorization_codes (browser_session_id);
