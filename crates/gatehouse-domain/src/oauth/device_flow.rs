//! The device authorization grant (RFC 8628): a device shows a short user code, the person
//! confirms it at `/device` while signed in, and the device polls the token endpoint.
//! User codes avoid ambiguous characters (no vowels, no 0/O, 1/I/L); polling faster than the
//! interval answers `slow_down` and widens it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use super::client::{ClientRecord, GRANT_DEVICE_CODE};
use super::grants::{TokenResponse, UserGrant};
use super::{OAuthError, OAuthService, requested_explicitly, split_scope};
use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::principal::Principal;
use crate::principal::{Actor, RequestContext};
use crate::store::StoreError;

/// RFC 8628 §6.1: consonants only, so codes spell no words and read unambiguously.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LENGTH: usize = 8;
pub const DEVICE_CODE_TTL_SECONDS: i64 = 600;
pub const DEFAULT_INTERVAL_SECONDS: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    Consumed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Consumed => "consumed",
        }
    }

    pub fn parse(text: &str) -> Option<DeviceStatus> {
        Some(match text {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "consumed" => DeviceStatus::Consumed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodeRecord {
    pub device_code_digest: Vec<u8>,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub status: DeviceStatus,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    /// How the approving user authenticated (RFC 8176, space-separated).
    pub amr: Option<String>,
    pub interval_seconds: i64,
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait DeviceCodeStore: Send + Sync {
    async fn insert_device_code(&self, record: &DeviceCodeRecord) -> Result<(), StoreError>;
    async fn device_code_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<DeviceCodeRecord>, StoreError>;
    async fn device_code_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeRecord>, StoreError>;
    /// Moves a pending code to approved (with the user) or denied; `false` if it was not pending.
    async fn decide_device_code(
        &self,
        user_code: &str,
        status: DeviceStatus,
        user_id: &str,
        auth_time: i64,
        amr: Option<&str>,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Records a poll of a pending code at `now`, deciding atomically whether it came at least
    /// the interval after the previous one: `true` if so; `false` (too fast) widens the
    /// interval by 5 seconds. Of parallel polls inside one interval, exactly one is in time.
    async fn record_device_poll(&self, digest: &[u8], now: i64) -> Result<bool, StoreError>;
    /// Approved → consumed, once; `false` when another poll consumed it first.
    async fn consume_device_code(&self, digest: &[u8]) -> Result<bool, StoreError>;
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// What the `/device` page shows before the person confirms.
#[derive(Debug, Clone)]
pub struct PendingDevice {
    pub user_code: String,
    pub client_name: String,
    pub scopes: Vec<String>,
}

/// Upper-cases and drops separators, so `bcdf-ghjk` and `BCDFGHJK` are the same code.
pub fn normalise_user_code(input: &str) -> String {
    input.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// `BCDFGHJK` → `BCDF-GHJK`, as shown to people.
pub fn display_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LENGTH {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

fn new_user_code() -> String {
    let bytes = gatehouse_crypto::random_bytes::<USER_CODE_LENGTH>();
    // 256 is not a multiple of 20; the bias (at most 1/13 per character) costs a fraction of a
    // bit of the ~34.6 bits, and codes live 10 minutes behind a rate-limited, signed-in page.
    bytes
        .iter()
        .map(|byte| USER_CODE_ALPHABET[usize::from(*byte) % USER_CODE_ALPHABET.len()] as char)
        .collect()
}

/// The device authorization grant (RFC 8628): a device starts it, a person approves it at
/// `/device`, the device polls the token endpoint. Tokens come from the OAuth service's grant.
pub struct DeviceFlowService {
    oauth: Arc<OAuthService>,
    store: Arc<dyn DeviceCodeStore>,
}

impl DeviceFlowService {
    pub fn new(oauth: Arc<OAuthService>, store: Arc<dyn DeviceCodeStore>) -> Self {
        Self { oauth, store }
    }

    /// `POST /oauth2/device_authorization`.
    pub async fn start_device_authorization(
        &self,
        client: &ClientRecord,
        scope: Option<&str>,
    ) -> Result<DeviceAuthorization, OAuthError> {
        if !client.allows_grant(GRANT_DEVICE_CODE) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the device flow".into(),
            ));
        }
        let scopes = match scope {
            Some(scope) => split_scope(scope),
            None => {
                client.scopes.iter().filter(|scope| !requested_explicitly(scope)).cloned().collect()
            }
        };
        if let Some(unknown) = scopes.iter().find(|scope| !client.scopes.contains(scope)) {
            return Err(OAuthError::InvalidScope(format!(
                "scope {unknown} is not allowed for this client"
            )));
        }
        let now = self.oauth.clock.now();
        let device_code = gatehouse_crypto::random_token();
        // A user-code collision with a live code is astronomically unlikely but would be a
        // unique violation; try a few times.
        for _ in 0..5 {
            let user_code = new_user_code();
            let record = DeviceCodeRecord {
                device_code_digest: self
                    .oauth
                    .code_digester
                    .digest(device_code.as_bytes())
                    .to_vec(),
                user_code: user_code.clone(),
                client_id: client.client_id.clone(),
                scope: scopes.join(" "),
                status: DeviceStatus::Pending,
                user_id: None,
                auth_time: None,
                amr: None,
                interval_seconds: DEFAULT_INTERVAL_SECONDS,
                last_polled_at: None,
                created_at: now,
                expires_at: now + DEVICE_CODE_TTL_SECONDS,
            };
            match self.store.insert_device_code(&record).await {
                Ok(()) => {
                    let base = self.oauth.settings.issuer.trim_end_matches('/');
                    return Ok(DeviceAuthorization {
                        device_code,
                        verification_uri: format!("{base}/device"),
                        verification_uri_complete: format!(
                            "{base}/device?user_code={}",
                            display_user_code(&user_code)
                        ),
                        user_code: display_user_code(&user_code),
                        expires_in: DEVICE_CODE_TTL_SECONDS,
                        interval: DEFAULT_INTERVAL_SECONDS,
                    });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(OAuthError::ServerError("could not allocate a user code".into()))
    }

    /// The pending request behind a user code, for the confirmation page.
    pub async fn pending_device(
        &self,
        user_code: &str,
    ) -> Result<Option<PendingDevice>, DomainError> {
        let code = normalise_user_code(user_code);
        if code.len() != USER_CODE_LENGTH {
            return Ok(None);
        }
        let Some(record) = self.store.device_code_by_user_code(&code).await? else {
            return Ok(None);
        };
        if record.status != DeviceStatus::Pending || record.expires_at <= self.oauth.clock.now() {
            return Ok(None);
        }
        let Some(client) = self.oauth.store.client(&record.client_id).await? else {
            return Ok(None);
        };
        Ok(Some(PendingDevice {
            user_code: display_user_code(&code),
            client_name: client.name,
            scopes: split_scope(&record.scope),
        }))
    }

    /// The signed-in person approves or denies the device. `false` when the code is unknown,
    /// expired or already decided.
    pub async fn decide_device(
        &self,
        user_code: &str,
        approve: bool,
        principal: &Principal,
        context: &RequestContext,
    ) -> Result<bool, DomainError> {
        if principal.session.impersonator.is_some() {
            return Err(DomainError::Impersonating);
        }
        let code = normalise_user_code(user_code);
        let Some(record) = self.store.device_code_by_user_code(&code).await? else {
            return Ok(false);
        };
        let now = self.oauth.clock.now();
        if record.status != DeviceStatus::Pending || record.expires_at <= now {
            return Ok(false);
        }
        let status = if approve { DeviceStatus::Approved } else { DeviceStatus::Denied };
        let event = AuditEvent::new(
            if approve { "oauth.device_approved" } else { "oauth.device_denied" },
            &Actor::User(principal.user.id.clone()),
            context,
            now,
        )
        .target("client", &record.client_id);
        let auth_time = principal.session.auth_time.unwrap_or(principal.session.created_at);
        Ok(self
            .store
            .decide_device_code(
                &code,
                status,
                &principal.user.id,
                auth_time,
                principal.session.amr.as_deref(),
                &[event],
            )
            .await?)
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
    pub async fn exchange_device_code(
        &self,
        client: &ClientRecord,
        device_code: &str,
        dpop_jkt: Option<&str>,
        context: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allows_grant(GRANT_DEVICE_CODE) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the device flow".into(),
            ));
        }
        let digest = self.oauth.code_digester.digest(device_code.as_bytes());
        let record = self
            .store
            .device_code_by_digest(&digest)
            .await?
            .filter(|record| record.client_id == client.client_id)
            .ok_or_else(|| OAuthError::InvalidGrant("unknown device_code".into()))?;
        let now = self.oauth.clock.now();
        if record.expires_at <= now {
            return Err(OAuthError::ExpiredToken);
        }
        match record.status {
            DeviceStatus::Pending => {
                let in_time = self.store.record_device_poll(&digest, now).await?;
                Err(if in_time { OAuthError::AuthorizationPending } else { OAuthError::SlowDown })
            }
            DeviceStatus::Denied => Err(OAuthError::AccessDenied),
            DeviceStatus::Consumed => {
                Err(OAuthError::InvalidGrant("the device_code was already used".into()))
            }
            DeviceStatus::Approved => {
                if !self.store.consume_device_code(&digest).await? {
                    return Err(OAuthError::InvalidGrant(
                        "the device_code was already used".into(),
                    ));
                }
                let user_id = record
                    .user_id
                    .clone()
                    .ok_or_else(|| OAuthError::ServerError("approved without user".into()))?;
                let user = self
                    .oauth
                    .users
                    .user_by_id(&user_id)
                    .await?
                    .ok_or_else(|| OAuthError::InvalidGrant("the user is gone".into()))?;
                if user.suspended_at.is_some() {
                    return Err(OAuthError::InvalidGrant("the user is suspended".into()));
                }
                self.oauth
                    .grant_for_user(
                        client,
                        &user,
                        UserGrant {
                            scope: &record.scope,
                            auth_time: record.auth_time.unwrap_or(now),
                            amr: record.amr.clone(),
                            nonce: None,
                            grant_type: GRANT_DEVICE_CODE,
                            spend_code: None,
                            // The device page offers no choice: the user's only one, if any.
                            organization_id: None,
                            dpop_jkt,
                            resources: Vec::new(),
                            resource: None,
                        },
                        context,
                    )
                    .await
                    .map(|(response, _)| response)
            }
        }
    }
}

#[cfg(test)]
mod tests;
