//! `/mfa`: the second step of a hosted sign-in. `/login` (and the magic-link page) park the
//! challenge token in a short-lived HttpOnly cookie and come here; the form takes a code
//! (authenticator app, backup code, or one sent by email or SMS on request), then sets the
//! browser session (and, when asked, the trusted-device cookie) and goes on to `return_to`,
//! so OAuth sign-ins through the hosted pages honour MFA too. One route per action:
//! `POST /mfa/verify`, `/mfa/send-email`, `/mfa/send-sms`, and `/mfa/enrol` (the
//! authenticator-app set-up a required-MFA policy sends people through).

use axum::extract::{RawQuery, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_domain::mfa::ChallengeKind;
use gatehouse_domain::mfa::MfaVerification;
use gatehouse_domain::principal::RequestContext;
use gatehouse_domain::sign_in::SignInOutcome;
use gatehouse_domain::{DomainError, MfaProblem};
use minijinja::context;
use serde::Deserialize;

use super::request::{PageForm, PageRequest};
use super::session::{BrowserSession, continue_sign_in};
use crate::browser::cookies::read_cookie;
use crate::browser::csrf::Csrf;
use crate::browser::render::{ErrorPage, Pages};
use crate::browser::return_to::return_to_or_default;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::locale::Locale;
use crate::ratelimit::{Bucket, Verdict, insert_headers, insert_refusal_headers};
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct MfaQuery {
    return_to: Option<String>,
}

/// The code form. No `Debug`: it holds a code.
#[derive(Deserialize)]
pub(crate) struct VerifyForm {
    /// `totp`, `backup_code`, `email` or `sms`.
    #[serde(default)]
    method: String,
    #[serde(default)]
    code: String,
    trust_device: Option<String>,
    return_to: Option<String>,
}

/// Asking for a code by email or SMS (the other fields of the form are not needed).
#[derive(Deserialize)]
pub(crate) struct SendForm {
    return_to: Option<String>,
}

/// The authenticator-app set-up's confirmation. No `Debug`: it holds a code.
#[derive(Deserialize)]
pub(crate) struct EnrolForm {
    #[serde(default)]
    code: String,
    return_to: Option<String>,
}

/// What every `/mfa` form carries besides its own fields.
trait StepForm {
    /// Where to go once signed in.
    fn return_to(&self) -> Option<&str>;
}

impl StepForm for VerifyForm {
    fn return_to(&self) -> Option<&str> {
        self.return_to.as_deref()
    }
}

impl StepForm for SendForm {
    fn return_to(&self) -> Option<&str> {
        self.return_to.as_deref()
    }
}

impl StepForm for EnrolForm {
    fn return_to(&self) -> Option<&str> {
        self.return_to.as_deref()
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
    let methods = match state.accounts.sign_in.challenge_info(&mfa_token, &context).await {
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

/// A POSTed step of the challenge in the browser's cookie; `Err` sends the browser back to
/// `/login` when there is none.
struct Posted<'a> {
    pages: &'a Pages,
    locale: Locale,
    csrf: Csrf,
    return_to: String,
    mfa_token: String,
    /// The user's methods, to show the form again (none when the challenge is gone: the
    /// refusal then sends the browser back to `/login` anyway).
    methods: Vec<String>,
}

impl<'a> Posted<'a> {
    async fn read<T: StepForm>(
        state: &'a AppState,
        context: &RequestContext,
        headers: &HeaderMap,
        form: PageForm<T>,
    ) -> Result<(Posted<'a>, T), Response> {
        let PageForm { locale, csrf, fields } = form;
        let pages = &state.pages;
        let return_to = return_to_or_default(fields.return_to());
        let Some(mfa_token) = challenge_token(pages, headers) else {
            return Err(login_again(pages, &return_to));
        };
        let methods = match state.accounts.sign_in.challenge_info(&mfa_token, context).await {
            Ok((_, methods)) => methods,
            Err(_) => Vec::new(),
        };
        Ok((Posted { pages, locale, csrf, return_to, mfa_token, methods }, fields))
    }

    /// The code form again, with `method` chosen.
    fn form(
        &self,
        method: &str,
        status: StatusCode,
        error: Option<&'static str>,
        notice: Option<&'static str>,
    ) -> Response {
        let view =
            MfaView { return_to: &self.return_to, error, notice, method, methods: &self.methods };
        mfa_page(self.pages, status, self.locale, &self.csrf, &view)
    }
}

/// `POST /mfa/verify`: checks the code; on success the browser is signed in (replacing the
/// session it held, see `SessionService::replace_browser_session`) and goes on.
pub(crate) async fn verify(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    headers: HeaderMap,
    form: PageForm<VerifyForm>,
) -> Response {
    let (posted, fields) = match Posted::read(&state, &context, &headers, form).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    // The budget of `POST /v1/auth/mfa/verify` (the sign-in one): the page gives no extra
    // guesses at a code.
    match state.rate_limit_policy().spend(Bucket::SignIn, context.ip.as_deref()).await {
        Verdict::Refused { decision, retry_after_seconds } => {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let mut response =
                posted.form(&fields.method, status, Some("mfa.error.rate_limited"), None);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            insert_headers(response.headers_mut(), &decision);
            response.extensions_mut().insert(ErrorForLog { code: "rate_limited", internal: None });
            return response;
        }
        Verdict::Unavailable => {
            return state.pages.error_page(posted.locale, ErrorPage::limiter_unavailable());
        }
        Verdict::Unchecked | Verdict::Allowed(_) => {}
    }
    let request = MfaVerification {
        mfa_token: posted.mfa_token.clone(),
        method: fields.method.clone(),
        code: fields.code,
        trust_device: fields.trust_device.is_some(),
    };
    let verified = match state.accounts.sign_in.verify_mfa(request, &context).await {
        Ok(verified) => verified,
        Err(error) => {
            let again = |status, error, notice| posted.form(&fields.method, status, error, notice);
            return refusal(&state, &posted.return_to, error, &again);
        }
    };
    let new_session = &verified.tokens.session_id;
    state.accounts.sessions.replace_browser_session(previous.as_ref(), new_session, &context).await;
    let outcome = SignInOutcome::SignedIn(Box::new(verified.tokens));
    let pages = &state.pages;
    let mut response =
        match continue_sign_in(&state, outcome, &posted.return_to, posted.locale).await {
            Ok(response) | Err(response) => response,
        };
    pages.mfa_cookie.clear(&mut response);
    if let Some(device) = verified.trusted_browser {
        pages.device_cookie.set(&mut response, &device.token, device.max_age_seconds);
    }
    response
}

/// `POST /mfa/send-email`: sends a code to the account's address.
pub(crate) async fn send_email(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    form: PageForm<SendForm>,
) -> Response {
    send_code(&state, &context, &headers, form, "email").await
}

/// `POST /mfa/send-sms`: sends a code to the account's phone.
pub(crate) async fn send_sms(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    form: PageForm<SendForm>,
) -> Response {
    send_code(&state, &context, &headers, form, "sms").await
}

/// Sends a code by `method` and shows the form again with that method chosen.
async fn send_code(
    state: &AppState,
    context: &RequestContext,
    headers: &HeaderMap,
    form: PageForm<SendForm>,
    method: &str,
) -> Response {
    let (posted, _) = match Posted::read(state, context, headers, form).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let again = |status, error, notice| posted.form(method, status, error, notice);
    match state.accounts.sign_in.send_mfa_code(&posted.mfa_token, method, context).await {
        Ok(()) => again(StatusCode::OK, None, Some("mfa.code_sent")),
        Err(error) => refusal(state, &posted.return_to, error, &again),
    }
}

/// `POST /mfa/enrol`: confirms the required authenticator-app set-up with its first code;
/// the browser is signed in and shown its backup codes, once, on the way to `return_to`.
pub(crate) async fn enrol(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    form: PageForm<EnrolForm>,
) -> Response {
    let (posted, fields) = match Posted::read(&state, &context, &headers, form).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let (pages, locale, return_to) = (&state.pages, posted.locale, posted.return_to.as_str());
    let confirmed = state
        .accounts
        .sign_in
        .confirm_required_totp(&posted.mfa_token, &fields.code, &context)
        .await;
    match confirmed {
        Ok((codes, tokens)) => {
            let outcome = SignInOutcome::SignedIn(Box::new(tokens));
            let mut response = match continue_sign_in(&state, outcome, return_to, locale).await {
                Ok(redirect) => {
                    let view = context! { codes => codes, continue_url => return_to };
                    let mut page = pages.render(locale, "backup_codes.html", view);
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
            let (token, csrf) = (&posted.mfa_token, &posted.csrf);
            let mut response =
                enrolment_page(&state, &context, token, return_to, locale, csrf, error).await;
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        Err(error) => {
            let again = |status, error, notice| posted.form("", status, error, notice);
            refusal(&state, return_to, error, &again)
        }
    }
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
    match state.accounts.sign_in.required_totp_in_progress(mfa_token, context).await {
        Ok(enrolment) => {
            let view = context! {
                action => "/mfa/enrol",
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
        // The per-account budget, shown like the per-IP one.
        DomainError::RateLimited { retry_after_seconds } => {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let mut response = render(status, Some("mfa.error.rate_limited"), None);
            let seconds = (*retry_after_seconds).max(1);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            insert_refusal_headers(response.headers_mut(), seconds);
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
