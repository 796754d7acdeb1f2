//! `/sso/{id}` and `/sso/{id}/callback`: sign-in (and linking) through an upstream provider.
//! The flow's state, nonce and PKCE verifier travel in a sealed, HttpOnly cookie
//! (`gatehouse_sso`, ten minutes, `SameSite=Lax` so the upstream's top-level redirect back
//! carries it; `SameSite=None; Secure` for a provider that posts the callback cross-site,
//! Apple's `form_post`); the callback clears it whatever happens. Errors are a page, never a
//! redirect. The callback takes a GET (query) or a form POST; either is bound to the browser
//! by the flow cookie's state, so it carries no CSRF token of ours.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use gatehouse_domain::federation::{Callback, FLOW_TTL_SECONDS, FederationOutcome, FlowPurpose};
use gatehouse_domain::sign_in::SignInOutcome;
use serde::Deserialize;

use super::request::PageRequest;
use super::session::{BrowserSession, continue_sign_in};
use crate::browser::cookies::{CookieSpec, read_cookie_up_to};
use crate::browser::render::ErrorPage;
use crate::browser::return_to::return_to_or_default;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::locale::Locale;
use crate::state::AppState;

/// The longest flow cookie looked at (a sealed flow is about 500 characters).
const MAX_FLOW_COOKIE: usize = 4096;

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
    /// `1`: link the provider to the signed-in account instead of signing in.
    link: Option<String>,
    /// `1`: a step-up — the signed-in user signs in again upstream, renewing the session's
    /// authentication (what a sensitive change asks for).
    reauth: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    #[allow(dead_code)]
    error_description: Option<String>,
    #[allow(dead_code)]
    session_state: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
    /// Apple's first sign-in: the person's name (JSON).
    user: Option<String>,
    /// Apple's form also carries the ID token, which is taken from the token answer instead.
    #[allow(dead_code)]
    id_token: Option<String>,
}

/// The longest callback form read.
const MAX_CALLBACK_FORM: usize = 16 * 1024;

fn flow_cookie(state: &AppState) -> CookieSpec {
    CookieSpec::new("gatehouse_sso", "Lax", state.pages.session_cookie.spec.secure)
}

/// The flow cookie for a callback that comes back as a cross-site POST: `SameSite=None`,
/// which browsers accept only with `Secure` (also on `http://localhost`). The name is the
/// same, so the callback reads and clears either.
fn cross_site_flow_cookie(state: &AppState) -> CookieSpec {
    let mut spec = CookieSpec::new("gatehouse_sso", "None", state.pages.session_cookie.spec.secure);
    spec.secure = true;
    spec
}

fn error_page(state: &AppState, locale: Locale, error: &gatehouse_domain::DomainError) -> Response {
    let mut response = state.pages.error_page(locale, ErrorPage::from_domain(error));
    response
        .extensions_mut()
        .insert(ErrorForLog { code: error.code(), internal: Some(error.to_string()) });
    response
}

/// Starts a flow: sets the flow cookie and sends the browser to the provider.
pub(crate) async fn start(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    Path(provider_id): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let Ok(query) = serde_urlencoded::from_str::<StartQuery>(raw_query.as_deref().unwrap_or(""))
    else {
        return state.pages.error_page(page.locale, ErrorPage::bad_request());
    };
    let linking = query.link.as_deref() == Some("1");
    let reauthenticating = query.reauth.as_deref() == Some("1");
    // Linking and a step-up need a signed-in browser: sign in first, then come back here.
    if (linking || reauthenticating) && session.is_none() {
        let back = format!("/sso/{provider_id}?{}", if linking { "link=1" } else { "reauth=1" });
        let query = serde_urlencoded::to_string([("return_to", back.as_str())]).unwrap_or_default();
        return state.pages.redirect(&format!("/login?{query}"));
    }
    let return_to = return_to_or_default(query.return_to.as_deref());
    let purpose = match &session {
        Some(principal) if reauthenticating => {
            FlowPurpose::Reauthenticate { session_id: &principal.session.id }
        }
        Some(principal) if linking => FlowPurpose::Link { principal },
        _ => FlowPurpose::SignIn,
    };
    match state.federation.begin(&provider_id, &return_to, purpose).await {
        Ok(start) => {
            let mut response = state.pages.redirect(&start.url);
            let cookie = if start.cross_site_callback {
                cross_site_flow_cookie(&state)
            } else {
                flow_cookie(&state)
            };
            cookie.set(&mut response, &start.sealed_flow, Some(FLOW_TTL_SECONDS));
            response
        }
        // Linking needs a recent sign-in: sign in again, then come back here.
        Err(gatehouse_domain::DomainError::ReauthenticationRequired) => {
            let back = format!("/sso/{provider_id}?link=1");
            let query =
                serde_urlencoded::to_string([("return_to", back.as_str()), ("prompt", "login")])
                    .unwrap_or_default();
            state.pages.redirect(&format!("/login?{query}"))
        }
        Err(error) => error_page(&state, page.locale, &error),
    }
}

/// The provider's redirect back: finishes the flow, then the browser session (or `/mfa`).
pub(crate) async fn callback(
    State(state): State<AppState>,
    page: PageRequest,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    headers: HeaderMap,
    Path(provider_id): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let query = serde_urlencoded::from_str::<CallbackQuery>(raw_query.as_deref().unwrap_or(""));
    finish(state, page, context, previous, headers, provider_id, query.ok()).await
}

/// The provider's form POST back (Apple's `response_mode=form_post`).
pub(crate) async fn posted_callback(
    State(state): State<AppState>,
    page: PageRequest,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    headers: HeaderMap,
    Path(provider_id): Path<String>,
    body: Bytes,
) -> Response {
    let form = (body.len() <= MAX_CALLBACK_FORM)
        .then(|| serde_urlencoded::from_bytes::<CallbackQuery>(&body).ok())
        .flatten();
    finish(state, page, context, previous, headers, provider_id, form).await
}

async fn finish(
    state: AppState,
    page: PageRequest,
    context: gatehouse_domain::principal::RequestContext,
    previous: Option<gatehouse_domain::principal::Principal>,
    headers: HeaderMap,
    provider_id: String,
    query: Option<CallbackQuery>,
) -> Response {
    let cookie = flow_cookie(&state);
    let Some(query) = query else {
        let mut response = state.pages.error_page(page.locale, ErrorPage::bad_request());
        cookie.clear(&mut response);
        return response;
    };
    let sealed = read_cookie_up_to(&headers, &cookie.name, MAX_FLOW_COOKIE);
    let trusted_device = state.pages.device_cookie.from_headers(&headers).map(str::to_owned);
    let callback = Callback {
        code: query.code,
        state: query.state,
        iss: query.iss,
        error: query.error,
        user: query.user,
    };
    let finished = state
        .federation
        .finish(&provider_id, sealed, callback, trusted_device.as_deref(), &context)
        .await;
    let mut response = match finished {
        Ok(
            FederationOutcome::Linked { return_to }
            | FederationOutcome::Reauthenticated { return_to },
        ) => state.pages.redirect(&return_to),
        Ok(FederationOutcome::SignedIn { outcome, return_to }) => {
            let new_session = match &outcome {
                SignInOutcome::SignedIn(tokens) => Some(tokens.session_id.clone()),
                SignInOutcome::MfaRequired(_) => None,
            };
            let response = match continue_sign_in(&state, outcome, &return_to, page.locale).await {
                Ok(response) | Err(response) => response,
            };
            if let Some(session_id) = new_session {
                state
                    .accounts
                    .sessions
                    .replace_browser_session(previous.as_ref(), &session_id, &context)
                    .await;
            }
            response
        }
        Err(error) => error_page(&state, page.locale, &error),
    };
    cookie.clear(&mut response);
    cross_site_flow_cookie(&state).clear(&mut response);
    response
}
