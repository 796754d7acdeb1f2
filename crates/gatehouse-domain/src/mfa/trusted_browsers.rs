//! Trusted browsers: after a second factor with `trust_device`, the browser gets a random token
//! (in a signed, HttpOnly cookie set by the HTTP layer) that skips the second factor for the
//! configured time. Stored as a keyed digest; listed and revoked by the user; all revoked when
//! the password changes.

use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::mfa::record::TrustedBrowserRecord;
use crate::principal::{Actor, Principal, RequestContext};
use crate::users::record::UserRecord;

use super::MfaService;

/// Trusted-browser tokens: `gtd_…` with a checksum (`ghd_…` before).
const DEVICE_TOKEN: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gtd_", legacy_prefix: "ghd_" };
const MAX_DEVICE_TOKEN_LENGTH: usize = 64;

/// A new trusted-device token for the browser, and how long it lasts.
#[derive(Clone)]
pub struct TrustedBrowser {
    pub token: String,
    pub max_age_seconds: i64,
}

impl std::fmt::Debug for TrustedBrowser {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TrustedBrowser").finish_non_exhaustive()
    }
}

impl MfaService {
    pub(super) fn new_trusted_browser(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
    ) -> (TrustedBrowser, TrustedBrowserRecord) {
        let token = DEVICE_TOKEN.generate();
        let ttl = self.settings.trusted_device_ttl_seconds;
        let record = TrustedBrowserRecord {
            id: gatehouse_crypto::new_id("tdv"),
            user_id: user.id.clone(),
            token_digest: self.mfa_digest("device", &token),
            user_agent: context.user_agent.clone(),
            ip: context.ip.clone(),
            created_at: now,
            expires_at: now + ttl,
            last_used_at: None,
            revoked_at: None,
        };
        (TrustedBrowser { token, max_age_seconds: ttl }, record)
    }

    /// The id of the live trusted browser of `user` that `token` names, if any (its use is
    /// noted).
    pub(crate) async fn trusted_browser_matches(
        &self,
        user: &UserRecord,
        token: &str,
    ) -> Result<Option<String>, DomainError> {
        if !DEVICE_TOKEN.recognises(token) || token.len() > MAX_DEVICE_TOKEN_LENGTH {
            return Ok(None);
        }
        let now = self.clock.now();
        let Some(device) = self.browsers.trusted_browser(&self.mfa_digest("device", token)).await?
        else {
            return Ok(None);
        };
        if device.user_id != user.id || device.revoked_at.is_some() || device.expires_at <= now {
            return Ok(None);
        }
        self.browsers.touch_trusted_browser(&device.id, now).await?;
        Ok(Some(device.id))
    }

    /// The signed-in user's trusted devices.
    pub async fn trusted_browsers(
        &self,
        principal: &Principal,
    ) -> Result<Vec<TrustedBrowserRecord>, DomainError> {
        Ok(self.browsers.trusted_browsers(&principal.user.id, self.clock.now()).await?)
    }

    /// Revokes one of the user's trusted devices; another user's is `not_found`.
    pub async fn revoke_trusted_browser(
        &self,
        principal: &Principal,
        device_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let event = AuditEvent::new(
            "mfa.trusted_device_revoked",
            &Actor::User(principal.user.id.clone()),
            context,
            now,
        )
        .target("trusted_device", device_id);
        let revoked = self
            .browsers
            .revoke_trusted_browsers(&principal.user.id, Some(device_id), now, &[event])
            .await?;
        if revoked == 0 {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }
}
