//! The event catalogue: the identity events applications receive (webhooks, the NATS stream).
//! One vocabulary: an audit action that records one of these happenings carries exactly the
//! event's name, so an audit row and a webhook of the same happening are found by one name.

/// Events by exact name.
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "user.suspended",
    "user.unsuspended",
    "user.password_changed",
    "user.mfa_changed",
    "session.created",
    "session.revoked",
    "email.verified",
];

/// Families whose every event is catalogued (`organization.created`, `membership.deleted`…).
pub const EVENT_FAMILIES: &[&str] = &["organization", "membership", "invitation", "api_key"];

/// The message `POST /v1/admin/webhooks/{id}/test` sends; only to that endpoint.
pub const TEST_EVENT: &str = "webhook.test";

/// Whether an audit action is an event of the catalogue.
pub fn is_catalogued(action: &str) -> bool {
    EVENT_TYPES.contains(&action)
        || action
            .split_once('.')
            .is_some_and(|(family, name)| !name.is_empty() && EVENT_FAMILIES.contains(&family))
}

/// Whether a subscription names events that exist: an event type, a family's `family.*`, or
/// `*` for everything.
pub fn valid_subscription(pattern: &str) -> bool {
    pattern == "*"
        || is_catalogued(pattern)
        || pattern.strip_suffix(".*").is_some_and(|family| {
            EVENT_FAMILIES.contains(&family)
                || EVENT_TYPES.iter().any(|name| name.split('.').next() == Some(family))
        })
}

/// Whether an endpoint subscribed to `patterns` receives `event_type`.
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|pattern| {
        pattern == "*"
            || pattern == event_type
            || pattern
                .strip_suffix(".*")
                .is_some_and(|family| event_type.split('.').next() == Some(family))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_names_events_and_families() {
        assert!(is_catalogued("user.created"));
        assert!(is_catalogued("membership.updated"));
        assert!(is_catalogued("api_key.revoked"));
        assert!(!is_catalogued("user.sign_in_failed"));
        assert!(!is_catalogued("oauth.token_issued"));
        assert!(!is_catalogued("organization."));
        for pattern in ["*", "user.*", "organization.*", "session.created"] {
            assert!(valid_subscription(pattern), "{pattern}");
        }
        for pattern in ["user.sign_in_failed", "oauth.*", "", "user"] {
            assert!(!valid_subscription(pattern), "{pattern}");
        }
        let patterns = vec!["user.*".to_owned(), "invitation.accepted".to_owned()];
        assert!(subscribed(&patterns, "user.created"));
        assert!(subscribed(&patterns, "invitation.accepted"));
        assert!(!subscribed(&patterns, "invitation.created"));
        assert!(!subscribed(&patterns, "session.created"));
        assert!(subscribed(&["*".to_owned()], "session.created"));
    }
}
