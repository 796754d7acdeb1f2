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
