//! `/account`'s linked-accounts form: `POST /account/identities/{id}/unlink` (CSRF-checked by
//! [`PageForm`]) unlinks one of the signed-in user's upstream identities through
//! `FederationService::unlink`, then back to `/account`; a refusal (the account's last way to
//! sign in, an identity that is not theirs or gone) is the account page with the reason in
//! that section. Linking is the `/sso/{id}?link=1` flow (`sso`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use gatehouse_domain::DomainError;
use gatehouse_domain::error::FederationProblem;
use serde::Deserialize;

use super::account::{AccountAlert, SIGN_IN_FIRST, account_with_error};
use super::request::PageForm;
use super::session::BrowserSession;
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::state::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/account/identities/{id}/unlink", post(unlink))
}

/// The unlink form carries nothing but its CSRF token (and the language).
#[derive(Deserialize)]
struct UnlinkForm {}

async fn unlink(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(identity_id): Path<String>,
    form: PageForm<UnlinkForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, .. } = form;
    let error = match state.federation.unlink(&principal, &identity_id, &context).await {
        Ok(()) => return state.pages.redirect("/account"),
        Err(error) => error,
    };
    let (status, key) = match &error {
        DomainError::Federation(FederationProblem::LastSignInMethod) => {
            (StatusCode::CONFLICT, "linked_accounts.error.last_method")
        }
        DomainError::NotFound => (StatusCode::NOT_FOUND, "linked_accounts.error.not_found"),
        DomainError::ReauthenticationRequired => {
            (StatusCode::FORBIDDEN, "linked_accounts.error.reauthenticate")
        }
        _ => return state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    };
    let alert = AccountAlert::LinkedAccounts(key);
    account_with_error(&state, &principal, locale, &csrf, status, alert, error.code()).await
}
