//! `/account`: who is signed in, their active sessions (each can be ended) and the
//! applications they connected (consent can be taken back, which also ends those grants).
//! Profile, password and MFA management come with later work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use minijinja::context;
use serde::Deserialize;

use super::ErrorPage;
use super::cookies::BrowserSession;
use super::csrf::{PageForm, PageRequest};
use super::logout::display_name;
use crate::client::Client;
use crate::state::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/account/sessions/revoke", post(revoke_session))
        .route("/account/applications/revoke", post(revoke_application))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    let sessions = match state.accounts.sessions(&principal).await {
        Ok(sessions) => sessions,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let applications = match state.oauth.connected_applications(&principal.user.id).await {
        Ok(applications) => applications,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let sessions: Vec<minijinja::Value> = sessions
        .iter()
        .map(|session| {
            context! {
                id => session.id.clone(),
                current => session.id == principal.session.id,
                user_agent => session.user_agent.clone().unwrap_or_default(),
                ip => session.ip.clone().unwrap_or_default(),
                client_id => session.client_id.clone(),
                created_at => session.created_at,
            }
        })
        .collect();
    let applications: Vec<minijinja::Value> = applications
        .iter()
        .map(|app| context! { client_id => app.client_id.clone(), name => app.client_name.clone(), scopes => app.scopes.join(" ") })
        .collect();
    let context = context! { name => display_name(&state, &principal), sessions => sessions, applications => applications };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "account.html", context)
}

#[derive(Deserialize)]
struct SessionForm {
    #[serde(default)]
    session_id: String,
}

async fn revoke_session(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<SessionForm>,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    match state.accounts.revoke_own_session(&principal, &form.fields.session_id, &context).await {
        Ok(()) | Err(gatehouse_domain::DomainError::NotFound) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
struct ApplicationForm {
    #[serde(default)]
    client_id: String,
}

async fn revoke_application(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ApplicationForm>,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    match state.oauth.revoke_consent(&principal, &form.fields.client_id, &context).await {
        Ok(_) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}
