//! Subscriptions to the event catalogue ([`crate::events`], one vocabulary with the audit
//! trail): an endpoint subscribes to event types, to a family (`organization.*`) or to `*`.

/// The message `POST /v1/admin/webhooks/{id}/test` sends; only to that endpoint.
pub const TEST_EVENT: &str = "webhook.test";

pub use crate::events::{CATALOGUE, is_catalogued};

/// The families of the catalogue (`user`, `organization`, ...).
fn is_family(family: &str) -> bool {
    CATALOGUE.iter().any(|name| name.split('.').next() == Some(family))
}

/// Whether a subscription names events that exist: an event type, a family's `family.*`, or
/// `*` for everything.
pub fn valid_subscription(pattern: &str) -> bool {
    pattern == "*" || is_catalogued(pattern) || pattern.strip_suffix(".*").is_some_and(is_family)
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
    fn subscriptions_name_events_families_or_everything() {
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
