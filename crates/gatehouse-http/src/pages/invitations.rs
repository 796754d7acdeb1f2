//! `/invitations/accept`: the page behind an emailed invitation. GET shows the organization and
//! the role with Accept and Decline (each a CSRF-checked POST), after sign-in (a visitor is sent
//! to `/login` and comes back here; someone without an account can sign up from there).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::{DomainError, OneTimeTokenProblem};
use minijinja::context;
use serde::Deserialize;

use super::request::{PageForm, PageRequest};
use super::session::BrowserSession;
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::locale::Locale;
use crate::state::AppState;

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

#[derive(Deserialize)]
pub(crate) struct TokenFields {
    token: String,
}

/// The catalogue key and status of a refusal the page explains.
fn problem(error: &DomainError) -> Option<(StatusCode, &'static str)> {
    Some(match error {
        DomainError::OneTimeToken(OneTimeTokenProblem::Invalid) => {
            (StatusCode::BAD_REQUEST, "invitation.invalid")
        }
        DomainError::OneTimeToken(OneTimeTokenProblem::Used) => {
            (StatusCode::BAD_REQUEST, "invitation.used")
        }
        DomainError::OneTimeToken(OneTimeTokenProblem::Expired) => {
            (StatusCode::BAD_REQUEST, "invitation.expired")
        }
        DomainError::Forbidden(_) => (StatusCode::FORBIDDEN, "invitation.other_address"),
        DomainError::Conflict(_) => (StatusCode::CONFLICT, "invitation.member"),
        DomainError::NotFound => (StatusCode::BAD_REQUEST, "invitation.invalid"),
        _ => return None,
    })
}

fn refusal(
    state: &AppState,
    locale: Locale,
    csrf: &crate::browser::csrf::Csrf,
    error: &DomainError,
) -> Response {
    match problem(error) {
        Some((status, key)) => {
            let context =
                context! { problem_key => key, token => "", organization => "", role => "" };
            state.pages.render_form(status, locale, csrf, "invitation.html", context)
        }
        None => state.pages.error_page(locale, ErrorPage::from_domain(error)),
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(query): RawQuery,
) -> Response {
    let PageRequest { locale, csrf } = page;
    let Ok(query) = serde_urlencoded::from_str::<TokenQuery>(query.as_deref().unwrap_or("")) else {
        return state.pages.error_page(locale, ErrorPage::bad_request());
    };
    let Some(principal) = session else {
        let here = format!(
            "/invitations/accept?{}",
            serde_urlencoded::to_string([("token", query.token.as_str())]).unwrap_or_default()
        );
        let login = serde_urlencoded::to_string([("return_to", here.as_str())]).unwrap_or_default();
        return state.pages.redirect(&format!("/login?{login}"));
    };
    match state.invitations.describe(&principal, &query.token).await {
        Ok((organization, role)) => {
            let context = context! {
                problem_key => None::<&str>, token => query.token, organization => organization, role => role,
            };
            state.pages.render_form(StatusCode::OK, locale, &csrf, "invitation.html", context)
        }
        Err(error) => refusal(&state, locale, &csrf, &error),
    }
}

async fn answer(
    state: AppState,
    context: gatehouse_domain::principal::RequestContext,
    session: Option<gatehouse_domain::principal::Principal>,
    form: PageForm<TokenFields>,
    accept: bool,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect("/login") };
    let outcome = if accept {
        state.invitations.accept(&principal, &form.fields.token, &context).await.map(|_| ())
    } else {
        state.invitations.decline(&principal, &form.fields.token, &context).await
    };
    match outcome {
        Ok(()) => state.pages.redirect("/account"),
        Err(error) => refusal(&state, form.locale, &form.csrf, &error),
    }
}

pub(crate) async fn accept(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<TokenFields>,
) -> Response {
    answer(state, context, session, form, true).await
}

pub(crate) async fn decline(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<TokenFields>,
) -> Response {
    answer(state, context, session, form, false).await
}
