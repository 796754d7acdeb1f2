//! `/logout`: a confirmation page on GET (never signs out: a link or a prefetch must not end
//! a session) and the sign-out itself on POST (through `session::end_browser_session`, which
//! the OAuth RP-initiated logout uses too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::request::{PageForm, PageRequest};
use super::session::{BrowserSession, display_name, end_browser_session};
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::state::AppState;

/// The sign-out form has no fields besides its CSRF token.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

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
