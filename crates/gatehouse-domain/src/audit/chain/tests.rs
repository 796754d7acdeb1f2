//! The chain's encoding and verifier on rows built in memory.

use super::*;
use crate::principal::{Actor, RequestContext};

fn event(number: i64) -> AuditEvent {
    let context = RequestContext {
        ip: Some("203.0.113.9".into()),
        user_agent: Some("curl/8".into()),
        ..RequestContext::default()
    };
    AuditEvent::new("user.updated", &Actor::User("usr_1".into()), &context, 1_000 + number)
        .target("user", "usr_1")
        .metadata(serde_json::json!({ "n": number, "email": "ada@example.test", "z": [1, {"b": 2, "a": 1}] }))
}

/// `count` rows chained from genesis.
fn chain(count: i64) -> Vec<ChainedEvent> {
    let mut head = ChainHead::genesis();
    (1..=count)
        .map(|number| {
            let event = event(number);
            let link = link(&head, &event);
            head = ChainHead { seq: link.seq, hash: link.hash.clone() };
            ChainedEvent {
                event,
                seq: link.seq,
                hash: link.hash,
                personal_digest: link.personal_digest,
                personal_salt: Some(link.personal_salt),
                personal_erased_at: None,
            }
        })
        .collect()
}

fn verify(rows: &[ChainedEvent]) -> Result<u64, ChainBreak> {
    let mut verifier = ChainVerifier::starting_at(ChainHead::genesis());
    for row in rows {
        verifier.check(row)?;
    }
    Ok(verifier.checked())
}

#[test]
fn an_intact_chain_verifies_and_reaches_its_head() {
    let rows = chain(5);
    assert_eq!(verify(&rows), Ok(5));
    let mut verifier = ChainVerifier::starting_at(ChainHead::genesis());
    rows.iter().for_each(|row| verifier.check(row).unwrap());
    let head = ChainHead { seq: 5, hash: rows[4].hash.clone() };
    assert_eq!(verifier.finish(&head), Ok(()));
    // The head further on than the rows: the end was cut off.
    let ahead = ChainHead { seq: 6, hash: GENESIS_HASH.into() };
    assert!(matches!(verifier.finish(&ahead).unwrap_err().kind, BreakKind::Truncated { .. }));
}

#[test]
fn an_edited_row_breaks_the_chain_at_that_row() {
    let mut rows = chain(4);
    rows[2].event.action = "user.deleted".into();
    let broken = verify(&rows).unwrap_err();
    assert_eq!(
        (broken.event_id.as_deref(), broken.kind),
        (Some(rows[2].event.id.as_str()), BreakKind::Hash)
    );
    // Editing a personal field breaks it too, through the digest.
    let mut rows = chain(4);
    rows[1].event.ip = Some("198.51.100.1".into());
    assert_eq!(verify(&rows).unwrap_err().kind, BreakKind::PersonalFields);
}

#[test]
fn a_removed_row_and_a_reordered_row_are_found() {
    let mut rows = chain(4);
    let removed = rows.remove(1);
    let broken = verify(&rows).unwrap_err();
    assert_eq!(broken.kind, BreakKind::Gap { expected_seq: removed.seq });
    assert_eq!(broken.event_id.as_deref(), Some(rows[1].event.id.as_str()));

    // Two rows swap places (their positions too, so no gap shows): the hash gives it away.
    let mut rows = chain(4);
    rows.swap(1, 2);
    let (first, second) = (rows[1].seq, rows[2].seq);
    rows[1].seq = second;
    rows[2].seq = first;
    assert_eq!(verify(&rows).unwrap_err().kind, BreakKind::Hash);
}

#[test]
fn erasing_the_personal_fields_keeps_the_chain_verifiable() {
    let mut rows = chain(3);
    erase_personal(&mut rows[1].event);
    rows[1].personal_salt = None;
    rows[1].personal_erased_at = Some(2_000);
    assert_eq!(rows[1].event.metadata.get("email"), None);
    assert_eq!(rows[1].event.metadata["n"], 2);
    assert_eq!(verify(&rows), Ok(3));
    // An "erased" row that still holds a personal field does not pass.
    rows[1].event.user_agent = Some("curl/8".into());
    assert_eq!(verify(&rows).unwrap_err().kind, BreakKind::PersonalFields);
}

#[test]
fn the_encoding_ignores_key_order_and_separates_fields() {
    let a = serde_json::json!({ "b": { "y": 1, "x": 2 }, "a": [3] });
    assert_eq!(canonical_json(&a), r#"{"a":[3],"b":{"x":2,"y":1}}"#);
    // Absent and empty differ; moving a character between fields changes the hash.
    let mut one = event(1);
    one.target_id = None;
    let mut two = one.clone();
    two.target_id = Some(String::new());
    assert_ne!(row_hash(GENESIS_HASH, 1, &one, "d"), row_hash(GENESIS_HASH, 1, &two, "d"));
    let mut three = one.clone();
    three.actor_type = "use".into();
    three.actor_id = Some("rusr_1".into());
    assert_ne!(row_hash(GENESIS_HASH, 1, &one, "d"), row_hash(GENESIS_HASH, 1, &three, "d"));
}

#[test]
fn a_known_row_has_a_known_hash() {
    // Pinned, so a change of the encoding (which would orphan every stored chain) fails here.
    let event = AuditEvent {
        id: "evt_1".into(),
        occurred_at: 1_700_000_000,
        action: "user.created".into(),
        actor_type: "user".into(),
        actor_id: Some("usr_1".into()),
        target_type: Some("user".into()),
        target_id: Some("usr_1".into()),
        organization_id: None,
        ip: Some("203.0.113.9".into()),
        user_agent: None,
        request_id: None,
        metadata: serde_json::json!({}),
    };
    let digest = personal_digest(&event, "00");
    let hash = row_hash(GENESIS_HASH, 1, &event, &digest);
    assert_eq!(digest.len(), 64);
    assert_eq!(hash, PINNED_HASH, "digest {digest}");
}

// Computed independently (Python hashlib over the same length-prefixed fields).
const PINNED_HASH: &str = "45d7252c74959c79eab79a987daf488116acb56627bedc254d3fa7bd4ccb13a0";
