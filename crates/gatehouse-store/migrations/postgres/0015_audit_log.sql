-- One vocabulary (#22): audit actions that record a happening of the event catalogue
-- (`gatehouse_domain::events::CATALOGUE`) carry its name; the detail moves into the metadata.
-- The old `session.revoked` rows (a user revoking one of their sessions) gain their reason
-- first, before the renamed sign-outs and reuse revocations join them.

UPDATE audit_events SET action = 'session.revoked', metadata = (metadata::jsonb || jsonb_build_object('reason', 'revoked_by_user'))::text WHERE action = 'session.revoked' AND NOT (metadata::jsonb ? 'reason');
UPDATE audit_events SET action = 'session.revoked', metadata = (metadata::jsonb || jsonb_build_object('reason', 'signed_out'))::text WHERE action = 'session.signed_out';
UPDATE audit_events SET action = 'session.revoked', metadata = (metadata::jsonb || jsonb_build_object('reason', 'refresh_token_reuse'))::text WHERE action = 'session.refresh_token_reused';
UPDATE audit_events SET action = 'user.mfa_changed', metadata = (metadata::jsonb || jsonb_build_object('change', 'added'))::text WHERE action = 'mfa.factor_added';
UPDATE audit_events SET action = 'user.mfa_changed', metadata = (metadata::jsonb || jsonb_build_object('change', 'removed'))::text WHERE action = 'mfa.factor_removed';
UPDATE audit_events SET action = 'user.mfa_changed', metadata = (metadata::jsonb || jsonb_build_object('change', 'reset'))::text WHERE action = 'admin.mfa_reset';
UPDATE audit_events SET action = 'user.password_changed', metadata = (metadata::jsonb || jsonb_build_object('via', 'reset'))::text WHERE action = 'user.password_reset';
UPDATE audit_events SET action = 'membership.deleted', metadata = (metadata::jsonb || jsonb_build_object('reason', 'removed'))::text WHERE action = 'organization.member_removed';
UPDATE audit_events SET action = 'membership.deleted', metadata = (metadata::jsonb || jsonb_build_object('reason', 'left'))::text WHERE action = 'organization.member_left';
UPDATE audit_events SET metadata = (metadata::jsonb || jsonb_build_object('user_id', actor_id))::text WHERE action = 'membership.deleted' AND metadata::jsonb ->> 'reason' = 'left' AND actor_id IS NOT NULL;
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

-- Audit rows are append-only. An UPDATE passes only as
-- (a) the chainer's write of the chain columns of an unchained row, or
-- (b) an erasure of the personal fields (IP, user agent, personal metadata keys), which keeps
--     everything the chain hashes in clear and drops the salt;
-- a DELETE passes only for a chained row a retention checkpoint already covers.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $guard$
DECLARE
    personal_keys TEXT[] := ARRAY['email', 'emails', 'phone'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.chain_seq IS NOT NULL
           AND EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq >= OLD.chain_seq) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % may go only behind a retention checkpoint', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.occurred_at IS DISTINCT FROM OLD.occurred_at
       OR NEW.action IS DISTINCT FROM OLD.action OR NEW.actor_type IS DISTINCT FROM OLD.actor_type
       OR NEW.actor_id IS DISTINCT FROM OLD.actor_id OR NEW.target_type IS DISTINCT FROM OLD.target_type
       OR NEW.target_id IS DISTINCT FROM OLD.target_id OR NEW.request_id IS DISTINCT FROM OLD.request_id
       OR NEW.organization_id IS DISTINCT FROM OLD.organization_id THEN
        RAISE EXCEPTION 'audit_events is append-only: % cannot be changed', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.chain_seq IS NULL THEN
        IF NEW.chain_seq IS NOT NULL AND NEW.chain_hash IS NOT NULL
           AND NEW.ip IS NOT DISTINCT FROM OLD.ip AND NEW.user_agent IS NOT DISTINCT FROM OLD.user_agent
           AND NEW.metadata IS NOT DISTINCT FROM OLD.metadata AND NEW.personal_erased_at IS NULL THEN
            RETURN NEW;
        END IF;
    ELSIF NEW.chain_seq IS NOT DISTINCT FROM OLD.chain_seq
          AND NEW.chain_hash IS NOT DISTINCT FROM OLD.chain_hash
          AND NEW.personal_digest IS NOT DISTINCT FROM OLD.personal_digest
          AND NEW.personal_salt IS NULL AND NEW.personal_erased_at IS NOT NULL
          AND NEW.ip IS NULL AND NEW.user_agent IS NULL
          AND NOT (NEW.metadata::jsonb ?| personal_keys)
          AND (NEW.metadata::jsonb - personal_keys) = (OLD.metadata::jsonb - personal_keys) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % cannot be changed', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$guard$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
