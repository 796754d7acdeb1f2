//! `/logout`: a confirmation page on GET (never signs out: a link or a prefetch must not end
//! a session) and the sign-out itself on POST. `end_browser_session` is what the OAuth
//! RP-initiated logout reuses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::principal::Principal;
use gatehouse_domain::principal::RequestContext;
use minijinja::context;
use serde::Deserialize;

use super::ErrorPage;
use super::cookies::BrowserSession;
use super::csrf::{PageForm, PageRequest};
use crate::client::Client;
use crate::state::AppState;

/// The sign-out form has no fields besides its CSRF token.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// How a signed-in user is named on a page: email, else username, else id.
pub(crate) fn display_name(state: &AppState, principal: &Principal) -> String {
    let user = &principal.user;
    match state.directory.view(user) {
        Ok(view) => view.email.or(view.username).unwrap_or_else(|| user.id.clone()),
        Err(error) => {
            tracing::error!(%error, user_id = %user.id, "cannot show the user's email");
            user.username.clone().unwrap_or_else(|| user.id.clone())
        }
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect("/login") };
    let context = context! { name => display_name(&state, &principal) };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "logout.html", context)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<NoFields>,
) -> Response {
    let mut response = state.pages.redirect("/login");
    if let Err(error) = end_browser_session(&state, session.as_ref(), &context, &mut response).await
    {
        return state.pages.error_page(form.locale, ErrorPage::from_domain(&error));
    }
    response
}

/// Ends the browser's session (if it has one) and clears its cookie on `response`.
pub async fn end_browser_session(
    state: &AppState,
    session: Option<&Principal>,
    context: &RequestContext,
    response: &mut Response,
) -> Result<(), DomainError> {
    if let Some(principal) = session {
        state.sessions.sign_out(principal, context).await?;
    }
    state.pages.session_cookie.spec.clear(response);
    Ok(())
}
