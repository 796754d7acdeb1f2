//! The audit trail: what happened, who did it, to what, from where. Events are written by the
//! stores in the same transaction as the change they record, and never carry a secret.

use async_trait::async_trait;
use serde::Serialize;

use crate::principal::{Actor, RequestContext};
use crate::store::StoreError;

/// One recorded event. `action` is a stable dotted name (`user.signed_up`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub occurred_at: i64,
    pub action: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub metadata: serde_json::Value,
}

impl AuditEvent {
    pub fn new(action: &str, actor: &Actor, context: &RequestContext, occurred_at: i64) -> Self {
        Self {
            id: gatehouse_crypto::new_id("evt"),
            occurred_at,
            action: action.to_owned(),
            actor_type: actor.kind().to_owned(),
            actor_id: actor.id().map(str::to_owned),
            target_type: None,
            target_id: None,
            ip: context.ip.clone(),
            user_agent: context.user_agent.clone(),
            request_id: context.request_id.clone(),
            metadata: serde_json::json!({}),
        }
    }

    pub fn target(mut self, target_type: &str, target_id: &str) -> Self {
        self.target_type = Some(target_type.to_owned());
        self.target_id = Some(target_id.to_owned());
        self
    }

    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Filters of the audit log listing; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events whose actor or target is this id.
    pub subject_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub until: Option<i64>,
}

/// A page position: events strictly older than this (time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    pub occurred_at: i64,
    pub id: String,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events on their own (when no other write goes with them).
    async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

/// The admin view of the audit trail: filtered, newest first, cursor-paginated.
pub struct AuditLog {
    store: std::sync::Arc<dyn AuditStore>,
}

/// A page of events and the cursor of the next page.
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

impl AuditLog {
    pub fn new(store: std::sync::Arc<dyn AuditStore>) -> Self {
        Self { store }
    }

    /// `cursor` is the opaque `next_cursor` of the previous page.
    pub async fn list(
        &self,
        _admin: &crate::principal::AdminPrincipal,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AuditPage, crate::DomainError> {
        let after = match cursor {
            Some(text) => Some(parse_cursor(text).ok_or_else(|| {
                crate::DomainError::Validation(vec![crate::FieldIssue::new(
                    "cursor",
                    "invalid",
                    "Use the next_cursor of a previous page.",
                )])
            })?),
            None => None,
        };
        let limit = limit.clamp(1, 200);
        let mut events = self.store.list_audit_events(filter, after.as_ref(), limit + 1).await?;
        let next_cursor = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|event| format!("{}.{}", event.occurred_at, event.id))
        } else {
            None
        };
        Ok(AuditPage { events, next_cursor })
    }
}

fn parse_cursor(text: &str) -> Option<AuditCursor> {
    let (time, id) = text.split_once('.')?;
    let valid_id = id.starts_with("evt_")
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid_id
        .then(|| Some(AuditCursor { occurred_at: time.parse().ok()?, id: id.to_owned() }))
        .flatten()
}
