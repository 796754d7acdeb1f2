//! The browser's session as the pages see it: who is signed in ([`BrowserSession`], from the
//! signed session cookie), how they are named, and the two ends of a session — a sign-in
//! that continues to the browser session or to the second step ([`continue_sign_in`]), and
//! signing out ([`end_browser_session`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::DomainError;
use gatehouse_domain::mfa::MfaChallenge;
use gatehouse_domain::principal::{Principal, RequestContext};
use gatehouse_domain::sign_in::SignInOutcome;

use crate::browser::cookies::read_cookie;
use crate::browser::render::ErrorPage;
use crate::locale::Locale;
use crate::state::AppState;

/// The signed-in browser, if any: a validly signed session cookie whose session is active, not
/// idle past the timeout, and whose user is not suspended. A missing, tampered, revoked,
/// expired or idle cookie is `None`.
pub struct BrowserSession(pub Option<Principal>);

impl FromRequestParts<AppState> for BrowserSession {
    /// An error page (503/500) when the store cannot answer; never for a bad cookie.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let cookie = &state.pages.session_cookie;
        let Some(session_id) =
            read_cookie(&parts.headers, &cookie.spec.name).and_then(|value| cookie.verify(value))
        else {
            return Ok(BrowserSession(None));
        };
        match state.accounts.sessions.principal_for_browser_session(session_id).await {
            Ok(principal) => Ok(BrowserSession(Some(principal))),
            Err(DomainError::InvalidToken | DomainError::NotFound) => Ok(BrowserSession(None)),
            Err(error) => {
                let locale = Locale::from_headers(&parts.headers);
                Err(state.pages.error_page(locale, ErrorPage::from_domain(&error)))
            }
        }
    }
}

/// How a signed-in user is named on a page: email, else username, else id.
pub(crate) fn display_name(state: &AppState, principal: &Principal) -> String {
    let user = &principal.user;
    match state.accounts.directory.view(user) {
        Ok(view) => view.email.or(view.username).unwrap_or_else(|| user.id.clone()),
        Err(error) => {
            tracing::error!(%error, user_id = %user.id, "cannot show the user's email");
            user.username.clone().unwrap_or_else(|| user.id.clone())
        }
    }
}

/// Where a first factor goes on to: tokens become the browser session (its cookie lives as
/// long as the session); a needed second factor parks the challenge token in its cookie and
/// redirects to `/mfa`.
pub(crate) async fn continue_sign_in(
    state: &AppState,
    outcome: SignInOutcome,
    return_to: &str,
    locale: Locale,
) -> Result<Response, Response> {
    let pages = &state.pages;
    match outcome {
        SignInOutcome::SignedIn(tokens) => {
            let principal = state
                .accounts
                .sessions
                .principal_for_session(&tokens.session_id)
                .await
                .map_err(|error| pages.error_page(locale, ErrorPage::from_domain(&error)))?;
            let mut response = pages.redirect(return_to);
            let max_age = principal.session.expires_at - principal.session.created_at;
            pages.session_cookie.set(&mut response, &principal.session.id, max_age);
            Ok(response)
        }
        SignInOutcome::MfaRequired(MfaChallenge { mfa_token, expires_in, .. }) => {
            let query = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
            let mut response = pages.redirect(&format!("/mfa?{query}"));
            pages.mfa_cookie.set(&mut response, &mfa_token, Some(expires_in));
            Ok(response)
        }
    }
}

/// A sign-in finished by the page script (a passkey): the browser session's cookie on a JSON
/// answer `{"redirect_to": return_to}` the script follows; the session the browser held
/// before (if another) ends, as on `/login`.
pub(crate) async fn signed_in_json(
    state: &AppState,
    previous: Option<&Principal>,
    session_id: &str,
    return_to: &str,
    context: &RequestContext,
) -> Result<Response, DomainError> {
    let principal = state.accounts.sessions.principal_for_session(session_id).await?;
    let mut response = axum::Json(serde_json::json!({ "redirect_to": return_to })).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    let max_age = principal.session.expires_at - principal.session.created_at;
    state.pages.session_cookie.set(&mut response, &principal.session.id, max_age);
    state.accounts.sessions.replace_browser_session(previous, session_id, context).await;
    Ok(response)
}

/// Ends the browser's session (if it has one) and clears its cookie on `response`.
pub async fn end_browser_session(
    state: &AppState,
    session: Option<&Principal>,
    context: &RequestContext,
    response: &mut Response,
) -> Result<(), DomainError> {
    if let Some(principal) = session {
        state.accounts.sessions.sign_out(principal, context).await?;
    }
    state.pages.session_cookie.spec.clear(response);
    Ok(())
}
