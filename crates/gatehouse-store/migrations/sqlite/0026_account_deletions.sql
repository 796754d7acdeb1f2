-- Deletions users asked for, waiting out the grace period (`account_deletion.grace_days`):
-- the account is suspended meanwhile; the emailed link's token (its keyed digest here)
-- restores it; the sweeper deletes it once `due_at` has passed. The row goes with its user.
CREATE TABLE account_deletions (
    user_id TEXT NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    requested_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    restore_digest BLOB NOT NULL
);
CREATE INDEX account_deletions_due ON account_deletions (due_at);
CREATE UNIQUE INDEX account_deletions_restore ON account_deletions (restore_digest);
