//! Kept upstream tokens: a provider set to `keep_tokens` has the access and refresh tokens of
//! each sign-in through it sealed with the identity (purpose `upstream-tokens`, AD = the
//! identity id), so the server's applications can call the upstream's API on the user's behalf
//! (Keycloak's "store tokens", Clerk's OAuth access tokens). Admins read the access token,
//! renewed through the refresh token once it has expired; the refresh token never leaves.

use super::record::{IdentityRecord, KeptTokens, UpstreamTokenView};
use super::upstream::UpstreamTokens;
use super::{FederationService, IdentityProvider, problem, upstream_problem};
use crate::audit::AuditEvent;
use crate::error::{DomainError, FederationProblem};
use crate::principal::{AdminPrincipal, RequestContext};

/// An access token this close to its expiry is renewed before it is handed out.
const RENEW_BEFORE_SECONDS: i64 = 30;

impl FederationService {
    /// `tokens` sealed for the identity `identity_id`, when the provider keeps them.
    pub(super) fn sealed_tokens(
        &self,
        provider: &IdentityProvider,
        identity_id: &str,
        tokens: Option<&UpstreamTokens>,
    ) -> Result<Option<Vec<u8>>, DomainError> {
        let Some(tokens) = tokens.filter(|_| provider.keep_tokens) else { return Ok(None) };
        let now = self.clock.now();
        let kept = KeptTokens {
            access_token: tokens.access_token.clone(),
            token_type: tokens.token_type.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at: tokens.expires_in.map(|seconds| now.saturating_add(seconds)),
            scopes: tokens.scopes.clone(),
            obtained_at: now,
        };
        self.seal_kept(identity_id, &kept).map(Some)
    }

    fn seal_kept(&self, identity_id: &str, kept: &KeptTokens) -> Result<Vec<u8>, DomainError> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(kept)
                .map_err(|error| DomainError::Internal(format!("upstream tokens: {error}")))?,
        );
        Ok(self.token_cipher.seal(identity_id.as_bytes(), &plain)?)
    }

    fn open_kept(&self, record: &IdentityRecord) -> Result<Option<KeptTokens>, DomainError> {
        let Some(sealed) = &record.tokens_ciphertext else { return Ok(None) };
        let plain = self.token_cipher.open(record.id.as_bytes(), sealed)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|error| DomainError::Internal(format!("upstream tokens: {error}")))
    }

    /// The user's kept access token from `provider_id` (of the identity used last, should the
    /// user have linked two), renewed through the refresh token when it has expired. Not
    /// found: no such identity, or nothing kept for it.
    pub async fn upstream_token(
        &self,
        admin: &AdminPrincipal,
        user_id: &str,
        provider_id: &str,
        context: &RequestContext,
    ) -> Result<UpstreamTokenView, DomainError> {
        let record = self
            .identities
            .identities_of(user_id)
            .await?
            .into_iter()
            .filter(|record| {
                record.provider_id == provider_id && record.tokens_ciphertext.is_some()
            })
            .max_by_key(|record| record.last_used_at.unwrap_or(record.created_at))
            .ok_or(DomainError::NotFound)?;
        let mut kept = self.open_kept(&record)?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        let mut renewed = false;
        // Renewed when (about to be) expired; the new tokens are kept with the audit event.
        if kept.expires_at.is_some_and(|at| at <= now + RENEW_BEFORE_SECONDS) {
            let Some(refresh_token) = kept.refresh_token.clone() else {
                return Err(problem(FederationProblem::UpstreamTokenExpired));
            };
            let provider = self.provider(provider_id).await?;
            let fresh = match self.upstream.refresh(&provider, &refresh_token).await {
                Ok(fresh) => fresh,
                // The upstream refused the refresh token (revoked, expired): sign in again.
                Err(super::UpstreamError::Rejected(_)) => {
                    return Err(problem(FederationProblem::UpstreamTokenExpired));
                }
                Err(error) => return Err(upstream_problem(error)),
            };
            kept = KeptTokens {
                access_token: fresh.access_token,
                token_type: fresh.token_type,
                refresh_token: fresh.refresh_token.or(Some(refresh_token)),
                expires_at: fresh.expires_in.map(|seconds| now.saturating_add(seconds)),
                scopes: fresh.scopes.or(kept.scopes),
                obtained_at: now,
            };
            renewed = true;
        }
        let event = AuditEvent::new("identity.token_read", admin.actor(), context, now)
            .target("identity", &record.id)
            .metadata(serde_json::json!({
                "user_id": user_id,
                "provider_id": provider_id,
                "renewed": renewed,
            }));
        if renewed {
            let sealed = self.seal_kept(&record.id, &kept)?;
            if !self.identities.replace_identity_tokens(&record.id, &sealed, &[event]).await? {
                return Err(DomainError::NotFound);
            }
        } else {
            self.work.commit(&crate::unit_of_work::UnitOfWork::events(vec![event])).await?;
        }
        Ok(UpstreamTokenView {
            provider_id: provider_id.to_owned(),
            identity_id: record.id,
            access_token: kept.access_token,
            token_type: kept.token_type,
            expires_at: kept.expires_at,
            scopes: kept.scopes,
        })
    }
}
