//! `/account`, MINIMAL placeholder: who is signed in and a sign-out button. The real account
//! pages (profile, password, sessions, factors) will replace it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;

use super::cookies::BrowserSession;
use super::csrf::PageRequest;
use super::logout::display_name;
use crate::state::AppState;

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    let context = context! { name => display_name(&state, &principal) };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "account.html", context)
}
