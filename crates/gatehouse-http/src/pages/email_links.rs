//! `/verify-email`, `/reset-password`, `/magic-link`: the pages behind emailed links. The GET
//! checks the token without spending it and shows a button (link scanners prefetch URLs); the
//! CSRF-checked POST spends it.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::email_links::TokenPurpose;
use gatehouse_domain::{DomainError, OneTimeTokenProblem};
use minijinja::context;
use serde::Deserialize;

use super::request::{PageForm, PageRequest};
use super::session::continue_sign_in;
use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::browser::return_to::{return_to_or_default, safe_return_to};
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::locale::Locale;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    #[serde(default)]
    token: String,
    return_to: Option<String>,
}

/// The POSTed form. No `Debug`: it holds a token and maybe a password.
#[derive(Deserialize)]
pub(crate) struct LinkForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    return_to: Option<String>,
}

/// Which page: its message group, form action and token purpose.
#[derive(Clone, Copy)]
enum LinkPage {
    VerifyEmail,
    ResetPassword,
    MagicLink,
    ChangeEmail,
    /// The restore link of a scheduled account deletion (its token is not a one-time token
    /// of the email-link service: the POST checks it).
    RestoreAccount,
}

impl LinkPage {
    fn name(self) -> &'static str {
        match self {
            LinkPage::VerifyEmail => "verify_email",
            LinkPage::ResetPassword => "reset_password",
            LinkPage::MagicLink => "magic_link",
            LinkPage::ChangeEmail => "change_email",
            LinkPage::RestoreAccount => "restore_account",
        }
    }

    fn action(self) -> &'static str {
        match self {
            LinkPage::VerifyEmail => "/verify-email",
            LinkPage::ResetPassword => "/reset-password",
            LinkPage::MagicLink => "/magic-link",
            LinkPage::ChangeEmail => "/change-email",
            LinkPage::RestoreAccount => "/restore-account",
        }
    }

    fn purpose(self) -> Option<TokenPurpose> {
        match self {
            LinkPage::VerifyEmail => Some(TokenPurpose::VerifyEmail),
            LinkPage::ResetPassword => Some(TokenPurpose::ResetPassword),
            LinkPage::MagicLink => Some(TokenPurpose::MagicLink),
            LinkPage::ChangeEmail => Some(TokenPurpose::ChangeEmail),
            LinkPage::RestoreAccount => None,
        }
    }
}

/// What the page shows besides the form.
#[derive(Default)]
struct View<'a> {
    token: &'a str,
    return_to: Option<&'a str>,
    show_form: bool,
    done: bool,
    error: Option<&'static str>,
    issues: Vec<String>,
}

fn render(
    state: &AppState,
    page: LinkPage,
    status: StatusCode,
    locale: Locale,
    csrf: &Csrf,
    view: View<'_>,
) -> Response {
    let context = context! {
        page => page.name(),
        action => page.action(),
        token => view.token,
        return_to => view.return_to,
        password => matches!(page, LinkPage::ResetPassword),
        show_form => view.show_form,
        done => view.done,
        error => view.error,
        issues => view.issues,
    };
    state.pages.render_form(status, locale, csrf, "email_link.html", context)
}

/// A refused token or feature as the page shows it; other errors are error pages.
fn refusal(
    state: &AppState,
    page: LinkPage,
    locale: Locale,
    csrf: &Csrf,
    error: &DomainError,
) -> Response {
    let (status, key) = match error {
        DomainError::OneTimeToken(OneTimeTokenProblem::Invalid) => {
            (StatusCode::BAD_REQUEST, "link_error.invalid")
        }
        DomainError::OneTimeToken(OneTimeTokenProblem::Used) => {
            (StatusCode::BAD_REQUEST, "link_error.used")
        }
        DomainError::OneTimeToken(OneTimeTokenProblem::Expired) => {
            (StatusCode::BAD_REQUEST, "link_error.expired")
        }
        DomainError::Disabled(_) => (StatusCode::NOT_FOUND, "link_error.disabled"),
        DomainError::AccountSuspended => (StatusCode::FORBIDDEN, "link_error.suspended"),
        other => return state.pages.error_page(locale, ErrorPage::from_domain(other)),
    };
    let view = View { error: Some(key), ..View::default() };
    let mut response = render(state, page, status, locale, csrf, view);
    response.extensions_mut().insert(ErrorForLog { code: error.code(), internal: None });
    response
}

async fn show(
    state: &AppState,
    page: LinkPage,
    request: PageRequest,
    query: Option<String>,
) -> Response {
    let PageRequest { locale, csrf } = request;
    let parsed = serde_urlencoded::from_str::<LinkQuery>(query.as_deref().unwrap_or(""));
    let Ok(query) = parsed else {
        return state.pages.error_page(locale, ErrorPage::bad_request());
    };
    if let Some(purpose) = page.purpose()
        && let Err(error) =
            state.accounts.email_links.check_one_time_token(&query.token, purpose).await
    {
        return refusal(state, page, locale, &csrf, &error);
    }
    let return_to = query.return_to.as_deref().and_then(safe_return_to);
    let view = View { token: &query.token, return_to, show_form: true, ..View::default() };
    render(state, page, StatusCode::OK, locale, &csrf, view)
}

pub(crate) async fn show_verify_email(
    State(state): State<AppState>,
    request: PageRequest,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, LinkPage::VerifyEmail, request, query).await
}

pub(crate) async fn show_reset_password(
    State(state): State<AppState>,
    request: PageRequest,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, LinkPage::ResetPassword, request, query).await
}

pub(crate) async fn show_magic_link(
    State(state): State<AppState>,
    request: PageRequest,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, LinkPage::MagicLink, request, query).await
}

pub(crate) async fn submit_verify_email(
    State(state): State<AppState>,
    Client(context): Client,
    form: PageForm<LinkForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let page = LinkPage::VerifyEmail;
    match state.accounts.email_links.verify_email(&fields.token, &context).await {
        Ok(()) => {
            let view = View { done: true, ..View::default() };
            render(&state, page, StatusCode::OK, locale, &csrf, view)
        }
        Err(error) => refusal(&state, page, locale, &csrf, &error),
    }
}

pub(crate) async fn show_change_email(
    State(state): State<AppState>,
    request: PageRequest,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, LinkPage::ChangeEmail, request, query).await
}

pub(crate) async fn submit_change_email(
    State(state): State<AppState>,
    Client(context): Client,
    form: PageForm<LinkForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let page = LinkPage::ChangeEmail;
    match state.accounts.email_links.change_email(&fields.token, &context).await {
        Ok(()) => {
            let view = View { done: true, ..View::default() };
            render(&state, page, StatusCode::OK, locale, &csrf, view)
        }
        // Another account took the address meanwhile.
        Err(DomainError::Taken(_)) => {
            let view = View { error: Some("link_error.email_taken"), ..View::default() };
            render(&state, page, StatusCode::CONFLICT, locale, &csrf, view)
        }
        Err(error) => refusal(&state, page, locale, &csrf, &error),
    }
}

pub(crate) async fn show_restore_account(
    State(state): State<AppState>,
    request: PageRequest,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, LinkPage::RestoreAccount, request, query).await
}

/// Keeps an account whose deletion is scheduled.
pub(crate) async fn submit_restore_account(
    State(state): State<AppState>,
    Client(context): Client,
    form: PageForm<LinkForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let page = LinkPage::RestoreAccount;
    match state.account_deletions.restore(&fields.token, &context).await {
        Ok(()) => {
            let view = View { done: true, ..View::default() };
            render(&state, page, StatusCode::OK, locale, &csrf, view)
        }
        Err(error) => refusal(&state, page, locale, &csrf, &error),
    }
}

pub(crate) async fn submit_reset_password(
    State(state): State<AppState>,
    Client(context): Client,
    form: PageForm<LinkForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let page = LinkPage::ResetPassword;
    match state
        .accounts
        .email_links
        .reset_password(&fields.token, &fields.new_password, &context)
        .await
    {
        Ok(()) => {
            let view = View { done: true, ..View::default() };
            render(&state, page, StatusCode::OK, locale, &csrf, view)
        }
        Err(DomainError::PasswordRejected { code, issues }) => {
            let view = View {
                token: &fields.token,
                show_form: true,
                error: Some("link_error.password"),
                issues: issues
                    .iter()
                    .map(|issue| {
                        let policy = state.accounts.passwords.policy().settings();
                        state.pages.issue_message(locale, issue, policy)
                    })
                    .collect(),
                ..View::default()
            };
            let mut response =
                render(&state, page, StatusCode::UNPROCESSABLE_ENTITY, locale, &csrf, view);
            response.extensions_mut().insert(ErrorForLog { code, internal: None });
            response
        }
        Err(error) => refusal(&state, page, locale, &csrf, &error),
    }
}

/// Signs the browser in and goes on to `return_to` (same-origin paths only).
pub(crate) async fn submit_magic_link(
    State(state): State<AppState>,
    Client(context): Client,
    form: PageForm<LinkForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let page = LinkPage::MagicLink;
    let outcome =
        match state.accounts.email_links.sign_in_with_magic_link(&fields.token, &context).await {
            Ok(outcome) => outcome,
            Err(error) => return refusal(&state, page, locale, &csrf, &error),
        };
    let return_to = return_to_or_default(fields.return_to.as_deref());
    match continue_sign_in(&state, outcome, &return_to, locale).await {
        Ok(response) | Err(response) => response,
    }
}
