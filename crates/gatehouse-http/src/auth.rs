//! Bearer authentication as extractors: [`Authenticated`] for a signed-in user, [`Admin`] for
//! the admin API (an admin API key, or the token of a user with the system `admin` role).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use gatehouse_domain::principal::AdminPrincipal;
use gatehouse_domain::principal::Principal;

use crate::error::ApiError;
use crate::state::AppState;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    value
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 4096)
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
        let token = bearer(parts).ok_or_else(ApiError::invalid_token)?;
        Ok(Authenticated(state.accounts.sessions.authenticate(token).await?))
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
        let token = bearer(parts).ok_or_else(ApiError::invalid_token)?;
        if let Some(admin) = state.admin_keys.authenticate(token).await? {
            return Ok(Admin(admin));
        }
        let principal = state.accounts.sessions.authenticate(token).await?;
        Ok(Admin(AdminPrincipal::from_user(&principal)?))
    }
}

/// Who a valid bearer names, as a rate-limit subject (`user:<id>` or `admin:<key id>`), for
/// the general API budget; `None` without a valid bearer. What it verified is left in the
/// request's extensions for [`Authenticated`] and [`Admin`], so the token is checked once.
/// Access tokens are JWTs (they contain dots); admin keys do not.
pub(crate) async fn identify(parts: &mut Parts, state: &AppState) -> Option<String> {
    let token = bearer(parts)?;
    if token.contains('.') {
        let principal = state.accounts.sessions.authenticate(token).await.ok()?;
        let subject = format!("user:{}", principal.user.id);
        parts.extensions.insert(principal);
        Some(subject)
    } else {
        let admin = state.admin_keys.authenticate(token).await.ok()??;
        let subject = format!("admin:{}", admin.actor().id().unwrap_or("unknown"));
        parts.extensions.insert(admin);
        Some(subject)
    }
}
