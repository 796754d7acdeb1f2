//! Bearer authentication as extractors: [`Authenticated`] for a signed-in user, [`Admin`] for
//! the admin API (an admin API key, or the token of a user with the system `admin` role),
//! [`Caller`] for the few routes that also take an API key within its scopes.
//!
//! Invariant: an API key (`gtk_…`) is verified like any bearer (unknown, expired or revoked:
//! 401 `invalid_token`), then refused with 403 `insufficient_scope` by every extractor but
//! [`Caller`]: a route accepts keys only by asking for a `Caller` and naming a scope.
//! Invariant: a session bound to a DPoP key (signed in with a proof) answers only to
//! `Authorization: DPoP` with a fresh proof of that key for the request (RFC 9449 §7), checked
//! once, by the extractor; an unbound one only to `Bearer`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use gatehouse_domain::api_keys::{API_KEY, ApiKeyPrincipal, keys_not_accepted};
use gatehouse_domain::oauth::dpop::ProofTarget;
use gatehouse_domain::principal::AdminPrincipal;
use gatehouse_domain::principal::Principal;
use gatehouse_domain::{DomainError, UserRecord};

use crate::dpop::{presented_token, proof_key, wrong_binding};
use crate::error::ApiError;
use crate::state::AppState;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    value
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 4096)
}

/// The session an access token names, presented as its binding requires.
async fn session_principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let (token, with_dpop) = presented_token(&parts.headers).ok_or_else(ApiError::invalid_token)?;
    if !with_dpop {
        refuse_api_key(parts, state, token).await?;
    }
    let principal = state.accounts.sessions.authenticate(token).await?;
    match (principal.session.dpop_jkt.as_deref(), with_dpop) {
        (None, false) => Ok(principal),
        (None, true) | (Some(_), false) => Err(wrong_binding()),
        (Some(bound), true) => {
            let target = ProofTarget {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                access_token: Some(token),
            };
            match proof_key(state, &parts.headers, target).await {
                Ok(Some(jkt)) if jkt == bound => Ok(principal),
                Ok(Some(_)) => Err(wrong_binding()),
                Ok(None) => Err(crate::dpop::api_error(
                    gatehouse_domain::oauth::OAuthError::InvalidDpopProof(String::new()),
                    true,
                )),
                Err(error) => Err(crate::dpop::api_error(error, true)),
            }
        }
    }
}

/// A verified user session.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Authenticated(principal.clone()));
        }
        Ok(Authenticated(session_principal(parts, state).await?))
    }
}

/// An API key where keys are never accepted: 401 when it is not a live key, 403
/// `insufficient_scope` when it is. `Ok` for any other bearer.
async fn refuse_api_key(parts: &Parts, state: &AppState, token: &str) -> Result<(), ApiError> {
    if parts.extensions.get::<ApiKeyPrincipal>().is_some() {
        return Err(keys_not_accepted().into());
    }
    if API_KEY.claims(token) {
        state.api_keys.authenticate(token).await?;
        return Err(keys_not_accepted().into());
    }
    Ok(())
}

/// A user's session, or an API key (personal keys act for their user within their scopes).
pub enum Caller {
    Session(Principal),
    ApiKey(ApiKeyPrincipal),
}

impl Caller {
    /// The user the caller acts for, when a key carries `scope` (a session may do anything
    /// its user may).
    pub fn user_with_scope(&self, scope: &str) -> Result<&UserRecord, DomainError> {
        match self {
            Caller::Session(principal) => Ok(&principal.user),
            Caller::ApiKey(key) => key.user_with_scope(scope),
        }
    }

    /// The user the caller acts for in organization `organization_id`, when a key carries
    /// `scope`: a key acting in one organization reaches no other (`not_found`, as for
    /// outsiders).
    pub fn user_in_organization(
        &self,
        scope: &str,
        organization_id: &str,
    ) -> Result<&UserRecord, DomainError> {
        let user = self.user_with_scope(scope)?;
        match self {
            Caller::ApiKey(key)
                if key
                    .key
                    .acting_organization_id
                    .as_deref()
                    .is_some_and(|acting| acting != organization_id) =>
            {
                Err(DomainError::NotFound)
            }
            _ => Ok(user),
        }
    }

    /// The current session's id (`None` for a key).
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Caller::Session(principal) => Some(&principal.session.id),
            Caller::ApiKey(_) => None,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Caller::Session(principal.clone()));
        }
        if let Some(key) = parts.extensions.get::<ApiKeyPrincipal>() {
            return Ok(Caller::ApiKey(key.clone()));
        }
        if let Some(token) = bearer(parts)
            && API_KEY.claims(token)
        {
            return Ok(Caller::ApiKey(state.api_keys.authenticate(token).await?));
        }
        Ok(Caller::Session(session_principal(parts, state).await?))
    }
}

/// The admin API's caller.
pub struct Admin(pub AdminPrincipal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(admin) = parts.extensions.get::<AdminPrincipal>() {
            return Ok(Admin(admin.clone()));
        }
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Admin(AdminPrincipal::from_user(principal)?));
        }
        if let Some(token) = bearer(parts) {
            refuse_api_key(parts, state, token).await?;
            if let Some(admin) = state.admin_keys.authenticate(token).await? {
                return Ok(Admin(admin));
            }
        }
        let principal = session_principal(parts, state).await?;
        Ok(Admin(AdminPrincipal::from_user(&principal)?))
    }
}

/// Who a valid bearer names, as a rate-limit subject (`user:<id>`, `api_key:<id>` or
/// `admin:<key id>`), for the general API budget; `None` without a valid bearer. What it
/// verified is left in the request's extensions for [`Authenticated`], [`Caller`] and
/// [`Admin`], so the token is checked once. Access tokens are JWTs (they contain dots); API
/// and admin keys do not, and their prefixes tell them apart.
/// A `DPoP` token, or a session bound to a DPoP key, is left to the extractor, which checks the
/// proof (once: a proof is single-use).
pub(crate) async fn identify(parts: &mut Parts, state: &AppState) -> Option<String> {
    let token = bearer(parts)?;
    if token.contains('.') {
        let principal = state.accounts.sessions.authenticate(token).await.ok()?;
        if principal.session.dpop_jkt.is_some() {
            return None;
        }
        let subject = format!("user:{}", principal.user.id);
        parts.extensions.insert(principal);
        Some(subject)
    } else if API_KEY.claims(token) {
        let key = state.api_keys.authenticate(token).await.ok()?;
        let subject = format!("api_key:{}", key.key.id);
        parts.extensions.insert(key);
        Some(subject)
    } else {
        let admin = state.admin_keys.authenticate(token).await.ok()??;
        let subject = format!("admin:{}", admin.actor().id().unwrap_or("unknown"));
        parts.extensions.insert(admin);
        Some(subject)
    }
}
