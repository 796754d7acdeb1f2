//! Impersonation in the browser: an admin starts it from a user's dashboard page
//! (`POST /admin/users/{id}/impersonate`, with a reason and a length, after a recent
//! authentication), the browser's session becomes the impersonation session and the admin's
//! own session waits in a signed cookie; every account page shows a banner naming the user
//! and the end time, with a button that stops it (`POST /account/impersonation/stop`): the
//! impersonation session ends (audited) and the admin's session comes back.

use axum::extract::{Path, State};
use axum::response::Response;
use gatehouse_domain::principal::Principal;
use minijinja::{Value, context};
use serde::Deserialize;

use super::admin::{admit_recent, error_page, item_path};
use super::request::PageForm;
use super::session::{BrowserSession, display_name};
use crate::client::Client;
use crate::state::AppState;

/// What the banner of an impersonation session shows (none for the user's own session).
pub(crate) fn banner(state: &AppState, principal: &Principal) -> Option<Value> {
    principal.session.impersonator.as_ref().map(|_| {
        context! {
            name => display_name(state, principal),
            until => super::admin::when(principal.session.expires_at),
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct ImpersonateForm {
    reason: String,
    minutes: Option<i64>,
}

/// Starts impersonating the user: the browser's session becomes the impersonation session
/// (its cookie lives as long as it does) and the admin's own waits in the impersonator cookie.
pub(crate) async fn start(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
    form: PageForm<ImpersonateForm>,
) -> Response {
    let back = item_path("users", &id);
    let visit = match admit_recent(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let minutes =
        form.fields.minutes.unwrap_or(crate::routes::admin_sessions::DEFAULT_IMPERSONATION_MINUTES);
    let tokens = match state
        .accounts
        .sessions
        .impersonate(&visit.admin, &id, &form.fields.reason, minutes, &context)
        .await
    {
        Ok(tokens) => tokens,
        Err(error) => return error_page(&state, form.locale, &error),
    };
    let pages = &state.pages;
    let mut response = pages.redirect("/account");
    pages.session_cookie.set(&mut response, &tokens.session_id, minutes * 60);
    let admin_session = &visit.principal.session;
    let remaining = admin_session.expires_at - admin_session.created_at;
    pages.impersonator_cookie.set(&mut response, &admin_session.id, remaining);
    response
}

#[derive(Deserialize)]
pub(crate) struct StopForm {}

/// Stops impersonating: the impersonation session ends and the admin's own session (from the
/// impersonator cookie, if it is still active) becomes the browser's again, back on the
/// user's dashboard page; without it, the browser is signed out.
pub(crate) async fn stop(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    headers: axum::http::HeaderMap,
    form: PageForm<StopForm>,
) -> Response {
    let pages = &state.pages;
    let Some(principal) = session.filter(|principal| principal.session.impersonator.is_some())
    else {
        return pages.redirect("/account");
    };
    if let Err(error) = state.accounts.sessions.end_impersonation(&principal, &context).await {
        return error_page(&state, form.locale, &error);
    }
    let admin = match pages.impersonator_cookie.from_headers(&headers) {
        Some(session_id) => {
            state.accounts.sessions.principal_for_browser_session(session_id).await.ok()
        }
        None => None,
    };
    let mut response = match admin {
        Some(admin) => {
            let mut response = pages.redirect(&item_path("users", &principal.user.id));
            let remaining = admin.session.expires_at - admin.session.created_at;
            pages.session_cookie.set(&mut response, &admin.session.id, remaining);
            response
        }
        None => {
            let mut response = pages.redirect("/login");
            pages.session_cookie.spec.clear(&mut response);
            response
        }
    };
    pages.impersonator_cookie.spec.clear(&mut response);
    response
}
