//! `/login`: the sign-in form (with a "Continue with …" button per upstream provider, carrying
//! `return_to`), and its POST that signs in through `SignInService::sign_in`, sets the
//! browser-session cookie and goes on to `return_to`.

use axum::extract::{RawQuery, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::sign_in::SignInOutcome;
use gatehouse_domain::sign_in::{Identifier, SignIn};
use minijinja::context;
use serde::Deserialize;

use super::federation_view::provider_buttons;
use super::request::{PageForm, PageRequest};
use super::session::{BrowserSession, continue_sign_in, display_name};
use crate::browser::csrf::Csrf;
use crate::browser::render::{ErrorPage, Pages};
use crate::browser::return_to::return_to_or_default;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::locale::Locale;
use crate::ratelimit::{Bucket, Verdict, insert_headers, insert_refusal_headers};
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
    /// OpenID Connect `prompt`; `login` asks for a fresh sign-in even when signed in.
    prompt: Option<String>,
}

/// The form's fields. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    password: String,
    return_to: Option<String>,
}

/// What the form shows besides its fields.
struct LoginView<'a> {
    return_to: &'a str,
    identifier: &'a str,
    /// A message key under `login.error`.
    error: Option<&'static str>,
    signed_in_as: Option<String>,
    /// Whether to offer "create an account" (`/signup`, when sign-up is on).
    signup_enabled: bool,
    /// Whether to offer passkey sign-in (passkeys on and usable with this issuer).
    passkeys: bool,
    /// The "Continue with …" buttons, one per configured provider.
    providers: Vec<minijinja::Value>,
}

/// Shows the form, or goes straight on when the browser is signed in (unless `prompt=login`).
pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let pages = &state.pages;
    let Ok(query) = serde_urlencoded::from_str::<LoginQuery>(raw_query.as_deref().unwrap_or(""))
    else {
        return pages.error_page(page.locale, ErrorPage::bad_request());
    };
    let return_to = return_to_or_default(query.return_to.as_deref());
    let prompt_login = query
        .prompt
        .as_deref()
        .is_some_and(|prompt| prompt.split_whitespace().any(|value| value == "login"));
    let signed_in_as = match &session {
        Some(_) if !prompt_login => return pages.redirect(&return_to),
        Some(principal) => Some(display_name(&state, principal)),
        None => None,
    };
    let signup_enabled = state.accounts.registration.signup_enabled();
    let passkeys = state.accounts.passkeys.available();
    let view = LoginView {
        return_to: &return_to,
        identifier: "",
        error: None,
        signed_in_as,
        signup_enabled,
        passkeys,
        providers: provider_buttons(&state, &return_to).await,
    };
    login_page(pages, StatusCode::OK, page.locale, &page.csrf, &view)
}

/// Signs in. Failures re-render the form with one message per cause; an unknown account and
/// a wrong password get the same words (the domain already answers both alike).
pub(crate) async fn submit(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    headers: axum::http::HeaderMap,
    form: PageForm<LoginForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let pages = &state.pages;
    let return_to = return_to_or_default(fields.return_to.as_deref());
    let identifier_text = fields.identifier.trim().to_owned();
    let signup_enabled = state.accounts.registration.signup_enabled();
    let failure = async |status: StatusCode, error: &'static str, code: &'static str| {
        let view = LoginView {
            return_to: &return_to,
            identifier: &identifier_text,
            error: Some(error),
            signed_in_as: None,
            signup_enabled,
            passkeys: state.accounts.passkeys.available(),
            providers: provider_buttons(&state, &return_to).await,
        };
        let mut response = login_page(pages, status, locale, &csrf, &view);
        response.extensions_mut().insert(ErrorForLog { code, internal: None });
        response
    };
    // The budget of `POST /v1/auth/sign-in`: switching between the API and the page gives no
    // extra guesses.
    let ip = context.ip.as_deref();
    match state.rate_limit_policy().spend(Bucket::SignIn, ip).await {
        Verdict::Refused { decision, retry_after_seconds } => {
            let mut response =
                failure(StatusCode::TOO_MANY_REQUESTS, "login.error.rate_limited", "rate_limited")
                    .await;
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            insert_headers(response.headers_mut(), &decision);
            return response;
        }
        Verdict::Unavailable => {
            return pages.error_page(locale, ErrorPage::limiter_unavailable());
        }
        Verdict::Unchecked | Verdict::Allowed(_) => {}
    }
    let trusted_device = pages.device_cookie.from_headers(&headers).map(str::to_owned);
    let identifier = identifier(&identifier_text);
    let request = SignIn { identifier, password: fields.password, trusted_device };
    let outcome = match state.accounts.sign_in.sign_in(request, &context).await {
        Ok(outcome) => outcome,
        Err(error) => {
            let Some((status, message)) = refusal(&error) else {
                return pages.error_page(locale, ErrorPage::from_domain(&error));
            };
            let mut response = failure(status, message, error.code()).await;
            // The per-account budget, answered like the per-IP one.
            if let DomainError::RateLimited { retry_after_seconds } = error {
                let seconds = retry_after_seconds.max(1);
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
                insert_refusal_headers(response.headers_mut(), seconds);
            }
            return response;
        }
    };
    let new_session = match &outcome {
        SignInOutcome::SignedIn(tokens) => Some(tokens.session_id.clone()),
        // The second step replaces the session, on /mfa.
        SignInOutcome::MfaRequired(_) => None,
    };
    let response = match continue_sign_in(&state, outcome, &return_to, locale).await {
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

/// The form's one field names the account by email (it has an `@`) or by username.
fn identifier(text: &str) -> Identifier {
    if text.contains('@') {
        Identifier::Email(text.to_owned())
    } else {
        Identifier::Username(text.to_owned())
    }
}

/// How the form shows a refused sign-in: its status and message (under `login.error`);
/// `None` for an error that is not the person's to fix (an error page).
fn refusal(error: &DomainError) -> Option<(StatusCode, &'static str)> {
    Some(match error {
        DomainError::InvalidCredentials => {
            (StatusCode::UNAUTHORIZED, "login.error.invalid_credentials")
        }
        DomainError::RateLimited { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "login.error.rate_limited")
        }
        DomainError::AccountSuspended => (StatusCode::FORBIDDEN, "login.error.suspended"),
        DomainError::EmailNotVerified => (StatusCode::FORBIDDEN, "login.error.email_not_verified"),
        _ => return None,
    })
}

fn login_page(
    pages: &Pages,
    status: StatusCode,
    locale: Locale,
    csrf: &Csrf,
    view: &LoginView<'_>,
) -> Response {
    let other = match locale {
        Locale::En => Locale::Fr,
        Locale::Fr => Locale::En,
    };
    // Switching language keeps where the browser was going.
    let language_switch_url =
        serde_urlencoded::to_string([("return_to", view.return_to), ("lang", other.code())])
            .map(|query| format!("/login?{query}"))
            .ok();
    // Signing up from an OAuth sign-in comes back to it.
    let signup_url = view
        .signup_enabled
        .then(|| serde_urlencoded::to_string([("return_to", view.return_to)]).ok())
        .flatten()
        .map(|query| format!("/signup?{query}"));
    let passkeys = view.passkeys;
    let context = context! {
        passkeys => passkeys,
        providers => &view.providers,
        signup_url => signup_url,
        return_to => view.return_to,
        identifier => view.identifier,
        error => view.error,
        signed_in_as => view.signed_in_as.clone(),
        language_switch_url => language_switch_url,
    };
    if passkeys {
        return pages.render_form_with_script(status, locale, csrf, "login.html", context);
    }
    pages.render_form(status, locale, csrf, "login.html", context)
}
