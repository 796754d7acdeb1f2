-- One vocabulary (#22): audit actions that record a happening of the event catalogue
-- (`gatehouse_domain::events::CATALOGUE`) carry its name; the detail moves into the metadata.
-- The old `session.revoked` rows (a user revoking one of their sessions) gain their reason
-- first, before the renamed sign-outs and reuse revocations join them.

UPDATE audit_events SET action = 'session.revoked', metadata = json_set(metadata, '$.reason', 'revoked_by_user') WHERE action = 'session.revoked' AND json_extract(metadata, '$.reason') IS NULL;
UPDATE audit_events SET action = 'session.revoked', metadata = json_set(metadata, '$.reason', 'signed_out') WHERE action = 'session.signed_out';
UPDATE audit_events SET action = 'session.revoked', metadata = json_set(metadata, '$.reason', 'refresh_token_reuse') WHERE action = 'session.refresh_token_reused';
UPDATE audit_events SET action = 'user.mfa_changed', metadata = json_set(metadata, '$.change', 'added') WHERE action = 'mfa.factor_added';
UPDATE audit_events SET action = 'user.mfa_changed', metadata = json_set(metadata, '$.change', 'removed') WHERE action = 'mfa.factor_removed';
UPDATE audit_events SET action = 'user.mfa_changed', metadata = json_set(metadata, '$.change', 'reset') WHERE action = 'admin.mfa_reset';
UPDATE audit_events SET action = 'user.password_changed', metadata = json_set(metadata, '$.via', 'reset') WHERE action = 'user.password_reset';
UPDATE audit_events SET action = 'membership.deleted', metadata = json_set(metadata, '$.reason', 'removed') WHERE action = 'organization.member_removed';
UPDATE audit_events SET action = 'membership.deleted', metadata = json_set(metadata, '$.reason', 'left') WHERE action = 'organization.member_left';
UPDATE audit_events SET metadata = json_set(metadata, '$.user_id', actor_id) WHERE action = 'membership.deleted' AND json_extract(metadata, '$.reason') = 'left' AND actor_id IS NOT NULL;
UPDATE audit_events SET action = 'user.created' WHERE action = 'user.signed_up';
UPDATE audit_events SET action = 'user.created' WHERE action = 'admin.user_created';
UPDATE audit_events SET action = 'user.updated' WHERE action = 'admin.user_updated';
UPDATE audit_events SET action = 'user.deleted' WHERE action = 'admin.user_deleted';
UPDATE audit_events SET action = 'user.suspended' WHERE action = 'admin.user_suspended';
UPDATE audit_events SET action = 'user.unsuspended' WHERE action = 'admin.user_unsuspended';
UPDATE audit_events SET action = 'email.verified' WHERE action = 'user.email_verified';
UPDATE audit_events SET action = 'session.created' WHERE action = 'user.sign_in_succeeded';
UPDATE audit_events SET action = 'invitation.created' WHERE action = 'organization.invitation_created';
UPDATE audit_events SET action = 'invitation.accepted' WHERE action = 'organization.invitation_accepted';
UPDATE audit_events SET action = 'invitation.declined' WHERE action = 'organization.invitation_declined';
UPDATE audit_events SET action = 'invitation.revoked' WHERE action = 'organization.invitation_revoked';
UPDATE audit_events SET action = 'membership.created' WHERE action = 'organization.member_added';
UPDATE audit_events SET action = 'membership.updated' WHERE action = 'organization.member_role_changed';

-- The organization an event concerns (its target, for organization events), for the search.
-- No index on ip: a search by address walks the time index (with since/until, a range of it);
-- an index over high-cardinality addresses would cost every audited request a random insert.
ALTER TABLE audit_events ADD COLUMN organization_id TEXT;
UPDATE audit_events SET organization_id = target_id WHERE target_type = 'organization';
CREATE INDEX audit_events_organization ON audit_events (organization_id, occurred_at);
CREATE INDEX audit_events_action ON audit_events (action, occurred_at);

-- The tamper-evident chain (`gatehouse_domain::audit::chain`): a row is chained after it
-- commits, by the chainer, which gives it the next position and its hash.
ALTER TABLE audit_events ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_events ADD COLUMN chain_hash TEXT;
ALTER TABLE audit_events ADD COLUMN personal_digest TEXT;
ALTER TABLE audit_events ADD COLUMN personal_salt TEXT;
ALTER TABLE audit_events ADD COLUMN personal_erased_at BIGINT;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (chain_seq);
CREATE INDEX audit_events_unchained ON audit_events (occurred_at, id) WHERE chain_seq IS NULL;

-- One row: the last chained position and hash. The chainer locks it.
CREATE TABLE audit_chain_head (
    id BIGINT PRIMARY KEY NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- What retention removed: the last removed row's position and hash, under a MAC.
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY NOT NULL,
    hash TEXT NOT NULL,
    removed BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    mac TEXT NOT NULL
);
