//! The passkey parts of the hosted pages. The page script's JSON endpoints (CSRF token in a
//! header, answers problem+json like the API): sign-in from `/login` (`/login/passkey/begin`,
//! `/finish`: the browser session is set as a password sign-in sets it, then `return_to`),
//! adding a passkey on `/account` (`/account/passkeys/begin`, `/finish`: a recent
//! authentication, as for other factor changes) and a passkey-only sign-up from `/signup`
//! (`/signup/passkey/begin`, `/finish`). Renaming and removing are plain page forms
//! (`/account/passkeys/rename`, `/remove`) that work without JavaScript.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::DomainError;
use gatehouse_domain::passkeys::PasskeyAssertion;
use gatehouse_domain::registration::{PasskeySignUp, SignUpOutcome};
use gatehouse_domain::sign_in::SignInOutcome;
use serde::Deserialize;

use super::account::{AccountAlert, SIGN_IN_FIRST, account_with_error};
use super::request::{PageForm, PageJson};
use super::session::{BrowserSession, signed_in_json};
use crate::browser::return_to::return_to_or_default;
use crate::client::Client;
use crate::error::ApiError;
use crate::ratelimit::{Bucket, Verdict};
use crate::state::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/login/passkey/begin", post(begin_sign_in))
        .route("/login/passkey/finish", post(finish_sign_in))
        .route("/account/passkeys/begin", post(begin_registration))
        .route("/account/passkeys/finish", post(finish_registration))
        .route("/account/passkeys/rename", post(rename))
        .route("/account/passkeys/remove", post(remove))
        .route("/signup/passkey/begin", post(begin_sign_up))
        .route("/signup/passkey/finish", post(finish_sign_up))
}

/// A ceremony's first answer to the page script: its id and the WebAuthn L3 JSON options
/// (the API's shape).
#[derive(serde::Serialize)]
pub(crate) struct CeremonyResponse {
    ceremony_id: String,
    options: serde_json::Value,
}

impl From<gatehouse_domain::passkeys::PasskeyCeremony> for CeremonyResponse {
    fn from(ceremony: gatehouse_domain::passkeys::PasskeyCeremony) -> Self {
        Self { ceremony_id: ceremony.ceremony_id, options: ceremony.options }
    }
}

/// Where the account page's passkey list is.
const ACCOUNT_PASSKEYS: &str = "/account#passkeys";

/// Spends `bucket` for the client; a refusal is the API's 429.
async fn spend(state: &AppState, bucket: Bucket, ip: Option<&str>) -> Result<(), ApiError> {
    match state.rate_limit_policy().spend(bucket, ip).await {
        Verdict::Refused { retry_after_seconds, .. } => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many attempts; wait a minute, then try again.",
        )
        .with_retry_after(retry_after_seconds)),
        Verdict::Unavailable => Err(ApiError::limiter_unavailable()),
        _ => Ok(()),
    }
}

fn no_principal() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "Sign in first.")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

/// A ceremony's second request from the page script. No `Debug`: it holds a credential.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Finish {
    ceremony_id: String,
    credential: serde_json::Value,
    return_to: Option<String>,
    name: Option<String>,
}

/// `/login`'s ceremony (the button and autofill): any discoverable passkey of this site.
/// Loading `/login` starts one for autofill, so it spends the general write budget, not the
/// sign-in one; the finish spends the sign-in budget like a password attempt.
async fn begin_sign_in(
    State(state): State<AppState>,
    Client(context): Client,
    _json: PageJson<Empty>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    spend(&state, Bucket::ApiWrite, context.ip.as_deref()).await?;
    Ok(Json(state.accounts.passkeys.begin_sign_in(None).await?.into()))
}

async fn finish_sign_in(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    headers: axum::http::HeaderMap,
    json: PageJson<Finish>,
) -> Result<Response, ApiError> {
    spend(&state, Bucket::SignIn, context.ip.as_deref()).await?;
    let Finish { ceremony_id, credential, return_to, .. } = json.body;
    let assertion = PasskeyAssertion { ceremony_id, credential };
    let trusted_device = state.pages.device_cookie.from_headers(&headers).map(str::to_owned);
    let outcome = state
        .accounts
        .sign_in
        .sign_in_with_passkey(assertion, trusted_device.as_deref(), &context)
        .await?;
    let return_to = return_to_or_default(return_to.as_deref());
    match outcome {
        SignInOutcome::SignedIn(tokens) => {
            Ok(signed_in_json(&state, previous.as_ref(), &tokens.session_id, &return_to, &context)
                .await?)
        }
        // A passkey without user verification is a first factor: the hosted second step next.
        SignInOutcome::MfaRequired(challenge) => {
            let query = serde_urlencoded::to_string([("return_to", return_to.as_str())])
                .unwrap_or_default();
            let mut response =
                Json(serde_json::json!({ "redirect_to": format!("/mfa?{query}") })).into_response();
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            state.pages.mfa_cookie.set(
                &mut response,
                &challenge.mfa_token,
                Some(challenge.expires_in),
            );
            Ok(response)
        }
    }
}

async fn begin_registration(
    State(state): State<AppState>,
    BrowserSession(session): BrowserSession,
    _json: PageJson<Empty>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let principal = session.ok_or_else(no_principal)?;
    Ok(Json(state.accounts.passkeys.begin_registration(&principal).await?.into()))
}

async fn finish_registration(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    json: PageJson<Finish>,
) -> Result<Response, ApiError> {
    let principal = session.ok_or_else(no_principal)?;
    let Finish { ceremony_id, credential, name, .. } = json.body;
    let name = name.as_deref().map(str::trim).filter(|name| !name.is_empty());
    state
        .accounts
        .passkeys
        .finish_registration(&principal, &ceremony_id, &credential, name, &context)
        .await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "redirect_to": ACCOUNT_PASSKEYS })))
        .into_response())
}

/// The passkey sign-up's first request. No `Debug`: it holds an address.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BeginSignUp {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// "Email then a passkey": the sign-up budget, as for the password form.
async fn begin_sign_up(
    State(state): State<AppState>,
    Client(context): Client,
    json: PageJson<BeginSignUp>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    spend(&state, Bucket::SignUp, context.ip.as_deref()).await?;
    let BeginSignUp { email, first_name, last_name } = json.body;
    let optional = |text: Option<String>| text.filter(|text| !text.trim().is_empty());
    let request =
        PasskeySignUp { email, first_name: optional(first_name), last_name: optional(last_name) };
    Ok(Json(state.accounts.registration.begin_passkey_sign_up(request, &context).await?.into()))
}

/// Creates the passkey-only account: signed in at once (cookie, `return_to`), or — with
/// verification required, for a new and a registered address alike — `/signup?sent=1`.
async fn finish_sign_up(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(previous): BrowserSession,
    json: PageJson<Finish>,
) -> Result<Response, ApiError> {
    let Finish { ceremony_id, credential, return_to, name } = json.body;
    let return_to = return_to_or_default(return_to.as_deref());
    let name = name.as_deref().map(str::trim).filter(|name| !name.is_empty());
    let outcome = state
        .accounts
        .registration
        .finish_passkey_sign_up(&ceremony_id, &credential, name, &context)
        .await?;
    let query =
        serde_urlencoded::to_string([("return_to", return_to.as_str())]).unwrap_or_default();
    let redirect = |to: String| Json(serde_json::json!({ "redirect_to": to })).into_response();
    Ok(match outcome {
        SignUpOutcome::VerificationRequired => redirect(format!("/signup?sent=1&{query}")),
        SignUpOutcome::Created { tokens: Some(tokens), .. } => {
            signed_in_json(&state, previous.as_ref(), &tokens.session_id, &return_to, &context)
                .await?
        }
        SignUpOutcome::Created { tokens: None, .. } => redirect(format!("/login?{query}")),
    })
}

/// The rename form: which passkey, and its new name.
#[derive(Deserialize)]
pub(crate) struct RenameForm {
    #[serde(default)]
    passkey_id: String,
    #[serde(default)]
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<RenameForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    let result = state
        .accounts
        .passkeys
        .rename(&principal, &fields.passkey_id, fields.name.trim(), &context)
        .await;
    match result {
        Ok(_) => state.pages.redirect(ACCOUNT_PASSKEYS),
        Err(error) => refused(&state, &principal, locale, &csrf, error).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    #[serde(default)]
    passkey_id: String,
}

async fn remove(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<RemoveForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    match state.accounts.passkeys.remove(&principal, &fields.passkey_id, &context).await {
        Ok(()) => state.pages.redirect(ACCOUNT_PASSKEYS),
        Err(error) => refused(&state, &principal, locale, &csrf, error).await,
    }
}

/// A refused rename or removal: the account page with the reason, or an error page.
async fn refused(
    state: &AppState,
    principal: &gatehouse_domain::principal::Principal,
    locale: crate::locale::Locale,
    csrf: &crate::browser::csrf::Csrf,
    error: DomainError,
) -> Response {
    use gatehouse_domain::PasskeyProblem;
    let (status, key) = match &error {
        DomainError::ReauthenticationRequired => {
            (StatusCode::FORBIDDEN, "passkeys.error.reauthenticate")
        }
        DomainError::Passkey(PasskeyProblem::LastSignInMethod) => {
            (StatusCode::CONFLICT, "passkeys.error.last_method")
        }
        DomainError::Invalid(_) | DomainError::Validation(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "passkeys.error.name")
        }
        DomainError::NotFound => (StatusCode::NOT_FOUND, "passkeys.error.not_found"),
        _ => {
            let page = crate::browser::render::ErrorPage::from_domain(&error);
            return state.pages.error_page(locale, page);
        }
    };
    let alert = AccountAlert::Passkeys(key);
    account_with_error(state, principal, locale, csrf, status, alert, error.code()).await
}
