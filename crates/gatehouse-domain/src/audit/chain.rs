//! The tamper-evident chain over the audit trail: each chained row's hash commits to the
//! previous row's hash, its position and a canonical encoding of the row, so editing,
//! removing or reordering a row breaks the chain at that row.
//!
//! Rules:
//! - The encoding is independent of the backend: length-prefixed fields (absent ≠ empty) and
//!   the metadata as canonical JSON (keys sorted at every level), so the chain survives an
//!   export and import between SQLite and PostgreSQL.
//! - Personal fields (IP address, user agent, the metadata keys of [`PERSONAL_METADATA_KEYS`])
//!   enter the hash only through `personal_digest`: SHA-256 over a random per-row salt and
//!   the fields. Erasing them (account deletion, retention) keeps the stored digest and drops
//!   the salt, so the chain still verifies and the digest can no longer be linked to a guess.
//! - Rows are chained after they commit, in the order the chainer finds them (oldest first),
//!   under the chain head's lock; the position (`seq`) is the chainer's, so a transaction that
//!   commits late is chained late rather than leaving a hole.
//! - A retention sweep removes a prefix of the chain only, and first records a checkpoint (the
//!   last removed row's position and hash) under a keyed MAC; verification starts from it.

use serde_json::Value;

use super::AuditEvent;

/// The hash before the first row (and the head of an empty chain).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Metadata keys holding personal data (addresses, phone numbers): digested, never hashed in
/// clear, and removed by an erasure.
pub const PERSONAL_METADATA_KEYS: &[&str] = &["email", "emails", "phone"];

/// The label that starts every encoding: a version, so a later encoding cannot collide.
const ENCODING: &str = "gatehouse.audit.v1";

/// What the chainer stores beside a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: i64,
    pub hash: String,
    pub personal_digest: String,
    pub personal_salt: String,
}

/// A chained row as read back: the event and what the chain stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedEvent {
    pub event: AuditEvent,
    pub seq: i64,
    pub hash: String,
    pub personal_digest: String,
    /// `None` once the personal fields were erased.
    pub personal_salt: Option<String>,
    pub personal_erased_at: Option<i64>,
}

/// The last chained position and hash (`GENESIS_HASH` at 0 for an empty chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS_HASH.to_owned() }
    }
}

/// Chains `event` after `previous`, with a fresh salt for its personal digest.
pub fn link(previous: &ChainHead, event: &AuditEvent) -> ChainLink {
    let salt = hex(&gatehouse_crypto::token::random_bytes::<16>());
    let personal_digest = personal_digest(event, &salt);
    let seq = previous.seq.saturating_add(1);
    let hash = row_hash(&previous.hash, seq, event, &personal_digest);
    ChainLink { seq, hash, personal_digest, personal_salt: salt }
}

/// SHA-256 (hex) over the salt and the personal fields.
pub fn personal_digest(event: &AuditEvent, salt: &str) -> String {
    let mut out = Vec::with_capacity(128);
    field(&mut out, Some(ENCODING));
    field(&mut out, Some(salt));
    field(&mut out, event.ip.as_deref());
    field(&mut out, event.user_agent.as_deref());
    field(&mut out, Some(&canonical_json(&personal_metadata(&event.metadata))));
    hex(&gatehouse_crypto::digest::content_sha256(&out))
}

/// SHA-256 (hex) over the previous hash, the position and the row's non-personal fields.
pub fn row_hash(
    previous_hash: &str,
    seq: i64,
    event: &AuditEvent,
    personal_digest: &str,
) -> String {
    let mut out = Vec::with_capacity(256);
    field(&mut out, Some(ENCODING));
    field(&mut out, Some(previous_hash));
    field(&mut out, Some(&seq.to_string()));
    field(&mut out, Some(&event.id));
    field(&mut out, Some(&event.occurred_at.to_string()));
    field(&mut out, Some(&event.action));
    field(&mut out, Some(&event.actor_type));
    field(&mut out, event.actor_id.as_deref());
    field(&mut out, event.target_type.as_deref());
    field(&mut out, event.target_id.as_deref());
    field(&mut out, event.organization_id.as_deref());
    field(&mut out, event.request_id.as_deref());
    field(&mut out, Some(&canonical_json(&without_personal(&event.metadata))));
    field(&mut out, Some(personal_digest));
    hex(&gatehouse_crypto::digest::content_sha256(&out))
}

/// The event with its personal fields erased: no IP, no user agent, no personal metadata.
pub fn erase_personal(event: &mut AuditEvent) {
    event.ip = None;
    event.user_agent = None;
    event.metadata = without_personal(&event.metadata);
}

/// Whether the event still carries any personal field.
pub fn has_personal(event: &AuditEvent) -> bool {
    event.ip.is_some()
        || event.user_agent.is_some()
        || personal_metadata(&event.metadata).as_object().is_some_and(|map| !map.is_empty())
}

/// The text a retention checkpoint's MAC covers.
pub fn checkpoint_message(seq: i64, hash: &str, removed: i64, created_at: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    field(&mut out, Some("gatehouse.audit.checkpoint.v1"));
    field(&mut out, Some(&seq.to_string()));
    field(&mut out, Some(hash));
    field(&mut out, Some(&removed.to_string()));
    field(&mut out, Some(&created_at.to_string()));
    out
}

/// One field: `0` when absent, else `1`, the length as 8 bytes big-endian, the bytes.
fn field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            out.extend_from_slice(&(text.len() as u64).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

fn personal_metadata(metadata: &Value) -> Value {
    let mut personal = serde_json::Map::new();
    if let Some(map) = metadata.as_object() {
        for key in PERSONAL_METADATA_KEYS {
            if let Some(value) = map.get(*key) {
                personal.insert((*key).to_owned(), value.clone());
            }
        }
    }
    Value::Object(personal)
}

fn without_personal(metadata: &Value) -> Value {
    match metadata {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !PERSONAL_METADATA_KEYS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// JSON with every object's keys in byte order, whatever order the map kept.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for key in keys {
                    if let Some(inner) = map.get(key) {
                        out.insert(key.clone(), sorted(inner));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Why the chain breaks at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The row's position is not the next one: rows before it were removed (or it was moved).
    Gap { expected_seq: i64 },
    /// The personal fields do not match their digest (edited), or an erased row still holds some.
    PersonalFields,
    /// The row's hash does not match its content and the previous hash (edited or reordered).
    Hash,
    /// The chain ends before the chain head says it does (rows at its end were removed).
    Truncated { head_seq: i64 },
    /// The retention checkpoint's MAC does not verify.
    Checkpoint,
}

/// The first row at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The row's event id (`None` for a truncated chain or a bad checkpoint).
    pub event_id: Option<String>,
    pub seq: i64,
    pub kind: BreakKind,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = self.event_id.as_deref().unwrap_or("-");
        match &self.kind {
            BreakKind::Gap { expected_seq } => write!(
                f,
                "row {row} (position {}): expected position {expected_seq}; rows were removed or moved",
                self.seq
            ),
            BreakKind::PersonalFields => write!(
                f,
                "row {row} (position {}): its personal fields do not match their digest",
                self.seq
            ),
            BreakKind::Hash => write!(
                f,
                "row {row} (position {}): its hash does not match its content and the previous row",
                self.seq
            ),
            BreakKind::Truncated { head_seq } => write!(
                f,
                "the chain ends at position {} but its head is at {head_seq}: rows at the end were removed",
                self.seq
            ),
            BreakKind::Checkpoint => {
                write!(f, "the retention checkpoint at position {} does not verify", self.seq)
            }
        }
    }
}

/// Walks chained rows in position order and stops at the first break.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    previous: ChainHead,
    checked: u64,
}

impl ChainVerifier {
    /// From the start of the chain, or from a retention checkpoint (the last removed row).
    pub fn starting_at(previous: ChainHead) -> Self {
        Self { previous, checked: 0 }
    }

    /// How many rows passed.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last row that passed (or the starting point).
    pub fn last(&self) -> &ChainHead {
        &self.previous
    }

    /// Checks the next row.
    pub fn check(&mut self, row: &ChainedEvent) -> Result<(), ChainBreak> {
        let broken = |kind| ChainBreak { event_id: Some(row.event.id.clone()), seq: row.seq, kind };
        let expected_seq = self.previous.seq.saturating_add(1);
        if row.seq != expected_seq {
            return Err(broken(BreakKind::Gap { expected_seq }));
        }
        let personal_intact = match (&row.personal_salt, row.personal_erased_at) {
            (Some(salt), None) => personal_digest(&row.event, salt) == row.personal_digest,
            (None, Some(_)) => !has_personal(&row.event),
            _ => false,
        };
        if !personal_intact {
            return Err(broken(BreakKind::PersonalFields));
        }
        let hash = row_hash(&self.previous.hash, row.seq, &row.event, &row.personal_digest);
        if hash != row.hash {
            return Err(broken(BreakKind::Hash));
        }
        self.previous = ChainHead { seq: row.seq, hash };
        self.checked += 1;
        Ok(())
    }

    /// After the last row: the chain must reach its head.
    pub fn finish(&self, head: &ChainHead) -> Result<(), ChainBreak> {
        if self.previous != *head {
            return Err(ChainBreak {
                event_id: None,
                seq: self.previous.seq,
                kind: BreakKind::Truncated { head_seq: head.seq },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
