//! The audit export: rows oldest first in keyset batches, as JSON Lines or CSV, so an export of
//! millions of rows holds one batch in memory at a time (the HTTP route streams the batches,
//! `gatehouse audit export` writes them).

use super::{AuditCursor, AuditEvent, AuditFilter, AuditLog};
use crate::DomainError;
use crate::principal::AdminPrincipal;

/// Rows per batch.
pub const EXPORT_BATCH: u32 = 1_000;

/// The CSV columns, in order (`metadata` as JSON text).
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "organization_id",
    "ip",
    "user_agent",
    "request_id",
    "metadata",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    /// `jsonl` or `csv`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl => "application/jsonl",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What comes before the first row (the CSV header line).
    pub fn header(self) -> String {
        match self {
            Self::Jsonl => String::new(),
            Self::Csv => format!("{}\r\n", CSV_COLUMNS.join(",")),
        }
    }

    /// One row, with its line end.
    pub fn line(self, event: &AuditEvent) -> String {
        match self {
            Self::Jsonl => {
                let mut line = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
                line.push('\n');
                line
            }
            Self::Csv => {
                let occurred_at = event.occurred_at.to_string();
                let metadata = event.metadata.to_string();
                let fields = [
                    Some(event.id.as_str()),
                    Some(occurred_at.as_str()),
                    Some(event.action.as_str()),
                    Some(event.actor_type.as_str()),
                    event.actor_id.as_deref(),
                    event.target_type.as_deref(),
                    event.target_id.as_deref(),
                    event.organization_id.as_deref(),
                    event.ip.as_deref(),
                    event.user_agent.as_deref(),
                    event.request_id.as_deref(),
                    Some(metadata.as_str()),
                ];
                let mut line: String = fields
                    .iter()
                    .map(|field| csv_field(field.unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",");
                line.push_str("\r\n");
                line
            }
        }
    }
}

/// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// One batch of an export: the rows' text and where the next batch starts (`None`: done).
pub struct ExportBatch {
    pub text: String,
    pub rows: usize,
    pub next: Option<AuditCursor>,
}

impl AuditLog {
    /// The batch after `after` (from the start when `None`), oldest first.
    pub async fn export_batch(
        &self,
        _admin: &AdminPrincipal,
        filter: &AuditFilter,
        format: ExportFormat,
        after: Option<&AuditCursor>,
    ) -> Result<ExportBatch, DomainError> {
        let events = self.store.export_audit_events(filter, after, EXPORT_BATCH).await?;
        let mut text = String::with_capacity(events.len() * 256);
        for event in &events {
            text.push_str(&format.line(event));
        }
        let next = (events.len() == EXPORT_BATCH as usize)
            .then(|| {
                events.last().map(|event| AuditCursor {
                    occurred_at: event.occurred_at,
                    id: event.id.clone(),
                })
            })
            .flatten();
        Ok(ExportBatch { text, rows: events.len(), next })
    }

    /// How many rows match `filter` (for a progress bar).
    pub async fn count(
        &self,
        _admin: &AdminPrincipal,
        filter: &AuditFilter,
    ) -> Result<u64, DomainError> {
        Ok(self.store.count_audit_events(filter).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Actor, RequestContext};

    #[test]
    fn csv_quotes_what_needs_it_and_jsonl_is_one_line() {
        let context = RequestContext {
            user_agent: Some("Mozilla/5.0 (X11, \"Linux\")".into()),
            ..RequestContext::default()
        };
        let event = AuditEvent::new("user.updated", &Actor::User("usr_1".into()), &context, 7)
            .metadata(serde_json::json!({ "a": "b,c" }));
        let line = ExportFormat::Csv.line(&event);
        assert!(line.ends_with("\r\n"));
        assert!(line.contains(",\"Mozilla/5.0 (X11, \"\"Linux\"\")\","), "{line}");
        assert!(line.contains("\"{\"\"a\"\":\"\"b,c\"\"}\""), "{line}");
        assert_eq!(ExportFormat::Csv.header().trim_end().split(',').count(), CSV_COLUMNS.len());
        let json = ExportFormat::Jsonl.line(&event);
        assert_eq!(json.matches('\n').count(), 1);
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["action"], "user.updated");
    }
}
