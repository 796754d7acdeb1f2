//! The event catalogue: the names of the happenings applications may subscribe to (webhooks,
//! the event stream) — one vocabulary with the audit trail.
//!
//! Rule: an audit event that records one of these happenings carries exactly its catalogue
//! name as its `action`, so an event type and an audit action never disagree; the detail
//! (which factor, why a session ended, who removed a member) travels in the metadata:
//! - `session.revoked` has a `reason` (`signed_out`, `revoked_by_user`,
//!   `refresh_token_reuse`, ...);
//! - `user.mfa_changed` has `kind` (the factor) and `change` (`added`, `removed`, `reset`);
//! - `membership.deleted` has `reason` (`removed`, `left`);
//! - `user.password_changed` has `via: "reset"` when a reset link changed it.
//!
//! Audit actions outside the catalogue (sign-in failures, `oauth.*`, `passkey.*`, `admin.*`,
//! `mfa.*` challenges, lockouts, deliveries) are recorded but never offered as events.

/// Every event type, in the order the documentation lists them.
pub const CATALOGUE: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "user.suspended",
    "user.unsuspended",
    "user.password_changed",
    "user.mfa_changed",
    "user.impersonated",
    "session.created",
    "session.revoked",
    "email.verified",
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organization.role_created",
    "organization.role_updated",
    "organization.role_deleted",
    "membership.created",
    "membership.updated",
    "membership.deleted",
    "invitation.created",
    "invitation.accepted",
    "invitation.declined",
    "invitation.revoked",
    "api_key.created",
    "api_key.revoked",
];

/// Whether `action` (an audit action or an event type) is in the catalogue.
pub fn is_catalogued(action: &str) -> bool {
    CATALOGUE.contains(&action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_names_the_happenings_and_nothing_else() {
        for name in ["user.created", "session.created", "email.verified", "user.mfa_changed"] {
            assert!(is_catalogued(name), "{name}");
        }
        // Renamed (migration 0015) or kept out of the catalogue.
        for name in [
            "user.signed_up",
            "user.email_verified",
            "user.sign_in_succeeded",
            "session.signed_out",
            "mfa.factor_added",
            "organization.invitation_created",
            "organization.member_added",
            "user.sign_in_failed",
            "oauth.token_issued",
            "passkey.added",
            "admin.client_created",
        ] {
            assert!(!is_catalogued(name), "{name}");
        }
    }

    #[test]
    fn names_are_unique_dotted_and_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for name in CATALOGUE {
            assert!(seen.insert(*name), "{name} twice");
            let (family, happening) = name.split_once('.').unwrap();
            for part in [family, happening] {
                assert!(
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                );
            }
        }
    }
}
