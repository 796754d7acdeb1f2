//! `/mfa`: the second step of a hosted sign-in. `/login` (and the magic-link page) park the
//! challenge token in a short-lived HttpOnly cookie and come here; the form takes a code
//! (authenticator app, backup code, or one sent by email or SMS on request), then sets the
//! browser session (and, when asked, the trusted-device cookie) and goes on to `return_to`,
//! so OAuth sign-ins through the hosted pages honour MFA too.

use axum::extract::{RawQuery, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_domain::mfa::ChallengeKind;
use gatehouse_domain::mfa::{MfaChallenge, MfaVerification};
use gatehouse_domain::principal::RequestContext;
use gatehouse_domain::sign_in::SignInOutcome;
use gatehouse_domain::{DomainError, MfaProblem};
use minijinja::context;
use serde::Deserialize;

use super::cookies::BrowserSession;
use super::csrf::{Csrf, PageForm, PageRequest};
use super::{ErrorPage, Locale, Pages, read_cookie, return_to_or_default};
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct MfaQuery {
    return_to: Option<String>,
}

/// No `Debug`: it holds a code.
#[derive(Deserialize)]
pub(crate) struct MfaForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    code: String,
    trust_device: Option<String>,
    /// `verify`, `send_email` or `send_sms`.
    #[serde(default)]
    action: String,
    return_to: Option<String>,
}

/// Where a first factor that needs a second one goes: the challenge token in its cookie and a
/// redirect to `/mfa`. Tokens go straight to the browser session.
pub(crate) async fn continue_sign_in(
    state: &AppState,
    outcome: SignInOutcome,
    return_to: &str,
    locale: Locale,
) -> Result<Response, Response> {
    let pages = &state.pages;
    match outcome {
        SignInOutcome::SignedIn(tokens) => {
            let principal = state
                .sessions
                .principal_for_session(&tokens.session_id)
                .await
                .map_err(|error| pages.error_page(locale, ErrorPage::from_domain(&error)))?;
            let mut response = pages.redirect(return_to);
            let max_age = principal.session.expires_at - principal.session.created_at;
            pages.session_cookie.set(&mut response, &principal.session.id, max_age);
            Ok(response)
        }
        SignInOutcome::MfaRequired(MfaChallenge { mfa_token, expires_in, .. }) => {
            let query = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
            let mut response = pages.redirect(&format!("/mfa?{query}"));
            pages.mfa_cookie.set(&mut response, &mfa_token, Some(expires_in));
            Ok(response)
        }
    }
}

fn challenge_token(pages: &Pages, headers: &HeaderMap) -> Option<String> {
    read_cookie(headers, &pages.mfa_cookie.name).map(str::to_owned)
}

fn login_again(pages: &Pages, return_to: &str) -> Response {
    let query = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
    let mut response = pages.redirect(&format!("/login?{query}"));
    pages.mfa_cookie.clear(&mut response);
    response
}

struct MfaView<'a> {
    return_to: &'a str,
    error: Option<&'static str>,
    notice: Option<&'static str>,
    method: &'a str,
    /// What the user can answer with (`totp`, `backup_code`, `email`, `sms`).
    methods: &'a [String],
}

fn mfa_page(
    pages: &Pages,
    status: StatusCode,
    locale: Locale,
    csrf: &Csrf,
    view: &MfaView<'_>,
) -> Response {
    let context = context! {
        return_to => view.return_to,
        error => view.error,
        notice => view.notice,
        method => view.method,
        methods => view.methods.to_vec(),
    };
    pages.render_form(status, locale, csrf, "mfa.html", context)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Client(context): Client,
    page: PageRequest,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let pages = &state.pages;
    let Ok(query) = serde_urlencoded::from_str::<MfaQuery>(raw_query.as_deref().unwrap_or(""))
    else {
        return pages.error_page(page.locale, ErrorPage::bad_request());
    };
    let return_to = return_to_or_default(query.return_to.as_deref());
    let Some(mfa_token) = challenge_token(pages, &headers) else {
        return login_again(pages, &return_to);
    };
    let methods = match state.sign_in.challenge_info(&mfa_token, &context).await {
        Ok((ChallengeKind::Verify, methods)) => methods,
        Ok((ChallengeKind::Enrol, _)) => {
            let (locale, csrf) = (page.locale, &page.csrf);
            return enrolment_page(&state, &context, &mfa_token, &return_to, locale, csrf, None)
                .await;
        }
        Err(_) => return login_again(pages, &return_to),
    };
    let method = methods.first().map_or("totp", String::as_str);
    let view =
        MfaView { return_to: &return_to, error: None, notice: None, method, methods: &methods };
    mfa_page(pages, StatusCode::OK, page.locale, &page.csrf, &view)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    headers: HeaderMap,
    form: PageForm<MfaForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let pages = &state.pages;
    let return_to = return_to_or_default(fields.return_to.as_deref());
    let Some(mfa_token) = challenge_token(pages, &headers) else {
        return login_again(pages, &return_to);
    };
    let method = match fields.action.as_str() {
        "send_email" => "email",
        "send_sms" => "sms",
        _ => fields.method.as_str(),
    };
    // The form again shows the user's methods (none when the challenge is gone: the refusal
    // then sends the browser back to /login anyway).
    let methods = match state.sign_in.challenge_info(&mfa_token, &context).await {
        Ok((_, methods)) => methods,
        Err(_) => Vec::new(),
    };
    let render = |status: StatusCode, error: Option<&'static str>, notice: Option<&'static str>| {
        let view = MfaView { return_to: &return_to, error, notice, method, methods: &methods };
        mfa_page(pages, status, locale, &csrf, &view)
    };
    if fields.action == "enrol" {
        return match state.sign_in.confirm_required_totp(&mfa_token, &fields.code, &context).await {
            Ok((codes, tokens)) => {
                let outcome = SignInOutcome::SignedIn(Box::new(tokens));
                let signed_in = continue_sign_in(&state, outcome, &return_to, locale).await;
                let mut response = match signed_in {
                    Ok(redirect) => {
                        // The codes are shown once, on the way to `return_to`.
                        let mut page = pages.render(
                            locale,
                            "backup_codes.html",
                            context! { codes => codes, continue_url => return_to.as_str() },
                        );
                        for cookie in redirect.headers().get_all(SET_COOKIE) {
                            page.headers_mut().append(SET_COOKIE, cookie.clone());
                        }
                        page
                    }
                    Err(response) => response,
                };
                pages.mfa_cookie.clear(&mut response);
                response
            }
            Err(DomainError::Mfa(MfaProblem::InvalidCode)) => {
                let error = Some("mfa.error.invalid_code");
                let mut response =
                    enrolment_page(&state, &context, &mfa_token, &return_to, locale, &csrf, error)
                        .await;
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response
            }
            Err(error) => refusal(&state, &return_to, error, &render),
        };
    }
    if fields.action.starts_with("send_") {
        return match state.sign_in.send_mfa_code(&mfa_token, method, &context).await {
            Ok(()) => render(StatusCode::OK, None, Some("mfa.code_sent")),
            Err(error) => refusal(&state, &return_to, error, &render),
        };
    }
    let request = MfaVerification {
        mfa_token,
        method: method.to_owned(),
        code: fields.code,
        trust_device: fields.trust_device.is_some(),
    };
    let verified = match state.sign_in.verify_mfa(request, &context).await {
        Ok(verified) => verified,
        Err(error) => return refusal(&state, &return_to, error, &render),
    };
    let new_session = &verified.tokens.session_id;
    state.sessions.replace_browser_session(previous.as_ref(), new_session, &context).await;
    let outcome = SignInOutcome::SignedIn(Box::new(verified.tokens));
    let mut response = match continue_sign_in(&state, outcome, &return_to, locale).await {
        Ok(response) | Err(response) => response,
    };
    pages.mfa_cookie.clear(&mut response);
    if let Some(device) = verified.trusted_browser {
        pages.device_cookie.set(&mut response, &device.token, device.max_age_seconds);
    }
    response
}

/// The authenticator-app set-up a required-MFA sign-in goes through.
async fn enrolment_page(
    state: &AppState,
    context: &RequestContext,
    mfa_token: &str,
    return_to: &str,
    locale: Locale,
    csrf: &Csrf,
    error: Option<&'static str>,
) -> Response {
    let pages = &state.pages;
    match state.sign_in.required_totp_in_progress(mfa_token, context).await {
        Ok(enrolment) => {
            let view = context! {
                action => "/mfa",
                qr_svg => enrolment.qr_svg,
                secret => enrolment.secret,
                return_to => return_to,
                required => true,
                error => error,
            };
            pages.render_form(StatusCode::OK, locale, csrf, "mfa_enrol.html", view)
        }
        Err(DomainError::Mfa(_)) => login_again(pages, return_to),
        Err(error) => pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

/// A refused step: the form again with a message per cause; a dead challenge goes back to
/// `/login`.
fn refusal(
    state: &AppState,
    return_to: &str,
    error: DomainError,
    render: &dyn Fn(StatusCode, Option<&'static str>, Option<&'static str>) -> Response,
) -> Response {
    let code = error.code();
    let mut response = match &error {
        DomainError::Mfa(MfaProblem::InvalidChallenge | MfaProblem::ChallengeExpired) => {
            return login_again(&state.pages, return_to);
        }
        DomainError::Mfa(problem) => {
            let key = match problem {
                MfaProblem::CodeReplayed => "mfa.error.replayed",
                MfaProblem::CodeExpired => "mfa.error.expired",
                MfaProblem::AttemptsExhausted => "mfa.error.exhausted",
                MfaProblem::BackupCodeUsed => "mfa.error.backup_code_used",
                MfaProblem::MethodUnavailable => "mfa.error.unavailable",
                MfaProblem::ResendTooSoon => "mfa.error.too_soon",
                _ => "mfa.error.invalid_code",
            };
            render(StatusCode::BAD_REQUEST, Some(key), None)
        }
        DomainError::Validation(_) => {
            render(StatusCode::BAD_REQUEST, Some("mfa.error.unavailable"), None)
        }
        DomainError::AccountLocked { retry_after } => {
            let mut response = render(StatusCode::LOCKED, Some("login.error.locked"), None);
            let seconds = u64::try_from(*retry_after).unwrap_or(1).max(1);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        DomainError::AccountSuspended => {
            render(StatusCode::FORBIDDEN, Some("login.error.suspended"), None)
        }
        DomainError::Store(gatehouse_domain::StoreError::Unavailable(_)) => {
            render(StatusCode::SERVICE_UNAVAILABLE, Some("login.error.unavailable"), None)
        }
        _ => {
            let mut response =
                render(StatusCode::INTERNAL_SERVER_ERROR, Some("login.error.unavailable"), None);
            response
                .extensions_mut()
                .insert(ErrorForLog { code, internal: Some(error.to_string()) });
            return response;
        }
    };
    response.extensions_mut().insert(ErrorForLog { code, internal: None });
    response
}
