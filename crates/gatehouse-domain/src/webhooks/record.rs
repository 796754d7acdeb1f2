//! A webhook endpoint as stored, the message it receives, and its deliveries as listed.

use serde::Serialize;

use crate::audit::AuditEvent;

/// One registered endpoint. `secret` and `previous_secret` are sealed (data key purpose
/// `webhook-secret`, AD = the endpoint id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Subscriptions: event types, `family.*`, or `*`.
    pub events: Vec<String>,
    pub active: bool,
    pub secret: Vec<u8>,
    /// The secret before the last rotation, which also signs until `previous_secret_until`.
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When its current run of failed attempts began (`None`: its last attempt succeeded, or
    /// none was made). Kept by the store; ignored on insert and update.
    pub failing_since: Option<i64>,
}

/// What the relay needs of an active endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    pub id: String,
    pub events: Vec<String>,
}

/// The JSON body of a webhook (and of a NATS message): versioned by its shape.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EventMessage {
    /// The event id (`evt_…`), also the `webhook-id`: receivers de-duplicate on it.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub data: serde_json::Value,
}

impl EventMessage {
    /// The message of an audit event: who did it, to what, and the event's details. The
    /// request's address and user agent are not part of it.
    pub fn of(event: &AuditEvent) -> EventMessage {
        let target = match (&event.target_type, &event.target_id) {
            (Some(kind), Some(id)) => serde_json::json!({ "type": kind, "id": id }),
            _ => serde_json::Value::Null,
        };
        EventMessage {
            id: event.id.clone(),
            event_type: event.action.clone(),
            timestamp: rfc3339(event.occurred_at),
            data: serde_json::json!({
                "actor": { "type": event.actor_type, "id": event.actor_id },
                "target": target,
                "organization_id": event.organization_id,
                "details": event.metadata,
            }),
        }
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|time| time.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| seconds.to_string())
}

/// One delivery of a message to an endpoint (an outbox row of the webhook channel) with its
/// last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    /// The outbox row (`/v1/admin/deliveries/{id}/retry` redelivers it).
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    /// `pending`, `sending`, `delivered`, `dead`.
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub next_attempt_at: i64,
    pub last_attempt: Option<DeliveryAttemptView>,
}

/// What the last attempt saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryAttemptView {
    pub at: i64,
    pub duration_ms: i64,
    /// The receiver's HTTP status (`None`: no answer — refused, timed out).
    pub status_code: Option<i64>,
    /// The start of the receiver's answer (at most 1 KiB).
    pub response_body: Option<String>,
    pub error: Option<String>,
}
