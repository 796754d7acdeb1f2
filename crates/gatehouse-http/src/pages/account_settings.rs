//! `/account/profile` and `/account/privacy`: the self-service pages beside `/account`.
//! - Profile: names, username and picture URL (the API's `PATCH /v1/me` rules), the email
//!   change (a link to the new address, a notice to the current one: `POST /v1/me/email`), and
//!   the password change (the current password proves presence and counts towards the lockout;
//!   every other session ends).
//! - Privacy: the account's data as a JSON file (`/account/export`, what `GET /v1/me/export`
//!   answers), and deleting the account (a confirmation box, and the password unless the
//!   sign-in is recent: the API's `DELETE /v1/me`); the browser is then signed out.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::mfa::Reauthentication;
use gatehouse_domain::principal::Principal;
use gatehouse_domain::registration::ProfileUpdate;
use gatehouse_domain::registration::deletion::DeletionOutcome;
use minijinja::{Value, context};
use serde::Deserialize;

use super::request::{PageForm, PageRequest};
use super::session::BrowserSession;
use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::locale::Locale;
use crate::state::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/account/profile", get(show_profile).post(save_profile))
        .route("/account/password", post(change_password))
        .route("/account/email", post(change_email))
        .route("/account/privacy", get(show_privacy))
        .route("/account/export", get(export))
        .route("/account/delete", post(delete_account))
}

fn sign_in_first(state: &AppState, here: &str) -> Response {
    let query = serde_urlencoded::to_string([("return_to", here)]).unwrap_or_default();
    state.pages.redirect(&format!("/login?{query}"))
}

/// The refusal's field issues, for the form's alert: a broken password rule in the page's
/// language (the catalogue's `password_rule.<code>`), a taken username by its message key.
fn issues(state: &AppState, locale: Locale, error: &DomainError) -> Option<Vec<Value>> {
    match error {
        DomainError::Validation(issues) => Some(
            issues
                .iter()
                .map(|issue| match (issue.field.as_str(), issue.code.as_str()) {
                    ("current_password", "incorrect") => context! {
                        field => issue.field.clone(),
                        key => "account.profile.problem.current_password_wrong",
                    },
                    _ => {
                        context! { field => issue.field.clone(), message => issue.message.clone() }
                    }
                })
                .collect(),
        ),
        DomainError::PasswordRejected { issues, .. } => {
            let policy = state.accounts.passwords.policy().settings();
            Some(
                issues
                    .iter()
                    .map(|issue| {
                        let message = state.pages.issue_message(locale, issue, policy);
                        context! { field => issue.field.clone(), message => message }
                    })
                    .collect(),
            )
        }
        DomainError::Taken(_) => {
            Some(problem("username", "account.profile.problem.username_taken"))
        }
        _ => None,
    }
}

/// One refusal whose text is the catalogue's `key`.
fn problem(field: &str, key: &str) -> Vec<Value> {
    vec![context! { field => field.to_owned(), key => key.to_owned() }]
}

async fn profile_page(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    status: StatusCode,
    saved: Option<&str>,
    problems: Option<(&'static str, Vec<Value>)>,
) -> Response {
    let view = match state.accounts.registration.me(&principal.user) {
        Ok(view) => view,
        Err(error) => return state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    };
    let (problem_form, problems) = match problems {
        Some((form, problems)) => (Some(form), Some(problems)),
        None => (None, None),
    };
    let context = context! {
        email => view.email,
        username => view.username,
        first_name => view.first_name,
        last_name => view.last_name,
        image_url => view.image_url,
        has_password => view.has_password,
        saved => saved.filter(|what| matches!(*what, "profile" | "password" | "email")),
        problem_form => problem_form,
        problems => problems,
        impersonation => crate::pages::impersonation::banner(state, principal),
    };
    state.pages.render_form(status, locale, csrf, "account_profile.html", context)
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    saved: Option<String>,
}

pub(crate) async fn show_profile(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/profile") };
    let query: SavedQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    profile_page(
        &state,
        &principal,
        page.locale,
        &page.csrf,
        StatusCode::OK,
        query.saved.as_deref(),
        None,
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct ProfileForm {
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    image_url: Option<String>,
}

/// An empty field clears it; a filled one sets it.
fn field(value: Option<String>) -> Option<Option<String>> {
    Some(value.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty()))
}

pub(crate) async fn save_profile(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ProfileForm>,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/profile") };
    let fields = form.fields;
    let update = ProfileUpdate {
        username: field(fields.username),
        first_name: field(fields.first_name),
        last_name: field(fields.last_name),
        image_url: field(fields.image_url),
    };
    match state.accounts.registration.update_profile(&principal.user, update, &context).await {
        Ok(_) => state.pages.redirect("/account/profile?saved=profile"),
        Err(error) => match issues(&state, form.locale, &error) {
            Some(problems) => {
                profile_page(
                    &state,
                    &principal,
                    form.locale,
                    &form.csrf,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(("profile", problems)),
                )
                .await
            }
            None => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
        },
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    current_password: String,
    new_password: String,
}

pub(crate) async fn change_password(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<PasswordForm>,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/profile") };
    let fields = &form.fields;
    let changed = state
        .accounts
        .passwords
        .change_password(&principal, &fields.current_password, &fields.new_password, &context)
        .await;
    let problems = match changed {
        Ok(()) => return state.pages.redirect("/account/profile?saved=password"),
        Err(DomainError::InvalidCredentials) => {
            problem("current_password", "account.profile.problem.current_password_wrong")
        }
        Err(DomainError::RateLimited { .. }) => {
            problem("current_password", "account.profile.problem.too_many_attempts")
        }
        Err(error) => match issues(&state, form.locale, &error) {
            Some(problems) => problems,
            None => return state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
        },
    };
    profile_page(
        &state,
        &principal,
        form.locale,
        &form.csrf,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        Some(("password", problems)),
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct EmailForm {
    email: String,
    /// Needed unless the sign-in is recent.
    password: Option<String>,
}

pub(crate) async fn change_email(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<EmailForm>,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/profile") };
    let proof =
        form.fields.password.clone().filter(|password| !password.is_empty()).map(|password| {
            Reauthentication { password: Some(password), ..Reauthentication::default() }
        });
    let outcome = match state.accounts.mfa.require_presence(&principal, proof, &context).await {
        Ok(()) => {
            state
                .accounts
                .email_links
                .request_email_change(&principal, &form.fields.email, &context)
                .await
        }
        Err(error) => Err(error),
    };
    let problems = match outcome {
        Ok(()) => return state.pages.redirect("/account/profile?saved=email"),
        Err(DomainError::ReauthenticationRequired) => {
            problem("password", "account.profile.problem.confirm_password")
        }
        Err(DomainError::InvalidCredentials | DomainError::RateLimited { .. }) => {
            problem("password", "account.profile.problem.password_wrong")
        }
        Err(DomainError::Taken(_)) => problem("email", "account.profile.problem.email_taken"),
        Err(error) => match issues(&state, form.locale, &error) {
            Some(problems) => problems,
            None => return state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
        },
    };
    profile_page(
        &state,
        &principal,
        form.locale,
        &form.csrf,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        Some(("email", problems)),
    )
    .await
}

async fn privacy_page(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let context = context! {
        error => error,
        grace_days => state.account_deletions.grace_days(),
        impersonation => crate::pages::impersonation::banner(state, principal),
    };
    state.pages.render_form(status, locale, csrf, "account_privacy.html", context)
}

pub(crate) async fn show_privacy(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/privacy") };
    privacy_page(&state, &principal, page.locale, &page.csrf, StatusCode::OK, None).await
}

/// The account's data as a file to keep.
pub(crate) async fn export(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/privacy") };
    match crate::summaries::account_export(&state, &principal).await {
        Ok(export) => crate::summaries::export_answer(&export),
        Err(error) => state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    /// The confirmation box.
    confirm: Option<String>,
    /// Needed unless the sign-in is recent.
    password: Option<String>,
}

pub(crate) async fn delete_account(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<DeleteForm>,
) -> Response {
    let Some(principal) = session else { return sign_in_first(&state, "/account/privacy") };
    let refuse =
        |status, key| privacy_page(&state, &principal, form.locale, &form.csrf, status, Some(key));
    if form.fields.confirm.is_none() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "account.privacy.confirm_needed").await;
    }
    let proof =
        form.fields.password.clone().filter(|password| !password.is_empty()).map(|password| {
            Reauthentication { password: Some(password), ..Reauthentication::default() }
        });
    match state.accounts.mfa.require_presence(&principal, proof, &context).await {
        Ok(()) => {}
        Err(DomainError::ReauthenticationRequired) => {
            return refuse(StatusCode::FORBIDDEN, "account.privacy.password_needed").await;
        }
        Err(DomainError::InvalidCredentials | DomainError::RateLimited { .. }) => {
            return refuse(StatusCode::UNAUTHORIZED, "account.privacy.wrong_password").await;
        }
        Err(error) => return state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
    match state.account_deletions.request(&principal, &context).await {
        Ok(outcome) => {
            let due = match outcome {
                DeletionOutcome::Deleted => None,
                DeletionOutcome::Scheduled { due_at } => Some(super::admin::when(due_at)),
            };
            let mut response = state.pages.render_status(
                StatusCode::OK,
                form.locale,
                "account_deleted.html",
                context! { due => due },
            );
            state.pages.session_cookie.spec.clear(&mut response);
            response
        }
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}
