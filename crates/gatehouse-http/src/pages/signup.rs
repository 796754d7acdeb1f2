//! `/signup`: the sign-up form, and its POST that creates the account through
//! `RegistrationService::sign_up` — the API's rules, answers and budget. With verification
//! required every address gets the same "check your email" page (the domain mails the owner
//! of a registered one); without, the browser is signed in as `/login` does it and goes on to
//! `return_to`. Sign-up switched off answers 403 `signup_disabled` as a page. Upstream
//! providers get a "Continue with …" button each, as on `/login`.

use axum::extract::{RawQuery, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_domain::registration::{SignUp, SignUpOutcome};
use gatehouse_domain::sign_in::SignInOutcome;
use gatehouse_domain::{DomainError, Feature, Taken};
use minijinja::context;
use serde::Deserialize;

use super::federation_view::provider_buttons;
use super::request::{PageForm, PageRequest};
use super::session::{BrowserSession, continue_sign_in};
use crate::browser::csrf::Csrf;
use crate::browser::render::{ErrorPage, Pages};
use crate::browser::return_to::return_to_or_default;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::locale::Locale;
use crate::ratelimit::{Bucket, Verdict, insert_headers};
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct SignupQuery {
    return_to: Option<String>,
    /// Where a passkey sign-up that needs the address verified lands: "check your email".
    #[serde(default)]
    sent: Option<String>,
}

/// The form's fields. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub(crate) struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    return_to: Option<String>,
}

/// What the page shows besides its fields.
#[derive(Default)]
struct SignupView<'a> {
    return_to: &'a str,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    /// A message key under `signup.error`.
    error: Option<&'static str>,
    /// The password policy's or the validation's messages, one per broken rule.
    issues: Vec<String>,
    /// "Check your email" instead of the form.
    sent: bool,
    /// Whether to offer "email then a passkey" (passkeys on and usable with this issuer).
    passkeys: bool,
    /// The "Continue with …" buttons, one per configured provider.
    providers: Vec<minijinja::Value>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let pages = &state.pages;
    if !state.accounts.registration.signup_enabled() {
        return disabled(pages, page.locale);
    }
    let Ok(query) = serde_urlencoded::from_str::<SignupQuery>(raw_query.as_deref().unwrap_or(""))
    else {
        return pages.error_page(page.locale, ErrorPage::bad_request());
    };
    let return_to = return_to_or_default(query.return_to.as_deref());
    let passkeys = state.accounts.passkeys.available();
    let sent = query.sent.is_some();
    let providers = provider_buttons(&state, &return_to).await;
    let view =
        SignupView { return_to: &return_to, passkeys, sent, providers, ..SignupView::default() };
    signup_page(pages, StatusCode::OK, page.locale, &page.csrf, &view)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    form: PageForm<SignupForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let pages = &state.pages;
    let return_to = return_to_or_default(fields.return_to.as_deref());
    let email = fields.email.trim().to_owned();
    let (first_name, last_name) = (fields.first_name.trim(), fields.last_name.trim());
    let passkeys = state.accounts.passkeys.available();
    let refused = async |status: StatusCode, error: Option<&'static str>, issues: Vec<String>| {
        let view = SignupView {
            return_to: &return_to,
            email: &email,
            first_name,
            last_name,
            error,
            issues,
            sent: false,
            passkeys,
            providers: provider_buttons(&state, &return_to).await,
        };
        signup_page(pages, status, locale, &csrf, &view)
    };
    // The budget of `POST /v1/auth/sign-up`: the page gives no extra sign-ups.
    if let Verdict::Refused { decision, retry_after_seconds } =
        state.rate_limit_policy().spend(Bucket::SignUp, context.ip.as_deref()).await
    {
        let mut response =
            refused(StatusCode::TOO_MANY_REQUESTS, Some("signup.error.rate_limited"), vec![]).await;
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        insert_headers(response.headers_mut(), &decision);
        response.extensions_mut().insert(ErrorForLog { code: "rate_limited", internal: None });
        return response;
    }
    let request = SignUp {
        email: email.clone(),
        password: fields.password,
        username: None,
        first_name: Some(first_name.to_owned()).filter(|name| !name.is_empty()),
        last_name: Some(last_name.to_owned()).filter(|name| !name.is_empty()),
    };
    let outcome = match state.accounts.registration.sign_up(request, &context).await {
        Ok(outcome) => outcome,
        Err(error) => {
            let (status, message, issues) = match error {
                DomainError::Disabled(Feature::SignUp) => return disabled(pages, locale),
                DomainError::PasswordRejected { ref issues, .. }
                | DomainError::Validation(ref issues) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    issues
                        .iter()
                        .map(|issue| {
                            let policy = state.accounts.passwords.policy().settings();
                            pages.issue_message(locale, issue, policy)
                        })
                        .collect(),
                ),
                // Only without verification required, where the account would be signed in
                // at once: a taken address cannot be hidden there (the API says it too).
                DomainError::Taken(Taken::Email | Taken::Username) => {
                    (StatusCode::CONFLICT, Some("signup.error.email_taken"), vec![])
                }
                DomainError::Invalid(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, Some("signup.error.invalid"), vec![])
                }
                other => return pages.error_page(locale, ErrorPage::from_domain(&other)),
            };
            let mut response = refused(status, message, issues).await;
            response.extensions_mut().insert(ErrorForLog { code: error.code(), internal: None });
            return response;
        }
    };
    match outcome {
        SignUpOutcome::VerificationRequired => {
            let view = SignupView { return_to: &return_to, sent: true, ..SignupView::default() };
            signup_page(pages, StatusCode::OK, locale, &csrf, &view)
        }
        SignUpOutcome::Created { tokens: Some(tokens), .. } => {
            let session_id = tokens.session_id.clone();
            let response =
                match continue_sign_in(&state, SignInOutcome::SignedIn(tokens), &return_to, locale)
                    .await
                {
                    Ok(response) | Err(response) => response,
                };
            state
                .accounts
                .sessions
                .replace_browser_session(previous.as_ref(), &session_id, &context)
                .await;
            response
        }
        // MFA is required: the first sign-in enrols a factor, on `/login` then `/mfa`.
        SignUpOutcome::Created { tokens: None, .. } => {
            let query = serde_urlencoded::to_string([("return_to", return_to.as_str())])
                .unwrap_or_default();
            pages.redirect(&format!("/login?{query}"))
        }
    }
}

/// Sign-up switched off: a page that says so, with the API's status and code.
fn disabled(pages: &Pages, locale: Locale) -> Response {
    let error = DomainError::Disabled(Feature::SignUp);
    pages.error_page(locale, ErrorPage::from_domain(&error))
}

fn signup_page(
    pages: &Pages,
    status: StatusCode,
    locale: Locale,
    csrf: &Csrf,
    view: &SignupView<'_>,
) -> Response {
    let other = match locale {
        Locale::En => Locale::Fr,
        Locale::Fr => Locale::En,
    };
    let return_query = serde_urlencoded::to_string([("return_to", view.return_to)]).ok();
    let language_switch_url =
        serde_urlencoded::to_string([("return_to", view.return_to), ("lang", other.code())])
            .map(|query| format!("/signup?{query}"))
            .ok();
    let context = context! {
        return_to => view.return_to,
        login_url => return_query.map(|query| format!("/login?{query}")),
        email => view.email,
        first_name => view.first_name,
        last_name => view.last_name,
        error => view.error,
        issues => &view.issues,
        sent => view.sent,
        passkeys => view.passkeys,
        providers => &view.providers,
        language_switch_url => language_switch_url,
    };
    if view.passkeys && !view.sent {
        return pages.render_form_with_script(status, locale, csrf, "signup.html", context);
    }
    pages.render_form(status, locale, csrf, "signup.html", context)
}
