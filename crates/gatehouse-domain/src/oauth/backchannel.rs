//! OpenID Connect Back-Channel Logout 1.0: a client that registered a `backchannel_logout_uri`
//! is told, server to server, when a session it holds ends — a logout token (a JWT signed with
//! the ID-token keys: `iss`, `aud` = the client, `iat`, `exp`, `jti`, `sub`, `sid` = the ID
//! token's `sid`, the back-channel logout event, never a `nonce`) `POST`ed as the form field
//! `logout_token`.
//!
//! Rules:
//! - Every way an OAuth session ends counts (RP-initiated logout, the user or an admin revoking
//!   it, a password change, a suspension, consent taken back, refresh-token reuse): the
//!   announcer ([`BackchannelLogout::queue_once`]) finds sessions of such clients revoked and
//!   not yet announced, and turns them into outbox rows in one transaction with marking them
//!   announced — so a notice is queued once, survives a restart, and travels with the outbox's
//!   retries. Instances share the work (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
//! - Single logout: when a browser session ends, the sessions of back-channel clients opened
//!   from it (through an authorization code issued in it) end with it (the store's
//!   `revoke_session`), so each of those clients is told.
//! - A revocation older than [`NOTICE_WINDOW_SECONDS`] is not announced (a URI registered
//!   later does not flood its receiver with old logouts). Expiry is not a logout.
//! - The token is signed at delivery time, so its short `exp` counts from the attempt; the
//!   URI is read then too (a client deleted or no longer taking part is told nothing), and the
//!   call follows the outbound SSRF rule at each attempt (the delivery channel).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::store::OAuthStore;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::notify::{Notifier, OutboxRecord};
use crate::store::StoreError;
use crate::tokens::TokenService;

/// The `outbox.channel` of logout notices.
pub const BACKCHANNEL_LOGOUT_CHANNEL: &str = "backchannel_logout";
/// The event a logout token carries (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Only revocations this recent are announced.
pub const NOTICE_WINDOW_SECONDS: i64 = 600;
/// A logout token's lifetime (the specification recommends at most two minutes).
const LOGOUT_TOKEN_TTL_SECONDS: i64 = 120;
const QUEUE_BATCH: u32 = 100;

/// One ended session a client is to be told about: the outbox payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutNotice {
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
}

/// Makes the outbox rows of a batch of notices.
pub type SealNotices<'a> = &'a (dyn Fn(&[LogoutNotice]) -> Vec<OutboxRecord> + Send + Sync);

#[async_trait]
pub trait LogoutNoticeStore: Send + Sync {
    /// In one transaction: up to `limit` sessions of clients with a back-channel logout URI,
    /// revoked at or after `since` and not announced yet; writes the rows `seal` makes of them
    /// and marks them announced at `now`. Answers how many it announced.
    async fn queue_logout_notices(
        &self,
        since: i64,
        limit: u32,
        now: i64,
        seal: SealNotices<'_>,
    ) -> Result<usize, StoreError>;
}

/// One attempt's call: where, and the freshly signed token.
#[derive(Debug, Clone)]
pub struct LogoutDelivery {
    pub uri: String,
    pub logout_token: String,
}

pub struct BackchannelLogout {
    store: Arc<dyn LogoutNoticeStore>,
    clients: Arc<dyn OAuthStore>,
    tokens: Arc<TokenService>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
    issuer: String,
}

impl BackchannelLogout {
    pub fn new(
        store: Arc<dyn LogoutNoticeStore>,
        clients: Arc<dyn OAuthStore>,
        tokens: Arc<TokenService>,
        notifier: Arc<Notifier>,
        clock: Arc<dyn Clock>,
        issuer: &str,
    ) -> BackchannelLogout {
        BackchannelLogout { store, clients, tokens, notifier, clock, issuer: issuer.to_owned() }
    }

    /// Queues the notices of sessions ended since the last pass; answers how many.
    pub async fn queue_once(&self) -> Result<usize, DomainError> {
        let now = self.clock.now();
        let seal = |notices: &[LogoutNotice]| -> Vec<OutboxRecord> {
            notices
                .iter()
                .filter_map(|notice| {
                    match self.notifier.sealed(
                        BACKCHANNEL_LOGOUT_CHANNEL,
                        BACKCHANNEL_LOGOUT_CHANNEL,
                        Some(&notice.client_id),
                        notice,
                        now,
                    ) {
                        Ok(row) => Some(row),
                        Err(error) => {
                            tracing::error!(%error, "could not seal a logout notice");
                            None
                        }
                    }
                })
                .collect()
        };
        let queued = self
            .store
            .queue_logout_notices(now - NOTICE_WINDOW_SECONDS, QUEUE_BATCH, now, &seal)
            .await?;
        if queued > 0 {
            self.notifier.wake();
        }
        Ok(queued)
    }

    /// Runs [`Self::queue_once`] until `shutdown`: again at once while batches are full, else
    /// after `interval`.
    pub async fn run(
        self: Arc<Self>,
        interval: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.queue_once().await {
                Ok(queued) if queued >= QUEUE_BATCH as usize => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "logout notices could not be queued"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The call for one notice now: the client's URI and a logout token signed for this
    /// attempt; `None` when the client is gone or no longer takes part.
    pub async fn delivery(
        &self,
        notice: &LogoutNotice,
    ) -> Result<Option<LogoutDelivery>, DomainError> {
        let Some(client) = self.clients.client(&notice.client_id).await? else {
            return Ok(None);
        };
        let Some(uri) = client.backchannel_logout_uri else {
            return Ok(None);
        };
        let now = self.clock.now();
        let claims = json!({
            "iss": self.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_TTL_SECONDS,
            "jti": gatehouse_crypto::new_id("lgt"),
            "sub": notice.user_id,
            "sid": notice.session_id,
            "events": { LOGOUT_EVENT: {} },
        });
        let (logout_token, _) = self.tokens.sign_jwt("logout+jwt", &claims).await?;
        Ok(Some(LogoutDelivery { uri, logout_token }))
    }
}
