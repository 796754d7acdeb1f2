//! Ceremonies between their two requests: a random id for the client, its keyed digest and
//! the webauthn-rs state for the store, taken once.

use serde_json::Value;

use crate::error::{DomainError, PasskeyProblem};

use super::PasskeyService;
use super::record::{CeremonyKind, PasskeyCeremonyRecord};

/// What a ceremony's first request answers.
#[derive(Debug, Clone)]
pub struct PasskeyCeremony {
    pub ceremony_id: String,
    /// `{"publicKey": …}` (WebAuthn Level 3 JSON).
    pub options: Value,
}

/// Longest ceremony id we bother to look up.
const MAX_CEREMONY_ID_LENGTH: usize = 128;

/// The WebAuthn user handle of a user: the UUID of their id (`usr_<32 hex>`), no PII.
pub fn user_handle(user_id: &str) -> Result<uuid::Uuid, DomainError> {
    let hex = user_id.rsplit('_').next().unwrap_or(user_id);
    uuid::Uuid::try_parse(hex)
        .map_err(|_| DomainError::Internal(format!("user id {user_id} has no UUID for WebAuthn")))
}

/// A stored base64url credential id as bytes.
pub(crate) fn credential_id_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

pub(crate) fn state_text(state: Vec<u8>) -> Result<String, DomainError> {
    String::from_utf8(state).map_err(|_| DomainError::Internal("ceremony state is not text".into()))
}

impl PasskeyService {
    pub(crate) async fn open_ceremony(
        &self,
        mut record: PasskeyCeremonyRecord,
        options: Value,
    ) -> Result<PasskeyCeremony, DomainError> {
        let ceremony_id = gatehouse_crypto::random_token();
        record.id_digest = self.digester.digest(ceremony_id.as_bytes()).to_vec();
        self.ceremonies.put_ceremony(&record).await?;
        Ok(PasskeyCeremony { ceremony_id, options })
    }

    /// Takes the ceremony (single use) and checks it is of `kind` and alive.
    pub(crate) async fn take_ceremony(
        &self,
        ceremony_id: &str,
        kind: CeremonyKind,
    ) -> Result<PasskeyCeremonyRecord, DomainError> {
        if ceremony_id.is_empty() || ceremony_id.len() > MAX_CEREMONY_ID_LENGTH {
            return Err(DomainError::Passkey(PasskeyProblem::CeremonyInvalid));
        }
        let digest = self.digester.digest(ceremony_id.as_bytes());
        let Some(record) = self.ceremonies.take_ceremony(&digest).await? else {
            return Err(DomainError::Passkey(PasskeyProblem::CeremonyInvalid));
        };
        if record.kind != kind {
            return Err(DomainError::Passkey(PasskeyProblem::CeremonyInvalid));
        }
        if record.expires_at <= self.clock.now() {
            return Err(DomainError::Passkey(PasskeyProblem::CeremonyExpired));
        }
        Ok(record)
    }
}
