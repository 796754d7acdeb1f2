-- The sweeper's lease: one row per sweep, held by the instance that claimed it until
-- `lease_until`, so several instances do not repeat the same period's work.
CREATE TABLE sweeper_leases (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);

-- The sweeper deletes by expiry in small batches; these keep each batch an index range.
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
CREATE INDEX one_time_tokens_expiry ON one_time_tokens (expires_at);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);
CREATE INDEX device_codes_expiry ON device_codes (expires_at);
CREATE INDEX used_client_assertions_expiry ON used_client_assertions (expires_at);
CREATE INDEX mfa_codes_expiry ON mfa_codes (expires_at);
CREATE INDEX trusted_devices_expiry ON trusted_devices (expires_at);
CREATE INDEX outbox_delivered ON outbox (status, delivered_at);
