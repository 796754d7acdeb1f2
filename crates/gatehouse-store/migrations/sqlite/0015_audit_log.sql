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
