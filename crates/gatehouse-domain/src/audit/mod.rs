//! The audit trail: what happened, who did it, to what, from where. Events are written by the
//! stores in the same transaction as the change they record, and never carry a secret.
//! `chain` makes the trail tamper-evident; `AuditLog` is the admin's search, export and check.

pub mod chain;
pub mod export;
mod integrity;

pub use integrity::{AUDIT_CHECKPOINT_DIGEST_PURPOSE, AuditIntegrity, VerifyReport};

use async_trait::async_trait;
use serde::Serialize;

use crate::principal::{Actor, RequestContext};
use crate::store::StoreError;

/// One recorded event. `action` is a stable dotted name (`user.created`; see [`crate::events`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub occurred_at: i64,
    pub action: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The organization the event concerns (set by `target("organization", ..)` or
    /// `organization(..)`), for the audit search.
    pub organization_id: Option<String>,
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
            organization_id: None,
            ip: context.ip.clone(),
            user_agent: context.user_agent.clone(),
            request_id: context.request_id.clone(),
            metadata: serde_json::json!({}),
        }
    }

    /// What the event happened to; an organization target is also the event's organization.
    pub fn target(mut self, target_type: &str, target_id: &str) -> Self {
        self.target_type = Some(target_type.to_owned());
        self.target_id = Some(target_id.to_owned());
        if target_type == "organization" {
            self.organization_id = Some(target_id.to_owned());
        }
        self
    }

    /// The organization the event concerns when it is not the target (an organization's API key).
    pub fn organization(mut self, organization_id: &str) -> Self {
        self.organization_id = Some(organization_id.to_owned());
        self
    }

    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Filters of the audit log search; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events whose actor or target is this id.
    pub subject_id: Option<String>,
    /// Events whose actor is this id.
    pub actor_id: Option<String>,
    /// Events whose target is this id.
    pub target_id: Option<String>,
    pub action: Option<String>,
    /// Events from this client IP address (as recorded).
    pub ip: Option<String>,
    pub organization_id: Option<String>,
    /// From this time on (inclusive).
    pub from: Option<i64>,
    /// Before this time (exclusive).
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
    /// How many events match `filter`.
    async fn count_audit_events(&self, filter: &AuditFilter) -> Result<u64, StoreError>;
    /// Oldest first, strictly after `after` (the export's keyset pages).
    async fn export_audit_events(
        &self,
        filter: &AuditFilter,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

/// A retention checkpoint: the last row a sweep removed (its position and hash), how many it
/// removed, and a MAC under the audit checkpoint data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub seq: i64,
    pub hash: String,
    pub removed: i64,
    pub created_at: i64,
    pub mac: String,
}

/// Where the chain stands: its head, the newest retention checkpoint, and the rows not chained
/// yet (how many, and the time of the oldest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChainState {
    pub head: chain::ChainHead,
    pub checkpoint: Option<AuditCheckpoint>,
    pub unchained: i64,
    pub oldest_unchained_at: Option<i64>,
}

/// The chain's port: chaining, reading it back, erasure and retention.
#[async_trait]
pub trait AuditChainStore: Send + Sync {
    /// Chains at most `limit` unchained rows, oldest first, after the head, under the head's
    /// lock (one chainer at a time across instances); answers how many it chained.
    async fn chain_audit_events(&self, limit: u32) -> Result<u64, StoreError>;
    /// Chained rows with a position after `after_seq`, in position order.
    async fn chained_audit_events(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<chain::ChainedEvent>, StoreError>;
    async fn audit_chain_state(&self) -> Result<AuditChainState, StoreError>;
    /// Erases the personal fields (`chain::erase_personal`) of every event whose actor or
    /// target is `subject_id`; answers how many rows changed.
    async fn erase_audit_personal_fields(
        &self,
        subject_id: &str,
        at: i64,
    ) -> Result<u64, StoreError>;
    /// The longest prefix of the chain (at most `limit` rows from its start) whose rows all
    /// happened before `cutoff`: its last row and length; `None` when empty.
    async fn audit_retention_prefix(
        &self,
        cutoff: i64,
        limit: u32,
    ) -> Result<Option<(chain::ChainHead, i64)>, StoreError>;
    /// Records `checkpoint` and removes the chained rows up to its position, in one
    /// transaction; answers how many rows went.
    async fn remove_audit_prefix(&self, checkpoint: &AuditCheckpoint) -> Result<u64, StoreError>;
    /// The pending erasure requests (written with an account's deletion): up to `limit`
    /// (subject id, time of the request), oldest first.
    async fn audit_erasure_requests(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError>;
    /// Drops the request for `subject_id` if it was made at or before `requested_before`.
    async fn drop_audit_erasure_request(
        &self,
        subject_id: &str,
        requested_before: i64,
    ) -> Result<(), StoreError>;
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

impl AuditLog {
    /// The signed-in user's own events (as actor or target), newest first, up to `limit`
    /// (at most 1 000): what their data export carries.
    pub async fn own_events(
        &self,
        principal: &crate::principal::Principal,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, crate::DomainError> {
        let filter =
            AuditFilter { subject_id: Some(principal.user.id.clone()), ..AuditFilter::default() };
        Ok(self.store.list_audit_events(&filter, None, limit.clamp(1, 1000)).await?)
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
